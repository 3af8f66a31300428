"""Settings for tests that run the gateway against an emulator process: Balance on, and
every wait short so an unclear call or an open breaker is settled in about a second."""

from __future__ import annotations

from typing import Any

from billy_core.settings import Settings


def gateway_settings(settings: Settings, balance_url: str, **extra: Any) -> Settings:
    return settings.model_copy(
        update={
            "balance_gateway": True,
            "balance_url": balance_url,
            "balance_timeout_s": 5.0,
            "balance_breaker_cooldown_s": 1.0,
            "gateway_retry_max_s": 1.0,
            "gateway_unclear_settle_s": 1.0,
            **extra,
        }
    )
