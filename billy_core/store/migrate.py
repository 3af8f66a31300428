"""Run Alembic migrations programmatically: `upgrade(url)` at start, `downgrade(url)` in tests."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

HEAD = "head"


def _config(sqlalchemy_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "billy_core:migrations")
    # '%' is ConfigParser's interpolation character; a password may contain it.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url.replace("%", "%%"))
    return config


def upgrade(sqlalchemy_url: str, revision: str = HEAD) -> None:
    command.upgrade(_config(sqlalchemy_url), revision)


def downgrade(sqlalchemy_url: str, revision: str = "base") -> None:
    command.downgrade(_config(sqlalchemy_url), revision)
