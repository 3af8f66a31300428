"""A dependency that cannot be reached at start is one clear line naming the setting."""

from __future__ import annotations

import logging

import pytest

from billy.roles import StartupError, prepare
from billy_core.settings import Settings


def test_an_unreachable_database_is_one_line_naming_the_setting(caplog) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(
        database_url="postgresql://billy:secret@127.0.0.1:1/billy", kafka_bootstrap="127.0.0.1:1"
    )
    with caplog.at_level(logging.WARNING), pytest.raises(StartupError) as raised:
        prepare(settings, wait_s=1.0)
    message = str(raised.value)
    assert message.startswith("cannot reach BILLY_DATABASE_URL=postgresql://billy:***@127.0.0.1:1")
    assert "secret" not in message and "secret" not in caplog.text
    assert "\n" not in message
