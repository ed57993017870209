"""EraseCustomer end to end: the real dev server, worker, gRPC API, mail sink, the
real customer key store, and SQLite and PostgreSQL. Erasure terminates the
customer's running journeys, leaves no preference, consent, frequency-cap, phone
index or feedback rows, keeps only hashed recipients in the ledger, destroys the
data key so their journeys' history can no longer be decrypted, refuses later
writes and journey starts for the customer, and is idempotent."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from aftercare.v1 import journey_pb2 as journey_pb
from aftercare.v1 import preferences_pb2 as pb
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import func, select
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.converter import DataConverter
from temporalio.service import RPCError, RPCStatusCode

from clients import CustomerErasedError, JourneyEndedError
from clients.aftercare_client import CUSTOMER_ERASED
from engine.cli.samples import sample_order, sample_shipment
from engine.customers.consent import ConsentLedger, CustomerErased
from engine.customers.erasure import RecipientHasher
from engine.customers.feedback_responses import FeedbackResponses
from engine.devstack.mail_sink import MailSink
from engine.devstack.temporal_server import TemporalDevServer
from engine.messaging.frequency_caps import FrequencyCapStore, send_key
from engine.messaging.ledger import HASHED_RECIPIENT_PREFIX, MessageLedger
from engine.messaging.phone_index import PhoneIndex, phone_index_key
from engine.platform.codec.aes_gcm import CUSTOMER_KEY_KIND, KEY_KIND_METADATA
from engine.platform.codec.customer_codec import CustomerKeyDestroyed, customer_data_converter
from engine.platform.codec.customer_keys import CustomerKeys
from engine.platform.codec.keys import generate_keyring
from engine.platform.codec.runtime import erasure_marks_for
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.tables import (
    CappedSend,
    ConsentRecord,
    CustomerKeyRecord,
    CustomerPreferenceRecord,
    ErasedCustomer,
    FeedbackResponse,
    JourneyOwnerRecord,
    PhoneCustomer,
)
from engine.platform.links.secret import load_or_create_secret
from engine.platform.settings import Settings
from engine.processes.dev_stack import with_dev_secrets
from tests.support.orders import domain_order
from tests.support.preferences import PreferencesStack, preferences_stack
from tests.support.waiting import eventually
from workflows.frequency import CapCheck
from workflows.plans.model import FrequencyCap


@pytest.fixture
async def keys(database_url: str, tmp_path: Path) -> AsyncIterator[CustomerKeys]:
    """The real key store on the test's database, under a throwaway master key, with
    the erasure marks of the stack's secret (the stack's state dir is tmp_path too)."""
    marks = erasure_marks_for(with_dev_secrets(Settings(_env_file=None, state_dir=tmp_path)))
    store = CustomerKeys.open(database_url, generate_keyring(), marks)
    yield store
    await store.aclose()


@pytest.fixture
async def temporal(temporal_server: TemporalDevServer, keys: CustomerKeys) -> Client:
    """A client encrypting each journey under its customer's key, as ``connect`` does:
    the API starts journeys with it and the worker runs them with it."""
    return await Client.connect(
        temporal_server.address, data_converter=customer_data_converter(keys.keyring, keys)
    )


@pytest.fixture
async def stack(
    temporal: Client,
    database_url: str,
    tmp_path: Path,
    mail_sink: MailSink,
    keys: CustomerKeys,
) -> AsyncIterator[PreferencesStack]:
    async with preferences_stack(temporal, database_url, tmp_path, mail_sink) as running:
        yield running


async def count(database_url: str, table: type[object], where: object) -> int:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            found = await session.scalar(select(func.count()).select_from(table).where(where))  # type: ignore[arg-type]
    finally:
        await engine.dispose()
    assert isinstance(found, int)
    return found


async def ledger_rows(database_url: str, journey_id: str) -> list[tuple[str, str, str | None]]:
    engine = create_engine(database_url)
    try:
        entries = await MessageLedger(create_session_factory(engine)).for_journey(journey_id)
    finally:
        await engine.dispose()
    return [(entry.step, entry.recipient, entry.error) for entry in entries]


async def keys_and_owners(database_url: str, customer_id: str) -> tuple[int, int]:
    """How many data keys and journey owners the key store holds for the customer."""
    return (
        await count(database_url, CustomerKeyRecord, CustomerKeyRecord.customer_id == customer_id),
        await count(
            database_url, JourneyOwnerRecord, JourneyOwnerRecord.customer_id == customer_id
        ),
    )


async def plaintext(converter: DataConverter, payloads: list[Payload]) -> bytes:
    """The payloads decrypted by the converter's codec, as one blob."""
    codec = converter.payload_codec
    assert codec is not None
    return b"".join(p.data for p in await codec.decode(payloads))


