"""The context-aware codec: payloads of a journey with an owner are encrypted under
the owner's data key, decoded without any context, and unreadable once it is gone."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import event
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.converter import (
    ActivitySerializationContext,
    NexusSerializationContext,
    WorkflowSerializationContext,
)
from temporalio.exceptions import ApplicationError

from engine.platform.codec import (
    ENCODING,
    KEY_ID_METADATA,
    AesGcmCodec,
    CodecError,
    UnknownKeyError,
)
from engine.platform.codec.aes_gcm import CUSTOMER_KEY_KIND, KEY_KIND_METADATA, data_converter
from engine.platform.codec.customer_codec import (
    CustomerKeyCodec,
    CustomerKeyDestroyed,
    customer_data_converter,
    customer_keys_of,
)
from engine.platform.codec.customer_keys import CustomerKeys, key_store_engine
from engine.platform.codec.keys import generate_keyring
from engine.platform.database.erasure_marks import ErasureMarks

# Erased customers are recognised by a hash keyed with the service's secret.
MARKS = ErasureMarks("test-erasure-secret")

EMAIL = "wilhelmina.quarrendon@example.org"


@pytest.fixture
async def keys(database_url: str) -> AsyncIterator[CustomerKeys]:
    store = CustomerKeys.open(database_url, generate_keyring(), MARKS)
    await store.register_journey("order-W-1", "cus_wilhelmina")
    await store.register_journey("order-O-1", "cus_other")
    yield store
    await store.aclose()


def workflow_context(workflow_id: str) -> WorkflowSerializationContext:
    return WorkflowSerializationContext(namespace="default", workflow_id=workflow_id)


def activity_context(workflow_id: str | None) -> ActivitySerializationContext:
    return ActivitySerializationContext(
        namespace="default",
        activity_id="1",
        activity_type="send_message",
        activity_task_queue="q",
        workflow_id=workflow_id,
        workflow_type="OrderJourney" if workflow_id else None,
        is_local=False,
    )


def plain(value: object) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(value).encode())


async def _customer_key_id(keys: CustomerKeys, workflow_id: str) -> str:
    key = await keys.key_for_workflow(workflow_id)
    assert key is not None
    return key.key_id


async def test_a_journey_with_an_owner_is_encrypted_under_the_customer_key(
    keys: CustomerKeys,
) -> None:

    codec = CustomerKeyCodec(keys.keyring, keys).with_context(workflow_context("order-W-1"))
    [sealed] = await codec.encode([plain({"email": EMAIL})])

    key_id = await _customer_key_id(keys, "order-W-1")
    assert dict(sealed.metadata) == {
        "encoding": ENCODING,
        KEY_ID_METADATA: key_id.encode(),
        KEY_KIND_METADATA: CUSTOMER_KEY_KIND,
    }
    assert EMAIL.encode() not in sealed.SerializeToString()
    assert b"wilhelmina" not in b"".join(sealed.metadata.values())

    # Decoding needs no context (the codec server has none): the metadata says which key.
    fresh = CustomerKeyCodec(keys.keyring, keys)
    assert await fresh.decode([sealed]) == [plain({"email": EMAIL})]


async def test_a_journey_payload_opened_in_its_context_spares_the_next_encode_a_lookup(
    keys: CustomerKeys, database_url: str
) -> None:
    """A worker first decodes a new journey's input (sealed by the API under the
    owner's key), then encodes its commands: one key lookup, not two."""
    api_codec = CustomerKeyCodec(keys.keyring, keys).with_context(workflow_context("order-W-1"))
    [sealed_input] = await api_codec.encode([plain({"email": EMAIL})])

    engine = key_store_engine(database_url)
    lookups: list[str] = []  # SELECTs only (SQLite's engine also sends BEGIN)

    def count(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            lookups.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    worker_keys = CustomerKeys(engine, keys.keyring, MARKS, owns_engine=True)
    try:
        worker_codec = CustomerKeyCodec(keys.keyring, worker_keys).with_context(
            workflow_context("order-W-1")
        )
        assert await worker_codec.decode([sealed_input]) == [plain({"email": EMAIL})]
        assert len(lookups) == 1  # the key, by the id in the payload
        [sealed_output] = await worker_codec.encode([plain("confirmed")])
        assert len(lookups) == 1  # the owner's key was known from the decode
        assert sealed_output.metadata[KEY_ID_METADATA] == sealed_input.metadata[KEY_ID_METADATA]
        # Another journey's owner is still looked up.
        other = worker_codec.with_context(workflow_context("order-O-1"))
        [of_other] = await other.encode([plain("other")])
        assert len(lookups) == 2
        assert of_other.metadata[KEY_ID_METADATA] != sealed_input.metadata[KEY_ID_METADATA]
    finally:
        await worker_keys.aclose()


async def test_activities_of_a_journey_use_its_customer_key(keys: CustomerKeys) -> None:
    codec = CustomerKeyCodec(keys.keyring, keys)
    [of_journey] = await codec.with_context(activity_context("order-W-1")).encode([plain(1)])
    assert (
        of_journey.metadata[KEY_ID_METADATA] == (await _customer_key_id(keys, "order-W-1")).encode()
    )
    # An activity no workflow started has no journey: the master keyring.
    [standalone] = await codec.with_context(activity_context(None)).encode([plain(2)])
    assert KEY_KIND_METADATA not in standalone.metadata
    assert standalone.metadata[KEY_ID_METADATA] == keys.keyring.current_key_id.encode()
    assert await codec.decode([of_journey, standalone]) == [plain(1), plain(2)]


async def test_without_context_or_owner_the_master_keyring_encrypts_as_before(
    keys: CustomerKeys,
) -> None:
    codec = CustomerKeyCodec(keys.keyring, keys)
    unbound = await codec.encode([plain("no context")])
    unowned = await codec.with_context(workflow_context("order-nobody")).encode([plain("no owner")])
    nexus = await codec.with_context(
        NexusSerializationContext(endpoint="e", service="s", operation="o")
    ).encode([plain("nexus")])
    for [sealed] in (unbound, unowned, nexus):
        assert dict(sealed.metadata) == {
            "encoding": ENCODING,
            KEY_ID_METADATA: keys.keyring.current_key_id.encode(),
        }
    # Exactly what the master-only codec makes and reads: old and new histories mix.
    master = AesGcmCodec(keys.keyring)
    assert await master.decode([*unbound, *unowned, *nexus]) == [
        plain("no context"),
        plain("no owner"),
        plain("nexus"),
    ]
    [old] = await master.encode([plain("written before customer keys")])
    assert await codec.decode([old]) == [plain("written before customer keys")]


async def test_binding_a_context_shares_the_store_and_keeps_the_original_unbound(
    keys: CustomerKeys,
) -> None:
    codec = CustomerKeyCodec(keys.keyring, keys)
    bound = codec.with_context(workflow_context("order-W-1"))
    assert bound is not codec
    assert bound.workflow_id == "order-W-1"
    assert codec.workflow_id is None
    assert bound.with_context(activity_context("order-W-1")) is bound
    assert bound.customer_keys is keys


def test_binding_the_converter_reuses_its_parts_and_binds_only_the_codec(
    keys: CustomerKeys,
) -> None:
    converter = customer_data_converter(keys.keyring, keys)
    bound = converter.with_context(workflow_context("order-W-1"))
    assert bound is not converter
    assert isinstance(bound.payload_codec, CustomerKeyCodec)
    assert bound.payload_codec.workflow_id == "order-W-1"
    assert isinstance(converter.payload_codec, CustomerKeyCodec)
    assert converter.payload_codec.workflow_id is None
    # The (costly) pydantic payload converter is shared, not rebuilt per binding.
    assert bound.payload_converter is converter.payload_converter
    assert bound.failure_converter is converter.failure_converter
    # Nothing to change, nothing copied.
    assert bound.with_context(activity_context("order-W-1")) is bound


async def test_values_and_failures_through_the_data_converter(keys: CustomerKeys) -> None:
    converter = customer_data_converter(keys.keyring, keys)
    assert customer_keys_of(converter) is keys
    assert customer_keys_of(data_converter(keys.keyring)) is None

    in_journey = converter.with_context(workflow_context("order-W-1"))
    [payload] = await in_journey.encode([{"email": EMAIL}])
    assert payload.metadata[KEY_KIND_METADATA] == CUSTOMER_KEY_KIND
    assert await converter.decode([payload]) == [{"email": EMAIL}]

    # Failure messages (moved into encoded attributes) get the customer key too.
    failure = Failure()
    await in_journey.encode_failure(ApplicationError(f"cannot reach {EMAIL}"), failure)
    assert EMAIL.encode() not in failure.SerializeToString()
    assert failure.encoded_attributes.metadata[KEY_KIND_METADATA] == CUSTOMER_KEY_KIND
    decoded = await converter.decode_failure(failure)
    assert EMAIL in str(decoded)


async def test_a_destroyed_key_makes_its_payloads_undecodable(keys: CustomerKeys) -> None:
    codec = CustomerKeyCodec(keys.keyring, keys)
    [erased] = await codec.with_context(workflow_context("order-W-1")).encode([plain(EMAIL)])
    [kept] = await codec.with_context(workflow_context("order-O-1")).encode([plain("kept")])
    erased_key_id = await _customer_key_id(keys, "order-W-1")

    assert await keys.destroy("cus_wilhelmina") is True

    with pytest.raises(CustomerKeyDestroyed, match=r"data key destroyed \(customer erased\)"):
        await codec.decode([erased])
    with pytest.raises(CustomerKeyDestroyed) as raised:
        await CustomerKeyCodec(keys.keyring, keys).decode([kept, erased])
    assert raised.value.key_id == erased_key_id
    assert EMAIL not in str(raised.value)
    # Another customer's journey is untouched.
    assert await codec.decode([kept]) == [plain("kept")]
    # With its owner gone the journey has no customer key any more; erasure ends the
    # customer's journeys before destroying the key, so nothing new is written.
    [after] = await codec.with_context(workflow_context("order-W-1")).encode([plain(0)])
    assert KEY_KIND_METADATA not in after.metadata


async def test_the_master_only_codec_refuses_customer_payloads_clearly(
    keys: CustomerKeys,
) -> None:
    codec = CustomerKeyCodec(keys.keyring, keys).with_context(workflow_context("order-W-1"))
    [sealed] = await codec.encode([plain(EMAIL)])
    with pytest.raises(CodecError, match="needs the customer key store"):
        await AesGcmCodec(keys.keyring).decode([sealed])


async def test_altered_customer_payload_metadata_fails(keys: CustomerKeys) -> None:
    codec = CustomerKeyCodec(keys.keyring, keys)
    [sealed] = await codec.with_context(workflow_context("order-W-1")).encode([plain(EMAIL)])

    # Marked as a master-key payload: no master key has that id.
    unmarked = Payload()
    unmarked.CopyFrom(sealed)
    del unmarked.metadata[KEY_KIND_METADATA]
    with pytest.raises(UnknownKeyError):
        await codec.decode([unmarked])

    # Pointed at another customer's key: authentication fails, nothing is revealed.
    swapped = Payload()
    swapped.CopyFrom(sealed)
    swapped.metadata[KEY_ID_METADATA] = (await _customer_key_id(keys, "order-O-1")).encode()
    with pytest.raises(CodecError, match="failed authentication"):
        await codec.decode([swapped])

    # A key id that is no customer key of ours cannot be found either.
    unknown = Payload()
    unknown.CopyFrom(sealed)
    unknown.metadata[KEY_ID_METADATA] = b"not-a-customer-key"
    with pytest.raises(CustomerKeyDestroyed):
        await codec.decode([unknown])
