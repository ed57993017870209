"""The Alembic migrations build exactly the schema the ORM models describe, both ways."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, insert, inspect, pool
from sqlalchemy.exc import IntegrityError

from engine.platform.database.migrate import alembic_config, sync_url, upgrade_database
from engine.platform.database.tables import (
    ApiKeyRecord,
    Base,
    CappedSend,
    Message,
    SuppressedAddress,
)

HEAD = "0016"


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
        - {"delivery_status", "delivery_updated_at"}  # 0002
        - {"claim_owner", "lease_until"}  # 0009
        - {"plan", "category", "customer_id", "experiment", "variant"}  # 0012
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


# --- 0004: API keys -----------------------------------------------------------------


def api_key_row(key_id: str) -> dict[str, Any]:
    return {"id": key_id, "name": "svc", "secret_hash": "0" * 64, "scopes": "journeys:read"}


def test_0004_creates_the_api_keys_table(sync_engine: Engine) -> None:
    columns = {c["name"]: c for c in inspect(sync_engine).get_columns("api_keys")}
    assert set(columns) == {column.name for column in ApiKeyRecord.__table__.columns}
    nullable = {name for name, column in columns.items() if column["nullable"]}
    assert nullable == {"revoked_at", "last_used_at"}
    with sync_engine.begin() as connection:
        connection.execute(insert(ApiKeyRecord), api_key_row("0123456789abcdef"))
        created = connection.exec_driver_sql("SELECT created_at FROM api_keys").scalar_one()
    assert created is not None
    with pytest.raises(IntegrityError), sync_engine.begin() as connection:
        connection.execute(insert(ApiKeyRecord), api_key_row("0123456789abcdef"))


def test_downgrade_to_0003_drops_the_api_keys_and_upgrade_restores_them(
    database_url: str, sync_engine: Engine
) -> None:
    command.downgrade(alembic_config(database_url), "0003")

    assert current_revision(sync_engine) == "0003"
    assert "api_keys" not in table_names(sync_engine)
    assert {"messages", "consent_events", "used_link_tokens"} <= table_names(sync_engine)

    upgrade_database(database_url)

    assert current_revision(sync_engine) == HEAD
    assert "api_keys" in table_names(sync_engine)
    assert schema_differences(sync_engine) == []


# --- 0005: customer data keys and journey owners (crypto-shredding) -----------------


def customer_key_row(key_id: str, customer_id: str) -> dict[str, Any]:
    return {
        "key_id": key_id,
        "customer_id": customer_id,
        "wrapped_key": b"\x00" * 60,
        "master_key_id": "k-1",
    }


def test_0005_creates_the_customer_key_tables(sync_engine: Engine) -> None:
    inspector = inspect(sync_engine)
    keys = {c["name"]: c for c in inspector.get_columns("customer_keys")}
    assert set(keys) == {c.name for c in Base.metadata.tables["customer_keys"].columns}
    assert not any(column["nullable"] for column in keys.values())
    uniques = inspector.get_unique_constraints("customer_keys")
    assert [(u["name"], u["column_names"]) for u in uniques] == [
        ("uq_customer_keys_customer_id", ["customer_id"])
    ]
    owners = {c["name"]: c for c in inspector.get_columns("journey_owners")}
    assert set(owners) == {"workflow_id", "customer_id", "created_at"}
    assert not any(column["nullable"] for column in owners.values())
    indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes("journey_owners")}
    assert indexes.get("ix_journey_owners_customer_id") == ["customer_id"]


def test_0005_keeps_one_key_per_customer_and_one_owner_per_journey(
    sync_engine: Engine,
) -> None:
    customer_keys = Base.metadata.tables["customer_keys"]
    owners = Base.metadata.tables["journey_owners"]
    with sync_engine.begin() as connection:
        connection.execute(insert(customer_keys), customer_key_row("ck-1", "cus_1"))
        connection.execute(insert(owners), {"workflow_id": "order-1", "customer_id": "cus_1"})
        stored = connection.exec_driver_sql(
            "SELECT wrapped_key, created_at FROM customer_keys"
        ).one()
    assert bytes(stored[0]) == b"\x00" * 60
    assert stored[1] is not None
    with pytest.raises(IntegrityError), sync_engine.begin() as connection:
        connection.execute(insert(customer_keys), customer_key_row("ck-2", "cus_1"))
    with pytest.raises(IntegrityError), sync_engine.begin() as connection:
        connection.execute(insert(owners), {"workflow_id": "order-1", "customer_id": "cus_2"})


def test_downgrade_to_0004_drops_the_customer_key_tables_and_upgrade_restores_them(
    database_url: str, sync_engine: Engine
) -> None:
    command.downgrade(alembic_config(database_url), "0004")

    assert current_revision(sync_engine) == "0004"
    assert not {"customer_keys", "journey_owners"} & table_names(sync_engine)
    assert "api_keys" in table_names(sync_engine)

    upgrade_database(database_url)

    assert current_revision(sync_engine) == HEAD
    assert {"customer_keys", "journey_owners"} <= table_names(sync_engine)
    assert schema_differences(sync_engine) == []


# --- 0006: customer preferences and erased customers -------------------------------


def test_0006_creates_the_preferences_and_erasure_tables(sync_engine: Engine) -> None:
    inspector = inspect(sync_engine)
    columns = {c["name"]: c for c in inspector.get_columns("customer_preferences")}
    assert set(columns) == {
        "customer_id",
        "locale",
        "timezone",
        "quiet_start",
        "quiet_end",
        "preferred_channel",
        "revision",
        "updated_at",
    }
    assert columns["customer_id"]["nullable"] is False
    assert columns["revision"]["nullable"] is False
    assert all(columns[name]["nullable"] for name in set(columns) - {"customer_id", "revision"})
    erased = {c["name"]: c for c in inspector.get_columns("erased_customers")}
    assert set(erased) == {"customer_hash", "erased_at"}
    assert inspector.get_pk_constraint("erased_customers")["constrained_columns"] == [
        "customer_hash"
    ]
    with sync_engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO customer_preferences (customer_id) VALUES ('c1')")
        connection.exec_driver_sql("INSERT INTO erased_customers (customer_hash) VALUES ('h1')")
        revision = connection.exec_driver_sql(
            "SELECT revision FROM customer_preferences"
        ).scalar_one()
        erased_at = connection.exec_driver_sql("SELECT erased_at FROM erased_customers").scalar()
    assert revision == 0  # the server default
    assert erased_at is not None
    with pytest.raises(IntegrityError), sync_engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO erased_customers (customer_hash) VALUES ('h1')")


def test_downgrade_to_0005_drops_the_0006_tables_and_upgrade_restores_them(
    database_url: str, sync_engine: Engine
) -> None:
    command.downgrade(alembic_config(database_url), "0005")

    assert current_revision(sync_engine) == "0005"
    assert not {"customer_preferences", "erased_customers"} & table_names(sync_engine)
    assert {"messages", "consent_events"} <= table_names(sync_engine)
    differences = [diff for diff in schema_differences(sync_engine) if isinstance(diff, tuple)]
    added = {diff[1].name for diff in differences if diff[0] == "add_table"}
    assert {"customer_preferences", "erased_customers"} <= added

    upgrade_database(database_url)

    assert current_revision(sync_engine) == HEAD
    assert schema_differences(sync_engine) == []


# --- 0007: frequency-cap slots ----------------------------------------------------------


def capped_send_row(key: str) -> dict[str, Any]:
    return {
        "send_key": key,
        "customer_id": "cus-1",
        "category": "marketing",
        "state": "reserved",
        "priority": 20,
        "slot_at": datetime(2027, 5, 3, 9, 0, tzinfo=UTC),
    }


def test_0007_creates_the_capped_sends_table(sync_engine: Engine) -> None:
    inspector = inspect(sync_engine)
    columns = {column["name"]: column for column in inspector.get_columns("capped_sends")}
    assert set(columns) == {column.name for column in CappedSend.__table__.columns}
    assert not any(column["nullable"] for column in columns.values())
    uniques = inspector.get_unique_constraints("capped_sends")
    assert [(u["name"], u["column_names"]) for u in uniques] == [
        ("uq_capped_sends_send_key", ["send_key"])
    ]
    indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes("capped_sends")}
    assert indexes.get("ix_capped_sends_customer_id") == ["customer_id"]


def test_0007_keeps_one_slot_per_message(sync_engine: Engine) -> None:
    with sync_engine.begin() as connection:
        connection.execute(insert(CappedSend), capped_send_row("order-1/cross_sell/0"))
    with pytest.raises(IntegrityError), sync_engine.begin() as connection:
        connection.execute(insert(CappedSend), capped_send_row("order-1/cross_sell/0"))
    with sync_engine.connect() as connection:
        created = connection.exec_driver_sql("SELECT created_at FROM capped_sends").scalar_one()
    assert created is not None


def test_downgrade_to_0006_drops_the_capped_sends_and_upgrade_restores_them(
    database_url: str, sync_engine: Engine
) -> None:
    command.downgrade(alembic_config(database_url), "0006")

    assert current_revision(sync_engine) == "0006"
    assert "capped_sends" not in table_names(sync_engine)
    assert {"messages", "consent_events"} <= table_names(sync_engine)

    upgrade_database(database_url)

    assert current_revision(sync_engine) == HEAD
    assert "capped_sends" in table_names(sync_engine)
    assert schema_differences(sync_engine) == []


# --- 0008: the phone index and feedback answers ------------------------------------


def test_downgrade_to_0007_drops_the_phone_and_feedback_tables_and_upgrade_restores_them(
    database_url: str, sync_engine: Engine
) -> None:
    new_tables = {"phone_customers", "feedback_responses"}
    assert new_tables <= table_names(sync_engine)
    inspector = inspect(sync_engine)
    assert inspector.get_pk_constraint("phone_customers")["constrained_columns"] == [
        "phone_hash",
        "customer_id",
    ]
    assert inspector.get_pk_constraint("feedback_responses")["constrained_columns"] == [
        "token_hash"
    ]
    with sync_engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO phone_customers (phone_hash, customer_id) VALUES ('h1', 'c1')"
        )
    # One row per number and customer.
    with pytest.raises(IntegrityError), sync_engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO phone_customers (phone_hash, customer_id) VALUES ('h1', 'c1')"
        )

    command.downgrade(alembic_config(database_url), "0007")

    assert current_revision(sync_engine) == "0007"
    assert not new_tables & table_names(sync_engine)
    differences = [diff for diff in schema_differences(sync_engine) if isinstance(diff, tuple)]
    added = {diff[1].name for diff in differences if diff[0] == "add_table"}
    assert new_tables <= added

    upgrade_database(database_url)

    assert current_revision(sync_engine) == HEAD
    assert schema_differences(sync_engine) == []
    for table, index in (
        ("phone_customers", "ix_phone_customers_customer_id"),
        ("feedback_responses", "ix_feedback_responses_customer_id"),
    ):
        assert index in {i["name"] for i in inspect(sync_engine).get_indexes(table)}


# --- 0009: who holds a claimed message, and until when -----------------------------


def test_downgrade_to_0008_drops_the_claim_lease_and_upgrade_restores_it(
    database_url: str, sync_engine: Engine
) -> None:
    def message_columns() -> set[str]:
        return {column["name"] for column in inspect(sync_engine).get_columns("messages")}

    assert {"claim_owner", "lease_until"} <= message_columns()
    with sync_engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO messages (idempotency_key, journey_id, step, iteration, channel,"
            " template, recipient, status, attempts, claim_owner)"
            " VALUES ('j/s/0/email', 'j', 's', 0, 'email', 't', 'r', 'claimed', 1, 'run/1/1')"
        )

    command.downgrade(alembic_config(database_url), "0008")

    assert current_revision(sync_engine) == "0008"
    assert not {"claim_owner", "lease_until"} & message_columns()
    with sync_engine.connect() as connection:
        kept = connection.exec_driver_sql("SELECT step, status FROM messages").all()
    assert [tuple(row) for row in kept] == [("s", "claimed")]  # the rows survive

    upgrade_database(database_url)

    assert current_revision(sync_engine) == HEAD
    assert schema_differences(sync_engine) == []


# --- 0010: the API key behind each consent decision -------------------------------


def test_downgrade_to_0009_drops_the_consent_key_and_upgrade_restores_it(
    database_url: str, sync_engine: Engine
) -> None:
    def consent_columns() -> dict[str, Any]:
        return {c["name"]: c for c in inspect(sync_engine).get_columns("consent_events")}

    assert consent_columns()["api_key_id"]["nullable"] is True
    with sync_engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO consent_events (customer_id, granted, source, api_key_id)"
            " VALUES ('c1', false, 'api', '0123456789abcdef')"
        )
        connection.exec_driver_sql(
            "INSERT INTO consent_events (customer_id, granted, source)"
            " VALUES ('c1', true, 'preference_centre')"
        )

    command.downgrade(alembic_config(database_url), "0009")

    assert current_revision(sync_engine) == "0009"
    assert "api_key_id" not in consent_columns()
    with sync_engine.connect() as connection:
        kept = connection.exec_driver_sql(
            "SELECT customer_id, source FROM consent_events ORDER BY id"
        ).all()
    assert [tuple(row) for row in kept] == [("c1", "api"), ("c1", "preference_centre")]

    upgrade_database(database_url)

    assert current_revision(sync_engine) == HEAD
    assert schema_differences(sync_engine) == []
    with sync_engine.connect() as connection:
        keys = connection.exec_driver_sql(
            "SELECT api_key_id FROM consent_events ORDER BY id"
        ).scalars()
        assert list(keys) == [None, None]  # what was dropped does not come back


# --- 0011: pauses of sending by scope ------------------------------------------------


def test_0011_keeps_one_active_pause_per_scope_and_any_number_lifted(
    database_url: str, sync_engine: Engine
) -> None:
    pauses = Base.metadata.tables["send_pauses"]
    assert {c["name"] for c in inspect(sync_engine).get_columns("send_pauses")} == {
        c.name for c in pauses.columns
    }

    def pause(pause_id: str, active_key: str | None) -> dict[str, Any]:
        return {
            "id": pause_id,
            "scope_kind": "step",
            "scope_value": "cross_sell",
            "include_transactional": True,
            "reason": "",
            "created_at": datetime(2027, 1, 1, tzinfo=UTC),
            "active_key": active_key,
        }

    with sync_engine.begin() as connection:
        connection.execute(insert(pauses), [pause("p1", None), pause("p2", None)])
        connection.execute(insert(pauses), [pause("p3", "step:all:cross_sell")])
    with pytest.raises(IntegrityError), sync_engine.begin() as connection:
        connection.execute(insert(pauses), [pause("p4", "step:all:cross_sell")])

    command.downgrade(alembic_config(database_url), "0010")

    assert current_revision(sync_engine) == "0010"
    assert "send_pauses" not in table_names(sync_engine)
    assert "consent_events" in table_names(sync_engine)

    upgrade_database(database_url)

    assert current_revision(sync_engine) == HEAD
    assert schema_differences(sync_engine) == []