async def started_payloads(client: Client, journey_id: str) -> list[Payload]:
    """The journey's start input as the server stores it (encrypted)."""
    history = await client.get_workflow_handle(journey_id).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    return list(started.input.payloads)


async def other_customer_rows(
    stack: PreferencesStack, customer_id: str, journey_id: str, phone: str, tag: str
) -> None:
    """A frequency-cap slot, a phone index row and a feedback answer of the customer,
    written through the stores the worker and the HTTP app use."""
    engine = create_engine(stack.settings.resolved_database_url)
    try:
        sessions = create_session_factory(engine)
        await FrequencyCapStore(sessions).reserve(
            customer_id=customer_id,
            category="marketing",
            key=send_key(journey_id, "cross_sell", 0),
            check=CapCheck(
                caps=(FrequencyCap(max=1, days=3),), priority=20, timezone="Europe/Berlin"
            ),
            now=datetime.now(UTC),
        )
        secret = load_or_create_secret(stack.settings)
        await PhoneIndex(sessions, phone_index_key(secret)).remember(phone, customer_id)
        assert await FeedbackResponses(sessions, erasure_marks_for(stack.settings)).record(
            f"feedback-token-{tag}-{customer_id}",
            customer_id=customer_id,
            journey_id=journey_id,
            score=3,
            comment=f"the parcel was late ({tag})",
            delivered=True,
        )
    finally:
        await engine.dispose()


