"""Our database out of reach while the API serves: a retryable UNAVAILABLE that says
so, never UNKNOWN, and nothing started. The database is dropped for real under a
running API server (PostgreSQL terminates its connections)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from clients import ServiceUnavailableError
from engine.cli.samples import sample_order
from engine.devstack.mail_sink import MailSink
from engine.platform.database.migrate import upgrade_database
from tests.support.databases import POSTGRES_ADMIN_DSN, postgres_available, postgres_database
from tests.support.ids import new_order_id
from tests.support.preferences import preferences_stack


async def test_a_database_out_of_reach_answers_unavailable_and_starts_nothing(
    temporal_client: Client,
    tmp_path: Path,
    mail_sink: MailSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not postgres_available():
        pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432")
    # The API key stays verified in memory, so each call reaches its handler.
    monkeypatch.setenv("AFTERCARE_API_KEY_CACHE_SECONDS", "300")
    with postgres_database() as url:
        upgrade_database(url)
        async with preferences_stack(
            temporal_client, url, tmp_path, mail_sink, with_worker=False
        ) as stack:
            customer = new_order_id("cus")
            await stack.client.get_preferences(customer)  # served while the database is up

            database = url.rsplit("/", 1)[1]
            with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(database))
                )

            with pytest.raises(ServiceUnavailableError, match="database is unreachable"):
                await stack.client.get_preferences(customer)
            order_id = new_order_id("DBDOWN")
            with pytest.raises(ServiceUnavailableError, match="database is unreachable"):
                await stack.client.start_journey(sample_order(order_id))

            with pytest.raises(RPCError) as missing:
                await temporal_client.get_workflow_handle(f"order-{order_id}").describe()
            assert missing.value.status == RPCStatusCode.NOT_FOUND
