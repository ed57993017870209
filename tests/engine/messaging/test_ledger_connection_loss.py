"""Recording a send's outcome survives the database connection dying under it, and
does not wait for a connection busy with other sends.

Found by ``make chaos`` (postgres_kill): a connection terminated while ``mark_sent``
ran made the activity fail *after* the provider had taken the message; its retry
found the ledger row still ``claimed`` and sent the message a second time. The
ledger now repeats the recording on a fresh connection.

The connection is killed for real, by PostgreSQL's ``pg_terminate_backend`` on the
backend that is about to run the ledger's UPDATE (SQLite has no such thing; its
"database is locked" takes the same retry path).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from engine.messaging.ledger import Claim, MessageLedger
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.migrate import upgrade_database
from engine.platform.database.tables import MessageStatus
from tests.support.databases import POSTGRES_ADMIN_DSN, postgres_available, postgres_database


@pytest.fixture
async def postgres_engine() -> AsyncIterator[AsyncEngine]:
    if not postgres_available():
        pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432")
    with postgres_database() as url:
        upgrade_database(url)
        engine = create_engine(url)
        yield engine
        await engine.dispose()


def kill_connection_before(engine: AsyncEngine, statement_start: str, times: int) -> list[int]:
    """Terminate the backend about to run a statement starting with ``statement_start``
    (the first ``times`` such statements); returns the pids terminated so far."""
    killed: list[int] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def terminate(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if len(killed) >= times or not statement.lstrip().upper().startswith(statement_start):
            return
        pid = conn.connection.driver_connection.info.backend_pid
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
            # Wait (up to 5 s) until the backend is gone: the statement then meets a
            # dead connection, as it does when a kill lands mid-send.
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
        killed.append(pid)

    return killed


def new_claim() -> Claim:
    return Claim(
        journey_id=f"order-LOSS-{uuid.uuid4().hex[:8]}",
        step="order_confirmation",
        iteration=0,
        channel="email",
        template="order_confirmation",
        recipient="maya@example.com",
    )


@pytest.mark.postgres
async def test_mark_sent_survives_its_connection_being_terminated(
    postgres_engine: AsyncEngine,
) -> None:
    ledger = MessageLedger(create_session_factory(postgres_engine))
    claim = new_claim()
    await ledger.claim(claim)
    killed = kill_connection_before(postgres_engine, "UPDATE MESSAGES", times=1)
    sent_at = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

    await ledger.mark_sent(claim.key, provider_message_id="<once@shop.example>", sent_at=sent_at)

    assert len(killed) == 1  # the recording really lost its connection once
    entry = await ledger.get(claim.key)
    assert entry is not None
    assert entry.status == MessageStatus.SENT
    assert entry.provider_message_id == "<once@shop.example>"
    assert entry.sent_at == sent_at
    # A retried activity now finds the row final and sends nothing.
    again = await ledger.claim(claim)
    assert again.is_final
    assert again.attempts == 1


@pytest.mark.postgres
async def test_mark_failed_survives_its_connection_being_terminated(
    postgres_engine: AsyncEngine,
) -> None:
    ledger = MessageLedger(create_session_factory(postgres_engine))
    claim = new_claim()
    await ledger.claim(claim)
    killed = kill_connection_before(postgres_engine, "UPDATE MESSAGES", times=2)

    await ledger.mark_failed(claim.key, "550 5.1.1 no such user")

    assert len(killed) == 2
    entry = await ledger.get(claim.key)
    assert entry is not None
    assert entry.status == MessageStatus.FAILED
    assert entry.error == "550 5.1.1 no such user"


@pytest.mark.postgres
async def test_a_recording_that_keeps_failing_is_raised(postgres_engine: AsyncEngine) -> None:
    ledger = MessageLedger(create_session_factory(postgres_engine), record_attempts=3)
    claim = new_claim()
    await ledger.claim(claim)
    killed = kill_connection_before(postgres_engine, "UPDATE MESSAGES", times=1000)

    # Not forever: the activity attempt must end (and be retried) at some point.
    with pytest.raises(OperationalError):
        await ledger.mark_sent(claim.key, provider_message_id="<x@y>", sent_at=datetime.now(UTC))
    assert len(killed) == 3  # every try lost its connection; then the error is raised
    entry = await ledger.get(claim.key)
    assert entry is not None
    assert entry.status == MessageStatus.CLAIMED


async def test_recording_does_not_queue_behind_other_work(database_url: str) -> None:
    """Found by ``make chaos`` (worker_kill, 500 journeys): an accepted send waited a
    median 0.8 s for the worker's one SQLite connection before it was recorded, and a
    SIGKILL in that wait made the retry send it again. The recorder is a connection
    of its own: here the main pool's only connection is taken, and the send is still
    recorded."""
    main = create_async_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=60)
    recorder = create_engine(database_url)
    try:
        ledger = MessageLedger(
            create_session_factory(main), recorder=create_session_factory(recorder)
        )
        claim = new_claim()
        await ledger.claim(claim)
        sent_at = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
        async with main.connect():  # every other send's claims and reads wait for this
            # A bound, not a timing: without the recorder this waits for the pool's 60 s.
            await asyncio.wait_for(
                ledger.mark_sent(
                    claim.key, provider_message_id="<q@shop.example>", sent_at=sent_at
                ),
                30,
            )
        entry = await ledger.get(claim.key)
    finally:
        await main.dispose()
        await recorder.dispose()
    assert entry is not None
    assert entry.status == MessageStatus.SENT
    assert entry.provider_message_id == "<q@shop.example>"