async def test_erasure_terminates_journeys_deletes_rows_shreds_the_key_and_is_idempotent(
    stack: PreferencesStack, database_url: str, keys: CustomerKeys
) -> None:
    tag = uuid.uuid4().hex[:10]
    customer_id = f"cus-{tag}"
    email = f"erase-{tag}@example.test"
    orders = [domain_order(customer_id=customer_id, email=email) for _ in range(2)]
    bystander = domain_order(customer_id=f"cus-other-{tag}", email=f"other-{tag}@example.test")
    directory = stack.parts.directory
    for order in [*orders, bystander]:
        await directory.start(order)
    journey_ids = [f"order-{order.order_id}" for order in orders]
    bystander_journey = f"order-{bystander.order_id}"
    # The confirmations went out: the ledger holds the address in the clear.
    for journey_id in journey_ids:
        await eventually(
            lambda j=journey_id: ledger_rows(database_url, j),  # type: ignore[misc]
            lambda rows: (
                [step for step, _, _ in rows] == ["order_confirmation"] and rows[0][1] == email
            ),
        )
    await stack.client.update_preferences(
        pb.UpdatePreferencesRequest(
            customer_id=customer_id,
            timezone="Europe/Paris",
            consents=[pb.ConsentChange(category=pb.MESSAGE_CATEGORY_MARKETING, granted=False)],
        )
    )
    await stack.client.update_preferences(
        pb.UpdatePreferencesRequest(customer_id=bystander.customer.id, locale="de")
    )
    for who, journey_id, phone in (
        (customer_id, journey_ids[0], "+4915150000001"),
        (bystander.customer.id, bystander_journey, "+4915150000002"),
    ):
        await other_customer_rows(stack, who, journey_id, phone, tag)
    await eventually(
        lambda: directory.customer_journeys(customer_id, running_only=True),
        lambda found: len(found) == 2,
    )
    # Each journey is encrypted under its customer's key, and reads while it exists.
    erased_key = await keys.key_for_workflow(journey_ids[0])
    bystander_key = await keys.key_for_workflow(bystander_journey)
    assert erased_key is not None
    assert bystander_key is not None
    assert erased_key.key_id != bystander_key.key_id
    encrypted = await started_payloads(stack.temporal, journey_ids[0])
    assert {p.metadata[KEY_KIND_METADATA] for p in encrypted} == {CUSTOMER_KEY_KIND}
    assert email.encode() in await plaintext(stack.temporal.data_converter, encrypted)

    erased = await stack.client.erase_customer(customer_id)

    assert erased.journeys_cancelled == 2  # terminated: closed before the key went
    assert erased.preference_rows_deleted == 1
    assert erased.consent_rows_deleted == 1
    assert erased.ledger_rows_anonymised == 2
    assert erased.data_key_destroyed
    assert not erased.already_erased
    erased_at = erased.erased_at.ToDatetime(tzinfo=UTC)
    assert abs((datetime.now(UTC) - erased_at).total_seconds()) < 600

    for journey_id in journey_ids:
        description = await stack.temporal.get_workflow_handle(journey_id).describe()
        assert description.status == WorkflowExecutionStatus.TERMINATED
    assert (
        await count(
            database_url,
            CustomerPreferenceRecord,
            CustomerPreferenceRecord.customer_id == customer_id,
        )
        == 0
    )
    assert await count(database_url, ConsentRecord, ConsentRecord.customer_id == customer_id) == 0
    rows_of_customers = (
        (CappedSend, CappedSend.customer_id),
        (PhoneCustomer, PhoneCustomer.customer_id),
        (FeedbackResponse, FeedbackResponse.customer_id),
    )
    for table, column in rows_of_customers:
        assert await count(database_url, table, column == customer_id) == 0, table.__name__
        assert await count(database_url, table, column == bystander.customer.id) == 1
    # The minimal record: a hash of the id and the time, never the id itself.
    digest = erasure_marks_for(stack.settings).digest(customer_id)
    assert customer_id not in digest
    assert await count(database_url, ErasedCustomer, ErasedCustomer.customer_hash == digest) == 1
    assert await count(database_url, ErasedCustomer, ErasedCustomer.erased_at.is_not(None)) == 1
    hasher = RecipientHasher(load_or_create_secret(stack.settings))
    for journey_id in journey_ids:
        rows = await ledger_rows(database_url, journey_id)
        assert len(rows) == 1
        step, recipient, error = rows[0]
        assert recipient.startswith(HASHED_RECIPIENT_PREFIX)
        assert email not in recipient
        assert tag not in recipient
        assert error is None
        assert step == "order_confirmation"
        assert recipient == HASHED_RECIPIENT_PREFIX + hasher(email)
    # Both journeys' rows hash the same address to the same value (still matchable).
    hashes = {(await ledger_rows(database_url, j))[0][1] for j in journey_ids}
    assert len(hashes) == 1

    # Crypto-shredding: the key and the journey owners are gone from the database...
    assert await keys_and_owners(database_url, customer_id) == (0, 0)
    assert await keys.key_for_workflow(journey_ids[0]) is None
    # ...so the history Temporal keeps can no longer be decrypted: not by this
    # process, nor by another one with a cold cache and the same master key.
    for journey_id in journey_ids:
        stored = await started_payloads(stack.temporal, journey_id)
        with pytest.raises(CustomerKeyDestroyed, match=erased_key.key_id):
            await plaintext(stack.temporal.data_converter, stored)
    cold = CustomerKeys.open(database_url, keys.keyring, erasure_marks_for(stack.settings))
    try:
        with pytest.raises(CustomerKeyDestroyed):
            await plaintext(customer_data_converter(keys.keyring, cold), encrypted)
        # The other customer's history still reads there.
        assert bystander.customer.email.encode() in await plaintext(
            customer_data_converter(keys.keyring, cold),
            await started_payloads(stack.temporal, bystander_journey),
        )
    finally:
        await cold.aclose()

    # The other customer is untouched.
    assert await keys.key_for_workflow(bystander_journey) == bystander_key
    other_rows = await ledger_rows(database_url, bystander_journey)
    assert [recipient for _, recipient, _ in other_rows] == [bystander.customer.email]
    other = await stack.client.get_preferences(bystander.customer.id)
    assert other.preferences.locale == "de"
    assert (await directory.status(bystander.order_id)) == WorkflowExecutionStatus.RUNNING

    # Idempotent: nothing left to do.
    again = await stack.client.erase_customer(customer_id)
    assert (
        again.journeys_cancelled,
        again.preference_rows_deleted,
        again.consent_rows_deleted,
        again.ledger_rows_anonymised,
        again.data_key_destroyed,
        again.already_erased,
    ) == (0, 0, 0, 0, False, True)
    assert again.erased_at == erased.erased_at

    # Nothing about the customer can be written again, by the API or a late link.
    with pytest.raises(CustomerErasedError) as refused:
        await stack.client.unsubscribe(customer_id)
    assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(CustomerErasedError):
        await stack.client.update_preferences(
            pb.UpdatePreferencesRequest(customer_id=customer_id, locale="fr")
        )
    engine = create_engine(database_url)
    try:
        consent = ConsentLedger(create_session_factory(engine), erasure_marks_for(stack.settings))
        with pytest.raises(CustomerErased):
            await consent.record_once(
                f"token-{tag}", customer_id, granted=False, channel=None, category=None, source="x"
            )
        assert await consent.history(customer_id) == []
    finally:
        await engine.dispose()
    assert (
        await count(
            database_url,
            CustomerPreferenceRecord,
            CustomerPreferenceRecord.customer_id == customer_id,
        )
        == 0
    )
    await directory.cancel(bystander.order_id, "test over")


