"""A dependency that cannot be reached at start is one clear line naming the setting."""

from __future__ import annotations

import logging

import pytest

from billy.roles import StartupError, check_compiled, prepare
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


def test_a_stale_compiled_build_stops_the_start_naming_the_modules(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from billy_core import compiled

    monkeypatch.setattr(compiled, "stale", lambda *_: ["billy_core/ledger/core.py"])
    with pytest.raises(StartupError, match=r"older than their sources: billy_core/ledger/core.py"):
        check_compiled()


def test_a_start_says_whether_the_hot_path_runs_compiled(monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    from billy_core import compiled

    monkeypatch.setattr(compiled, "stale", lambda *_: [])
    monkeypatch.setattr(compiled, "built", lambda *_: ["a.py", "b.py"])
    with caplog.at_level(logging.INFO, logger="billy"):
        check_compiled()
    assert "hot path: 2 modules compiled" in caplog.text
    monkeypatch.setattr(compiled, "built", lambda *_: [])
    with caplog.at_level(logging.INFO, logger="billy"):
        check_compiled()
    assert "hot path: interpreted (no compiled build)" in caplog.text
