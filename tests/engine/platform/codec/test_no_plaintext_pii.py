"""A journey run through a real Temporal server with the encrypting converter leaves
no customer data in plaintext in its history, yet everything stays readable to
holders of the keys (the worker, the API's queries, the codec server)."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from engine.devstack.mail_sink import MailSink
from engine.devstack.temporal_server import TemporalDevServer
from engine.journeys.directory import JourneyDirectory
from engine.journeys.replay.payload_walk import payloads_in
from engine.platform.codec import (
    ENCODING,
    AesGcmCodec,
    Keyring,
    data_converter,
    load_or_create_keyring,
)
from engine.platform.database.migrate import upgrade_database
from engine.platform.settings import Settings
from engine.platform.temporal.connection import connect
from engine.processes.dev_stack import with_dev_secrets
from engine.processes.worker import WorkerGroup, journey_worker
from tests.support.databases import sqlite_url
from tests.support.ids import new_order_id
from tests.support.net import free_port
from tests.support.stored_history import mail_for, raw_history
from workflows.order_journey import (
    FREQUENCY_CAP_PATCH,
    JOURNEY_EVENTS_PATCH,
    SENDS_BESIDE_EVENTS_PATCH,
    OrderJourney,
)
from workflows.orders import Address, Customer, LineItem, Order

# Distinctive enough that finding them anywhere can only mean a leak.
NAME = "Philippa Zanzibar-Quill"
EMAIL = "philippa.zq.7731@example.org"
PHONE = "+44 7700 900731"
STREET = "17 Quillfeather Lane"
PII = {"name": NAME, "email": EMAIL, "phone": PHONE, "street": STREET}


@dataclass
class EncryptedService:
    settings: Settings
    keyring: Keyring
    client: Client
    sink: MailSink
    worker: WorkerGroup


@pytest.fixture(scope="module")
async def dev_server() -> AsyncIterator[TemporalDevServer]:
    """A server of its own (headless, in memory), so its history holds only this test's."""
    server = TemporalDevServer(port=free_port(), ui_port=None, db_file=None)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
async def encrypted_service(
    dev_server: TemporalDevServer,
    mail_sink: MailSink,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[EncryptedService]:
    state_dir = tmp_path_factory.mktemp("codec-state")
    database = sqlite_url(state_dir)
    upgrade_database(database)
    settings = Settings(
        _env_file=None,
        state_dir=state_dir,
        temporal_address=dev_server.address,
        task_queue=f"codec-{uuid.uuid4().hex[:8]}",
        database_url=database,
        smtp_port=mail_sink.port,
    )
    settings = with_dev_secrets(settings)  # kept under the state dir, as `aftercare run` does
    keyring = load_or_create_keyring(state_dir, None)
    client = await connect(settings, data_converter=data_converter(keyring))
    async with journey_worker(client, settings) as worker, worker:
        yield EncryptedService(settings, keyring, client, mail_sink, worker)


def _order(order_id: str) -> Order:
    return Order(
        order_id=order_id,
        customer=Customer(
            id=f"cus_{uuid.uuid4().hex[:8]}",
            name=NAME,
            email=EMAIL,
            phone=PHONE,
            locale="en",
            timezone="Europe/London",
        ),
        items=[LineItem(sku="TEA-01", name="Loose-leaf tea", quantity=2, unit_price_minor=900)],
        currency="GBP",
        subtotal_minor=1800,
        shipping_minor=300,
        tax_minor=0,
        total_minor=2100,
        shipping_address=Address(
            name=NAME,
            line1=STREET,
            city="Norwich",
            postal_code="NR1 3AB",
            country_code="GB",
        ),
        placed_at=datetime.now(UTC),
    )


# The journey's workflow.patched branches (their markers name them, and only them).
OUR_PATCHES = {
    SENDS_BESIDE_EVENTS_PATCH,
    FREQUENCY_CAP_PATCH,
    JOURNEY_EVENTS_PATCH,
    "cancel-during-activity",
}

# The SDK records each local activity as a marker whose "data" detail it writes itself,
# unencoded: sequence number, attempt, activity id and type, times.
_MARKER_KEYS = {"seq", "attempt", "activity_id", "activity_type", "complete_time"}


def _is_local_activity_marker_metadata(payload: Payload) -> bool:
    if payload.metadata.get("encoding") != b"json/plain":
        return False
    try:
        data = json.loads(payload.data)
    except ValueError:
        return False
    return (
        isinstance(data, dict)
        and set(data) >= _MARKER_KEYS
        and data.get("activity_type") == "choose_plan"
    )


def _is_patch_marker_metadata(payload: Payload) -> bool:
    """The SDK's marker of a ``workflow.patched`` branch: the patch's name, unencoded."""
    if payload.metadata.get("encoding") != b"json/plain":
        return False
    try:
        data = json.loads(payload.data)
    except ValueError:
        return False
    return (
        isinstance(data, dict)
        and data.get("id") in OUR_PATCHES
        and set(data)
        <= {
            "id",
            "deprecated",
        }
    )


def _leaks(blob: bytes) -> list[str]:
    return [what for what, text in PII.items() if text.encode("utf-8") in blob]


def _base64_views(data: bytes) -> Iterator[bytes]:
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            yield decode(data + b"=" * (-len(data) % 4))
        except (binascii.Error, ValueError):
            continue


async def test_history_holds_no_plaintext_pii(
    encrypted_service: EncryptedService, tmp_path: Path
) -> None:
    service = encrypted_service
    order = _order(new_order_id("PII"))
    started = await JourneyDirectory(service.client, service.settings.task_queue).start(order)
    assert started.created

    # The worker could read the encrypted input: the confirmation went out to her.
    mail = await mail_for(service.sink, started.journey_id, seconds=30.0)
    assert mail.recipients == [EMAIL]
    assert mail.message["X-Aftercare-Step"] == "order_confirmation"

    # Queries go through the same codec: the state comes back readable.
    handle = service.client.get_workflow_handle_for(OrderJourney.run, started.journey_id)
    state = await handle.query(OrderJourney.state)
    assert state.journey_id == started.journey_id
    assert state.order_id == order.order_id

    history = await raw_history(service.client, started.journey_id)
    payloads = list(payloads_in(history))
    # The start input, the plan activity, the send activity and their results at least.
    assert len(payloads) >= 4

    raw = history.SerializeToString()
    assert _leaks(raw) == [], "plaintext customer data in the stored history"
    for payload in payloads:
        if _is_local_activity_marker_metadata(payload) or _is_patch_marker_metadata(payload):
            continue  # the SDK's own bookkeeping (ids, times, branch names): never our data
        assert payload.metadata.get("encoding") == ENCODING, payload.metadata
        for view in _base64_views(payload.data):
            assert _leaks(view) == [], "customer data base64-encoded in a payload"
        for value in payload.metadata.values():
            for view in [value, *_base64_views(value)]:
                assert _leaks(view) == [], "customer data in payload metadata"

    # ...and the same bytes, through the codec, hold every one of them: the check
    # above would have caught them had they been stored in the clear.
    codec = AesGcmCodec(service.keyring)
    decoded = await codec.decode(payloads)
    revealed = b"".join(payload.SerializeToString() for payload in decoded)
    assert sorted(_leaks(revealed)) == sorted(PII)