def erased_violation(error: JourneyEndedError) -> error_details_pb2.PreconditionFailure.Violation:
    """The single google.rpc.PreconditionFailure violation of a refused call."""
    call = error.__cause__
    assert isinstance(call, grpc.aio.AioRpcError)
    status = rpc_status.from_call(call)
    assert status is not None
    failures = []
    for detail in status.details:
        failure = error_details_pb2.PreconditionFailure()
        if detail.Unpack(failure):
            failures.extend(failure.violations)
    assert len(failures) == 1
    violation: error_details_pb2.PreconditionFailure.Violation = failures[0]
    return violation


async def test_an_erased_customer_gets_no_journey_and_no_new_key(
    stack: PreferencesStack, database_url: str, keys: CustomerKeys
) -> None:
    tag = uuid.uuid4().hex[:10]
    customer_id = f"cus-gone-{tag}"
    before = sample_order(f"ER-{tag}-1")
    before.customer.id = customer_id
    await stack.client.start_journey(before)
    assert await keys_and_owners(database_url, customer_id) == (1, 1)
    erased = await stack.client.erase_customer(customer_id)
    assert erased.data_key_destroyed
    assert erased.journeys_cancelled == 1

    later = sample_order(f"ER-{tag}-2")
    later.customer.id = customer_id
    shipped = journey_pb.OrderEvent(
        event_id=f"evt-{tag}",
        type=journey_pb.EVENT_TYPE_SHIPPED,
        shipment=sample_shipment(later.order_id),
    )
    # A new order, and a carrier event that would start its journey (signal-with-start).
    with pytest.raises(JourneyEndedError) as start_refused:
        await stack.client.start_journey(later)
    with pytest.raises(JourneyEndedError) as event_refused:
        await stack.client.record_event_with_order(later.order_id, shipped, later)
    for refused in (start_refused.value, event_refused.value):
        assert refused.code == grpc.StatusCode.FAILED_PRECONDITION
        assert "order.customer.id" in refused.message
        assert "erased" in refused.message
        violation = erased_violation(refused)
        assert (violation.type, violation.subject) == (CUSTOMER_ERASED, "order.customer.id")
        assert customer_id not in refused.message

    # Nothing was made for them: no journey, no key, no owner.
    with pytest.raises(RPCError) as missing:
        await stack.temporal.get_workflow_handle(f"order-{later.order_id}").describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND
    assert await keys_and_owners(database_url, customer_id) == (0, 0)
    assert await keys.key_for_workflow(f"order-{later.order_id}") is None

    # Another customer's orders still start, by either call.
    fine = sample_order(f"ER-{tag}-3")
    fine.customer.id = f"cus-kept-{tag}"
    assert (await stack.client.start_journey(fine)).created
    fine_by_event = sample_order(f"ER-{tag}-4")
    fine_by_event.customer.id = f"cus-kept-{tag}"
    await stack.client.record_event_with_order(
        fine_by_event.order_id,
        journey_pb.OrderEvent(
            event_id=f"evt-kept-{tag}",
            type=journey_pb.EVENT_TYPE_SHIPPED,
            shipment=sample_shipment(fine_by_event.order_id),
        ),
        fine_by_event,
    )
    for order in (fine, fine_by_event):
        await stack.parts.directory.cancel(order.order_id, "test over")
