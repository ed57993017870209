"""Erasure as a durable workflow, end to end on the real dev server, worker, gRPC API,
key store and SQLite and PostgreSQL: it finds every journey of the customer through
our own owner mapping, also those Temporal no longer keeps; a repeated erasure
finishes what a late send left; a journey start racing an erasure leaves no journey
and no key behind; and an erasure that takes longer than an API call answers where
it stands, then finishes on its own."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from aftercare.v1 import journey_pb2 as journey_pb
from aftercare.v1 import preferences_pb2 as pb
from sqlalchemy import func, select
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from clients import CustomerErasedError
from engine.cli.samples import sample_order
from engine.customers import erasure
from engine.devstack.mail_sink import MailSink
from engine.devstack.temporal_server import TemporalDevServer
from engine.messaging.ledger import HASHED_RECIPIENT_PREFIX, Claim, MessageLedger
from engine.platform.codec.customer_codec import customer_data_converter
from engine.platform.codec.customer_keys import CustomerKeys
from engine.platform.codec.keys import generate_keyring
from engine.platform.codec.runtime import erasure_marks_for
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.tables import CustomerKeyRecord, ErasedCustomer
from engine.platform.settings import Settings
from engine.processes.dev_stack import with_dev_secrets
from tests.support.preferences import PreferencesStack, preferences_stack
from tests.support.waiting import eventually

CONFIRMATION = "order_confirmation"
# A secret key other than the stack's (long enough to be one).
ANOTHER_SECRET = "another-deployment-s-secret-key-0123456789"


@pytest.fixture
async def keys(database_url: str, tmp_path: Path) -> AsyncIterator[CustomerKeys]:
    marks = erasure_marks_for(with_dev_secrets(Settings(_env_file=None, state_dir=tmp_path)))
    store = CustomerKeys.open(database_url, generate_keyring(), marks)
    yield store
    await store.aclose()


@pytest.fixture
async def stack(
    temporal_server: TemporalDevServer,
    keys: CustomerKeys,
    database_url: str,
    tmp_path: Path,
    mail_sink: MailSink,
) -> AsyncIterator[PreferencesStack]:
    temporal = await Client.connect(
        temporal_server.address, data_converter=customer_data_converter(keys.keyring, keys)
    )
    async with preferences_stack(temporal, database_url, tmp_path, mail_sink) as running:
        yield running


async def recipients(database_url: str, journey_id: str) -> list[str]:
    engine = create_engine(database_url)
    try:
        entries = await MessageLedger(create_session_factory(engine)).for_journey(journey_id)
    finally:
        await engine.dispose()
    return [entry.recipient for entry in entries]


async def scalar(database_url: str, statement: object) -> object:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            return await session.scalar(statement)
    finally:
        await engine.dispose()


async def finished_erasure(stack: PreferencesStack, customer_id: str) -> pb.EraseCustomerResponse:
    """Ask again until the customer's erasure says it is done."""

    async def ask() -> pb.EraseCustomerResponse:
        return await stack.client.erase_customer(customer_id)

    return await eventually(ask, lambda answer: answer.finished, seconds=120, interval=2)


def an_order(customer_id: str) -> journey_pb.Order:
    order = sample_order(f"ERD-{uuid.uuid4().hex[:10]}")
    order.customer.id = customer_id
    return order


async def confirmed(stack: PreferencesStack, database_url: str, order: journey_pb.Order) -> str:
    """Start the order's journey and wait for its confirmation in the ledger."""
    journey_id = (await stack.client.start_journey(order)).journey_id
    await eventually(lambda: recipients(database_url, journey_id), lambda found: len(found) == 1)
    return journey_id


async def test_a_journey_temporal_no_longer_keeps_is_found_and_its_ledger_hashed(
    stack: PreferencesStack, database_url: str
) -> None:
    customer = f"cus-deleted-{uuid.uuid4().hex[:8]}"
    order = an_order(customer)
    journey_id = await confirmed(stack, database_url, order)
    address = order.customer.email
    assert await recipients(database_url, journey_id) == [address]
    await stack.temporal.get_workflow_handle(journey_id).terminate("ended long ago")
    await _delete(stack.temporal, journey_id)

    erased = await stack.client.erase_customer(customer)

    assert erased.finished
    assert erased.ledger_rows_anonymised == 1
    [hashed] = await recipients(database_url, journey_id)
    assert hashed.startswith(HASHED_RECIPIENT_PREFIX)
    assert address not in hashed
    # Asked again: nothing left, and it says so.
    again = await stack.client.erase_customer(customer)
    assert (again.finished, again.already_erased, again.ledger_rows_anonymised) == (True, True, 0)


async def _delete(client: Client, journey_id: str) -> None:
    """What retention does to a closed journey: Temporal deletes its history (the dev
    server does it in the background, within a minute)."""
    await client.workflow_service.delete_workflow_execution(
        DeleteWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=journey_id),
        )
    )

    async def gone() -> bool:
        return await _status(client, journey_id) is None

    await eventually(gone, bool, seconds=120, interval=1)


