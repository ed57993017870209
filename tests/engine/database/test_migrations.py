"""The Alembic migrations build exactly the schema the ORM models describe, both ways."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, insert, inspect, pool
from sqlalchemy.exc import IntegrityError

from engine.database.migrate import alembic_config, sync_url, upgrade_database
from engine.database.tables import Base, Message, SuppressedAddress

HEAD = "0003"


@pytest.fixture
def sync_engine(database_url: str) -> Iterator[Engine]:
    """A synchronous engine on the (already migrated) test database."""
    engine = create_engine(sync_url(database_url), poolclass=pool.NullPool)
    yield engine
    engine.dispose()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def schema_differences(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, Base.metadata))


def message_row(key: str) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "journey_id": "journey-1",
        "step": "order_confirmation",
        "iteration": 0,
        "channel": "email",
        "template": "order_confirmation",
        "recipient": "jane@example.test",
        "status": "claimed",
        "attempts": 1,
    }


def test_sync_url_maps_async_drivers_to_sync_ones() -> None:
    assert sync_url("sqlite+aiosqlite:////tmp/x.db").drivername == "sqlite"
    assert sync_url("postgresql+asyncpg://u@h/db").drivername == "postgresql+psycopg"
    # A driver that works both ways is kept, and the rest of the URL is untouched.
    kept = sync_url("postgresql+psycopg://user:p%25ss@host:5433/db")
    assert kept.drivername == "postgresql+psycopg"
    assert (kept.username, kept.password, kept.host, kept.port, kept.database) == (
        "user",
        "p%ss",
        "host",
        5433,
        "db",
    )


def test_upgrade_to_head_creates_the_messages_table(sync_engine: Engine) -> None:
    assert current_revision(sync_engine) == HEAD
    assert "messages" in table_names(sync_engine)

    inspector = inspect(sync_engine)
    columns = {column["name"]: column for column in inspector.get_columns("messages")}
    assert set(columns) == {column.name for column in Message.__table__.columns}
    assert columns["idempotency_key"]["nullable"] is False
    assert columns["sent_at"]["nullable"] is True

    uniques = inspector.get_unique_constraints("messages")
    assert [(u["name"], u["column_names"]) for u in uniques] == [
        ("uq_messages_idempotency_key", ["idempotency_key"])
    ]
    indexes = {index["name"]: index["column_names"] for index in inspector.get_indexes("messages")}
    assert indexes.get("ix_messages_journey_id") == ["journey_id"]
    assert indexes.get("ix_messages_status") == ["status"]
    assert indexes.get("ix_messages_provider_message_id") == ["provider_message_id"]


def test_the_unique_constraint_rejects_a_second_row_for_one_key(sync_engine: Engine) -> None:
    with sync_engine.begin() as connection:
        connection.execute(insert(Message), message_row("journey-1/step/0"))
    with pytest.raises(IntegrityError), sync_engine.begin() as connection:
        connection.execute(insert(Message), message_row("journey-1/step/0"))
    with sync_engine.begin() as connection:
        # A different iteration is a different message.
        connection.execute(insert(Message), message_row("journey-1/step/1"))
        count = connection.exec_driver_sql("SELECT count(*) FROM messages").scalar_one()
    assert count == 2


def test_server_defaults_fill_the_timestamps(sync_engine: Engine) -> None:
    with sync_engine.begin() as connection:
        connection.execute(insert(Message), message_row("journey-1/defaults/0"))
        created, updated, sent = connection.exec_driver_sql(
            "SELECT created_at, updated_at, sent_at FROM messages"
        ).one()
    assert created is not None
    assert updated is not None
    assert sent is None


def test_downgrade_to_base_and_upgrade_again(database_url: str, sync_engine: Engine) -> None:
    config = alembic_config(database_url)

    command.downgrade(config, "base")
    assert "messages" not in table_names(sync_engine)
    assert current_revision(sync_engine) is None

    upgrade_database(database_url)
    assert "messages" in table_names(sync_engine)
    assert current_revision(sync_engine) == HEAD
    assert schema_differences(sync_engine) == []
    with sync_engine.begin() as connection:
        connection.execute(insert(Message), message_row("journey-2/step/0"))
        count = connection.exec_driver_sql("SELECT count(*) FROM messages").scalar_one()
    assert count == 1


def test_upgrading_an_up_to_date_database_changes_nothing(
    database_url: str, sync_engine: Engine
) -> None:
    with sync_engine.begin() as connection:
        connection.execute(insert(Message), message_row("journey-3/step/0"))
    upgrade_database(database_url)
    assert current_revision(sync_engine) == HEAD
    with sync_engine.connect() as connection:
        count = connection.exec_driver_sql("SELECT count(*) FROM messages").scalar_one()
    assert count == 1


def test_the_orm_models_match_the_migrations(sync_engine: Engine) -> None:
    assert schema_differences(sync_engine) == []


def test_compare_metadata_does_notice_a_missing_table(
    database_url: str, sync_engine: Engine
) -> None:
    # Guards the test above: an empty diff must mean "equal", not "not compared".
    command.downgrade(alembic_config(database_url), "base")
    differences = schema_differences(sync_engine)
    assert ("add_table", "messages") in [(diff[0], diff[1].name) for diff in differences]


# --- 0002: delivery reports and the suppression list -------------------------------


def message_columns(engine: Engine) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns("messages")}


def test_0002_adds_nullable_delivery_columns(sync_engine: Engine) -> None:
    columns = {column["name"]: column for column in inspect(sync_engine).get_columns("messages")}
    assert columns["delivery_status"]["nullable"] is True
    assert columns["delivery_updated_at"]["nullable"] is True
    with sync_engine.begin() as connection:
        connection.execute(insert(Message), message_row("journey-4/step/0"))
        status, updated = connection.exec_driver_sql(
            "SELECT delivery_status, delivery_updated_at FROM messages"
        ).one()
    assert (status, updated) == (None, None)


def test_0002_creates_the_suppressions_table(sync_engine: Engine) -> None:
    inspector = inspect(sync_engine)
    columns = {column["name"]: column for column in inspector.get_columns("suppressions")}
    assert set(columns) == {column.name for column in SuppressedAddress.__table__.columns}
    assert set(columns) == {"id", "channel", "address", "reason", "created_at"}
    assert not any(column["nullable"] for column in columns.values())
    uniques = inspector.get_unique_constraints("suppressions")
    assert [(u["name"], u["column_names"]) for u in uniques] == [
        ("uq_suppressions_channel", ["channel", "address"])
    ]


def test_one_suppression_per_channel_and_address(sync_engine: Engine) -> None:
    row = {"channel": "sms", "address": "+15005550006", "reason": "test"}
    with sync_engine.begin() as connection:
        connection.execute(insert(SuppressedAddress), row)
    with pytest.raises(IntegrityError), sync_engine.begin() as connection:
        connection.execute(insert(SuppressedAddress), row)
    with sync_engine.begin() as connection:
        # The same number on another channel is another suppression.
        connection.execute(insert(SuppressedAddress), {**row, "channel": "whatsapp"})
        created = connection.exec_driver_sql(
            "SELECT created_at FROM suppressions ORDER BY id"
        ).scalars()
        assert all(value is not None for value in created)


def test_downgrade_to_0001_keeps_messages_and_upgrade_restores_0002(
    database_url: str, sync_engine: Engine
) -> None:
    with sync_engine.begin() as connection:
        connection.execute(
            insert(Message),
            {**message_row("journey-5/step/0"), "provider_message_id": "SM123"},
        )
        connection.execute(
            insert(SuppressedAddress), {"channel": "sms", "address": "+1555", "reason": "x"}
        )
        connection.exec_driver_sql("UPDATE messages SET delivery_status = 'delivered'")

    command.downgrade(alembic_config(database_url), "0001")

    assert current_revision(sync_engine) == "0001"
    assert "suppressions" not in table_names(sync_engine)
    assert message_columns(sync_engine) == (
        {column.name for column in Message.__table__.columns}
        - {"delivery_status", "delivery_updated_at"}
    )
    inspector = inspect(sync_engine)
    # SQLite rebuilt the table to drop the columns: 0001's constraint and indexes survive.
    uniques = inspector.get_unique_constraints("messages")
    assert [(u["name"], u["column_names"]) for u in uniques] == [
        ("uq_messages_idempotency_key", ["idempotency_key"])
    ]
    # PostgreSQL also lists the unique constraint's index; only plain indexes count here.
    indexes = {
        index["name"]: index["column_names"]
        for index in inspector.get_indexes("messages")
        if "duplicates_constraint" not in index
    }
    assert indexes == {
        "ix_messages_journey_id": ["journey_id"],
        "ix_messages_status": ["status"],
    }
    with sync_engine.connect() as connection:
        kept = connection.exec_driver_sql(
            "SELECT idempotency_key, provider_message_id FROM messages"
        ).all()
    assert [tuple(row) for row in kept] == [("journey-5/step/0", "SM123")]
    with pytest.raises(IntegrityError), sync_engine.begin() as connection:
        connection.execute(insert(Message), message_row("journey-5/step/0"))

    upgrade_database(database_url)

    assert current_revision(sync_engine) == HEAD
    assert schema_differences(sync_engine) == []
    with sync_engine.connect() as connection:
        again = connection.exec_driver_sql(
            "SELECT idempotency_key, delivery_status FROM messages"
        ).all()
        suppressions = connection.exec_driver_sql("SELECT count(*) FROM suppressions").scalar()
    assert [tuple(row) for row in again] == [("journey-5/step/0", None)]
    assert suppressions == 0


def test_compare_metadata_does_notice_missing_0002_parts(
    database_url: str, sync_engine: Engine
) -> None:
    command.downgrade(alembic_config(database_url), "0001")
    differences = [diff for diff in schema_differences(sync_engine) if isinstance(diff, tuple)]
    kinds = {(diff[0], getattr(diff[-1], "name", None)) for diff in differences}
    assert ("add_table", "suppressions") in kinds
    assert ("add_column", "delivery_status") in kinds
    assert ("add_column", "delivery_updated_at") in kinds
    assert ("add_index", "ix_messages_provider_message_id") in kinds


# --- 0003: consent events and used link tokens -------------------------------------


def test_downgrade_to_0002_drops_the_consent_tables_and_upgrade_restores_them(
    database_url: str, sync_engine: Engine
) -> None:
    assert {"consent_events", "used_link_tokens"} <= table_names(sync_engine)

    command.downgrade(alembic_config(database_url), "0002")

    assert current_revision(sync_engine) == "0002"
    assert not {"consent_events", "used_link_tokens"} & table_names(sync_engine)
    assert {"messages", "suppressions"} <= table_names(sync_engine)

    upgrade_database(database_url)

    assert current_revision(sync_engine) == HEAD
    assert schema_differences(sync_engine) == []
    indexes = {index["name"] for index in inspect(sync_engine).get_indexes("consent_events")}
    assert "ix_consent_events_customer_id" in indexes
