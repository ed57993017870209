"""Apply Alembic migrations programmatically (``aftercare db upgrade`` and ``make run``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import URL, make_url

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# Migrations run on a synchronous connection; map each async driver to its
# synchronous sibling so one URL setting serves both.
_SYNC_DRIVERS = {
    "sqlite+aiosqlite": "sqlite",
    "postgresql+asyncpg": "postgresql+psycopg",
}


def sync_url(url: str) -> URL:
    parsed = make_url(url)
    driver = _SYNC_DRIVERS.get(parsed.drivername, parsed.drivername)
    return parsed.set(drivername=driver)


def alembic_config(url: str) -> Config:
    # Alembic is imported when a migration runs, not by every `aftercare` command that
    # merely imports this module (it takes a third of a second to load).
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed as an attribute, not an ini option, so '%' in passwords needs no escaping.
    config.attributes["sqlalchemy_url"] = sync_url(url)
    return config


def upgrade_database(url: str, revision: str = "head") -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    from alembic import command

    command.upgrade(alembic_config(url), revision)
