"""Crypto-shredding end to end: real Temporal dev server, worker, codec server and the
key store on SQLite and PostgreSQL. A journey's history is encrypted under its
customer's data key; destroying the key makes exactly that history unreadable."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from engine.devstack.mail_sink import MailSink
from engine.devstack.temporal_server import TemporalDevServer
from engine.journeys.directory import JourneyDirectory
from engine.journeys.replay.payload_walk import payloads_in
from engine.platform.codec.aes_gcm import (
    CUSTOMER_KEY_KIND,
    ENCODING,
    KEY_ID_METADATA,
    KEY_KIND_METADATA,
)
from engine.platform.codec.customer_codec import CustomerKeyDestroyed, customer_keys_of
from engine.platform.codec.customer_keys import CustomerKeys
from engine.platform.codec.keys import Keyring, generate_keyring
from engine.platform.codec.runtime import codec_for, converter_for, erasure_marks_for
from engine.platform.codec.server import build_codec_app
from engine.platform.http_server import serve_http
from engine.platform.settings import Settings
from engine.processes.dev_stack import with_dev_secrets
from engine.processes.worker import journey_worker
from tests.support.ids import new_order_id
from tests.support.stored_history import mail_for, raw_history
from workflows.order_journey import OrderJourney
from workflows.orders import Address, Customer, LineItem, Order, OrderEvent, Shipment
from workflows.vocabulary import EventType

TOKEN = "shredding-codec-token"
UI_ORIGIN = "http://127.0.0.1:8233"


@dataclass(frozen=True)
class Person:
    customer_id: str
    name: str
    email: str
    phone: str
    street: str

    @property
    def pii(self) -> dict[str, str]:
        return {"name": self.name, "email": self.email, "phone": self.phone, "street": self.street}


def _person(tag: str, name: str, street: str, phone: str) -> Person:
    suffix = uuid.uuid4().hex[:6]
    return Person(
        customer_id=f"cus_{tag}_{suffix}",
        name=name,
        email=f"{tag}.{suffix}@example.org",
        phone=phone,
        street=street,
    )


def _order(person: Person) -> Order:
    return Order(
        order_id=new_order_id("CS"),
        customer=Customer(
            id=person.customer_id,
            name=person.name,
            email=person.email,
            phone=person.phone,
            locale="en",
            timezone="Europe/Berlin",
        ),
        items=[LineItem(sku="MUG-7", name="Stoneware mug", quantity=1, unit_price_minor=2400)],
        currency="EUR",
        subtotal_minor=2400,
        shipping_minor=0,
        tax_minor=0,
        total_minor=2400,
        shipping_address=Address(
            name=person.name,
            line1=person.street,
            city="Kiel",
            postal_code="24103",
            country_code="DE",
        ),
        placed_at=datetime.now(UTC),
    )


@dataclass
class Stack:
    keys: CustomerKeys
    client: Client
    directory: JourneyDirectory
    codec_server: httpx.AsyncClient
    sink: MailSink
    settings: Settings


@pytest.fixture
async def stack(
    temporal_server: TemporalDevServer, mail_sink: MailSink, database_url: str, tmp_path: Path
) -> AsyncIterator[Stack]:
    """Client, worker and codec server sharing one key store, as ``aftercare run`` wires
    them (engine.processes.dev_stack), on the parametrized database."""
    settings = Settings(
        _env_file=None,
        state_dir=tmp_path,
        temporal_address=temporal_server.address,
        task_queue=f"shred-{uuid.uuid4().hex[:8]}",
        database_url=database_url,
        smtp_port=mail_sink.port,
    )
    settings = with_dev_secrets(settings)  # kept under the state dir, as `aftercare run` does
    keys = CustomerKeys.open(database_url, generate_keyring(), erasure_marks_for(settings))
    client = await Client.connect(
        temporal_server.address, data_converter=converter_for(settings, keys)
    )
    app = build_codec_app(codec_for(settings, keys), TOKEN, UI_ORIGIN)
    try:
        async with (
            journey_worker(client, settings) as worker,
            worker,
            serve_http(app, "127.0.0.1", 0) as server,
            httpx.AsyncClient(base_url=server.url) as http,
        ):
            yield Stack(
                keys,
                client,
                JourneyDirectory(client, settings.task_queue),
                http,
                mail_sink,
                settings,
            )
    finally:
        await keys.aclose()


def _ours(payloads: Sequence[Payload]) -> list[Payload]:
    # The SDK writes its local-activity marker details itself, unencoded (ids, times).
    return [p for p in payloads if p.metadata.get("encoding") != b"json/plain"]


def _leaks(person: Person, blob: bytes) -> list[str]:
    return sorted(what for what, text in person.pii.items() if text.encode() in blob)


def _codec_body(payloads: Sequence[Payload]) -> dict[str, Any]:
    body: dict[str, Any] = json_format.MessageToDict(Payloads(payloads=payloads))
    return body


def _bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}", "X-Namespace": "default"}


async def _decoded_blob(client: Client, payloads: Sequence[Payload]) -> bytes:
    codec = client.data_converter.payload_codec
    assert codec is not None
    return b"".join(p.SerializeToString() for p in await codec.decode(payloads))


async def test_erasing_a_customer_makes_their_history_unreadable(stack: Stack) -> None:
    erased = _person("ada", "Adaline Quixwort", "9 Kelpie Wharf", "+49 151 23456701")
    kept = _person("bo", "Bodil Marrowfax", "31 Tansy Row", "+49 151 23456702")
    erased_order, kept_order = _order(erased), _order(kept)

    # One journey started, one by signal-with-start (a carrier event bringing the
    # order): both register their owner before the first payload leaves.
    started = await stack.directory.start(erased_order)
    assert started.created
    kept_id = await stack.directory.record_event(
        kept_order.order_id,
        OrderEvent(
            event_id="evt-ship-1",
            type=EventType.SHIPPED,
            occurred_at=datetime.now(UTC),
            shipment=Shipment(carrier="DHL", tracking_number="JD0001"),
        ),
        order=kept_order,
    )
    # The worker decrypted the inputs: the confirmations went out to them.
    assert (await mail_for(stack.sink, started.journey_id)).recipients == [erased.email]
    assert (await mail_for(stack.sink, kept_id)).recipients == [kept.email]
    # Queries go through the same codec (the worker encrypts, the client decrypts).
    handle = stack.client.get_workflow_handle_for(OrderJourney.run, started.journey_id)
    assert (await handle.query(OrderJourney.state)).order_id == erased_order.order_id

    erased_key = await stack.keys.key_for_workflow(started.journey_id)
    kept_key = await stack.keys.key_for_workflow(kept_id)
    assert erased_key is not None
    assert kept_key is not None
    assert erased_key.key_id != kept_key.key_id

    # --- the raw history holds no PII, and names only the opaque customer key ---------
    raw = await raw_history(stack.client, started.journey_id)
    payloads = _ours(list(payloads_in(raw)))
    assert len(payloads) >= 4  # start input, plan choice, send input and result at least
    assert _leaks(erased, raw.SerializeToString()) == []
    for payload in payloads:
        assert payload.metadata.get("encoding") == ENCODING
        assert payload.metadata.get(KEY_KIND_METADATA) == CUSTOMER_KEY_KIND
        assert payload.metadata.get(KEY_ID_METADATA) == erased_key.key_id.encode()
        # Nothing else rides along: no customer id, no name, only how to decrypt.
        assert set(payload.metadata) == {"encoding", KEY_ID_METADATA, KEY_KIND_METADATA}
        assert erased.customer_id.encode() not in b"".join(payload.metadata.values())

    # --- with the codec it all reads: client, replay, codec server -----------------------
    assert _leaks(erased, await _decoded_blob(stack.client, payloads)) == sorted(erased.pii)
    history = await handle.fetch_history()
    replayer = Replayer(
        workflows=[OrderJourney],
        data_converter=stack.client.data_converter,
    )
    await replayer.replay_workflow(history)
    response = await stack.codec_server.post(
        "/default/decode", json=_codec_body(payloads), headers=_bearer()
    )
    assert response.status_code == 200
    decoded = (
        b"".join(base64.b64decode(p.get("data", "")) for p in response.json()["payloads"])
        + json.dumps(response.json()).encode()
    )
    assert "email" in _leaks(erased, decoded)
    assert "name" in _leaks(erased, decoded)

    # --- erasure: end the journeys, then destroy the key --------------------------------
    await handle.terminate(reason="customer erased")
    assert await stack.keys.destroy(erased.customer_id) is True
    assert await stack.keys.key_for_workflow(started.journey_id) is None

    raw_after = await raw_history(stack.client, started.journey_id)
    payloads_after = _ours(list(payloads_in(raw_after)))
    # The client with the codec (this process: cache evicted at once)...
    with pytest.raises(CustomerKeyDestroyed, match=r"data key destroyed \(customer erased\)"):
        await _decoded_blob(stack.client, payloads_after)
    with pytest.raises(CustomerKeyDestroyed):
        await stack.client.data_converter.decode(payloads_after[:1])
    # ...another process, with a cold cache...
    other_keys = CustomerKeys.open(
        stack.settings.resolved_database_url,
        stack.keys.keyring,
        erasure_marks_for(stack.settings),
    )
    try:
        other = await Client.connect(
            stack.settings.temporal_address,
            data_converter=converter_for(stack.settings, other_keys),
        )
        assert customer_keys_of(other) is other_keys
        other_history = await other.get_workflow_handle(started.journey_id).fetch_history()
        with pytest.raises(CustomerKeyDestroyed):
            await _decoded_blob(other, list(payloads_in(other_history.events[0])))
        # ...a replay...
        # (the replayer reports the task failure by type; its message is encoded)
        with pytest.raises(RuntimeError, match="CustomerKeyDestroyed"):
            await Replayer(
                workflows=[OrderJourney], data_converter=other.data_converter
            ).replay_workflow(WorkflowHistory(started.journey_id, list(other_history.events)))
    finally:
        await other_keys.aclose()
    # ...and the codec server all refuse, naming why, never answering plaintext.
    refused = await stack.codec_server.post(
        "/default/decode", json=_codec_body(payloads_after), headers=_bearer()
    )
    assert refused.status_code == 400
    assert "data key destroyed (customer erased)" in refused.json()["error"]
    assert _leaks(erased, refused.content) == []

    # --- the other customer's journey still reads everywhere -----------------------------
    kept_payloads = _ours(list(payloads_in(await raw_history(stack.client, kept_id))))
    assert {p.metadata[KEY_ID_METADATA] for p in kept_payloads} == {kept_key.key_id.encode()}
    assert _leaks(kept, await _decoded_blob(stack.client, kept_payloads)) == sorted(kept.pii)
    kept_response = await stack.codec_server.post(
        "/decode", json=_codec_body(kept_payloads), headers=_bearer()
    )
    assert kept_response.status_code == 200
    kept_handle = stack.client.get_workflow_handle_for(OrderJourney.run, kept_id)
    assert (await kept_handle.query(OrderJourney.state)).order_id == kept_order.order_id
    await kept_handle.terminate(reason="test over")

    # Erasing twice is harmless.
    assert await stack.keys.destroy(erased.customer_id) is False


async def test_rotating_the_master_key_keeps_journeys_readable(
    stack: Stack, database_url: str
) -> None:
    person = _person("cy", "Cyprian Wendelholt", "4 Gorse Steps", "+49 151 23456703")
    order = _order(person)
    started = await stack.directory.start(order)
    await mail_for(stack.sink, started.journey_id)
    payloads = _ours(list(payloads_in(await raw_history(stack.client, started.journey_id))))

    # A new master key in front, the old one kept for decrypting
    # (docs/consent-and-privacy.md: rotating the master key).
    rotated: Keyring = stack.keys.keyring.rotated("k-rotated", generate_keyring().current_key)
    after = CustomerKeys.open(database_url, rotated, erasure_marks_for(stack.settings))
    try:
        client = await Client.connect(
            stack.settings.temporal_address,
            data_converter=converter_for(stack.settings, after),
        )
        assert _leaks(person, await _decoded_blob(client, payloads)) == sorted(person.pii)
        assert await after.rewrap() >= 1
        only_new = Keyring("k-rotated", {"k-rotated": rotated.current_key})
        retired = CustomerKeys.open(database_url, only_new, erasure_marks_for(stack.settings))
        try:
            # The customer key is now wrapped under the new master key alone.
            client = await Client.connect(
                stack.settings.temporal_address,
                data_converter=converter_for(stack.settings, retired),
            )
            assert _leaks(person, await _decoded_blob(client, payloads)) == sorted(person.pii)
        finally:
            await retired.aclose()
    finally:
        await after.aclose()
    await stack.client.get_workflow_handle(started.journey_id).terminate(reason="test over")
