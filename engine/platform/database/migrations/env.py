"""Alembic environment: runs migrations online against the URL given by migrate.py."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from engine.platform.database.tables import Base

config = context.config


def run_migrations_online() -> None:
    connectable = create_engine(config.attributes["sqlalchemy_url"], poolclass=pool.NullPool)
    with connectable.connect() as connection:
        if connection.dialect.name == "sqlite":
            # Before any service opens the file: switching a file to WAL while
            # another process has it open fails without waiting.
            connection.exec_driver_sql("PRAGMA journal_mode=WAL")
            connection.commit()
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    connectable.dispose()


run_migrations_online()