async def _status(client: Client, journey_id: str) -> WorkflowExecutionStatus | None:
    """The journey's status; None when Temporal has no such journey."""
    try:
        description = await client.get_workflow_handle(journey_id).describe()
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        return None
    return description.status


async def test_a_repeated_erasure_finishes_what_a_late_send_left(
    stack: PreferencesStack, database_url: str
) -> None:
    customer = f"cus-late-{uuid.uuid4().hex[:8]}"
    journey_id = await confirmed(stack, database_url, an_order(customer))
    first = await stack.client.erase_customer(customer)
    assert first.finished
    assert first.ledger_rows_anonymised == 1

    # A send that was in flight when its journey was terminated records its message
    # after the erasure (its attempt ran on): the address is back in the ledger.
    engine = create_engine(database_url)
    try:
        await MessageLedger(create_session_factory(engine)).claim(
            Claim(journey_id, "thank_you", 0, "email", "thank_you", "late.send@example.com")
        )
    finally:
        await engine.dispose()

    # And Temporal no longer keeps the journey: only our owner mapping (which kept it
    # under the hashed id) can find it now.
    await _delete(stack.temporal, journey_id)
    again = await stack.client.erase_customer(customer)

    assert again.already_erased
    assert again.ledger_rows_anonymised == 1
    assert all(
        recipient.startswith(HASHED_RECIPIENT_PREFIX)
        for recipient in await recipients(database_url, journey_id)
    )


async def test_a_start_racing_an_erasure_leaves_no_journey_and_no_key(
    stack: PreferencesStack, database_url: str
) -> None:
    for round_ in range(6):
        customer = f"cus-race-{round_}-{uuid.uuid4().hex[:6]}"
        order = an_order(customer)
        # Same instant: the start may win or lose; either way nothing may remain.
        started, erased = await asyncio.gather(
            stack.client.start_journey(order),
            stack.client.erase_customer(customer),
            return_exceptions=True,
        )
        assert not isinstance(erased, BaseException), erased
        if isinstance(started, BaseException):
            assert isinstance(started, CustomerErasedError), started
        if not erased.finished:  # it waited for a start that might be in flight
            await finished_erasure(stack, customer)
        # No key was made, or it was destroyed; no journey of theirs runs.
        keys = await scalar(
            database_url,
            select(func.count())
            .select_from(CustomerKeyRecord)
            .where(CustomerKeyRecord.customer_id == customer),
        )
        assert keys == 0, f"round {round_}: a key survived"
        running = await stack.parts.directory.customer_journeys(customer, running_only=True)
        status = await _status(stack.temporal, f"order-{order.order_id}")
        assert status in (None, WorkflowExecutionStatus.TERMINATED), f"round {round_}: {status}"
        assert running == []
        # And a start afterwards is refused.
        with pytest.raises(CustomerErasedError):
            await stack.client.start_journey(an_order(customer))


async def test_the_erased_mark_is_a_keyed_hash(stack: PreferencesStack, database_url: str) -> None:
    customer = f"cus-keyed-{uuid.uuid4().hex[:8]}"
    await stack.client.erase_customer(customer)
    marks = erasure_marks_for(stack.settings)
    unkeyed = hashlib.sha256(f"aftercare-erased-customer:{customer}".encode()).hexdigest()
    stored = await scalar(
        database_url,
        select(ErasedCustomer.customer_hash).where(
            ErasedCustomer.customer_hash.in_([marks.digest(customer), unkeyed])
        ),
    )
    assert stored == marks.digest(customer)
    # Without the service's secret the id cannot be tested against the table.
    assert marks.digest(customer) != unkeyed
    assert erasure_marks_for(Settings(_env_file=None, secret_key=ANOTHER_SECRET)).digest(
        customer
    ) != marks.digest(customer)


async def test_an_erasure_longer_than_a_call_answers_where_it_stands_and_finishes(
    stack: PreferencesStack, database_url: str, keys: CustomerKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A journey's owner registered, its start still in flight: the erasure looks for
    # it again for a while (here 10 s), longer than the API waits for it (6 s).
    monkeypatch.setattr(erasure, "START_GRACE", timedelta(seconds=10))
    customer = f"cus-slow-{uuid.uuid4().hex[:8]}"
    await keys.register_journey(f"order-ERD-starting-{customer}", customer)

    answer = await stack.client.erase_customer(customer)

    assert not answer.finished
    assert answer.stage == "closing journeys"
    assert answer.erasure_id.startswith("erasure-")
    assert customer not in answer.erasure_id
    # It goes on without anyone waiting; asked again, it is done.
    done = await finished_erasure(stack, customer)
    assert done.erasure_id == answer.erasure_id
    assert done.stage == "done"
    assert (
        await scalar(
            database_url,
            select(func.count())
            .select_from(CustomerKeyRecord)
            .where(CustomerKeyRecord.customer_id == customer),
        )
        == 0
    )
