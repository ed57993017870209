"""The payload codec that encrypts each journey under its customer's data key.

Temporal tells a codec whose payloads it is handling through a serialization
context (``WithSerializationContext``; temporalio 1.35). We read the workflow id from
it (:class:`~temporalio.converter.WorkflowSerializationContext`, or an
:class:`~temporalio.converter.ActivitySerializationContext` of an activity a
workflow started) and, when that journey has an owner (:mod:`engine.platform.codec.customer_keys`),
encrypt under the owner's key::

    metadata: {encoding: binary/encrypted, encryption-key-id: ck-<24 hex>,
               encryption-key-kind: customer}

Without a context, or for a journey without an owner, the master keyring encrypts
as :class:`~engine.platform.codec.aes_gcm.AesGcmCodec` always did. Decoding needs no context:
the key id and kind are in the metadata, so the codec server decodes for the UI.
A customer key that was destroyed (the customer erased) makes decoding fail with
:class:`CustomerKeyDestroyed`, never with plaintext.

Where the SDK gives a context (checked in temporalio 1.35 source): the worker's
workflow activations and completions (commands, queries, signals, continue-as-new,
failures: the workflow's context; activity commands: the activity's, which names the
workflow), activity inputs, results, heartbeats and failures, and the client's
start, signal-with-start, signal, query, update and terminate. Without one: the
client's header encoding and async activity completion by task token (neither is
used here), and standalone activities and schedules, which have no journey. Those
fall back to the master keyring, as does the codec server's ``/encode``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self, cast

from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)

from engine.platform.codec.aes_gcm import (
    CUSTOMER_KEY_KIND,
    ENCODING,
    KEY_ID_METADATA,
    KEY_KIND_METADATA,
    AesGcmCodec,
    CodecError,
    encrypting_converter,
    open_sealed,
    payload_key_id,
    seal,
)
from engine.platform.codec.customer_keys import CustomerKeys
from engine.platform.codec.keys import Keyring
from engine.platform.telemetry.catalogue import CodecReason
from engine.platform.telemetry.runtime import Instruments

# The contexts that name a journey: its own payloads, and its activities'.
_JOURNEY_CONTEXTS = (WorkflowSerializationContext, ActivitySerializationContext)


class CustomerKeyDestroyed(CodecError):
    def __init__(self, key_id: str) -> None:
        super().__init__(
            f"data key destroyed (customer erased): payload was encrypted with customer "
            f"data key {key_id!r}, which no longer exists, so it can never be decrypted",
            CodecReason.KEY_DESTROYED,
        )
        self.key_id = key_id


# Distinct from a master key's ("aftercare/payload-codec/v1:<kid>"): master key ids
# cannot hold ':', so no payload authenticates under both kinds of key.
_CUSTOMER_AAD_PREFIX = b"aftercare/payload-codec/v1:customer:"


def _customer_associated_data(key_id: str) -> bytes:
    return _CUSTOMER_AAD_PREFIX + key_id.encode("utf-8")


class CustomerKeyCodec(AesGcmCodec, WithSerializationContext):
    def __init__(
        self,
        keyring: Keyring,
        customer_keys: CustomerKeys,
        *,
        instruments: Instruments | None = None,
    ) -> None:
        super().__init__(keyring, instruments=instruments)
        self._customer_keys = customer_keys
        self._workflow_id: str | None = None

    @property
    def customer_keys(self) -> CustomerKeys:
        return self._customer_keys

    @property
    def workflow_id(self) -> str | None:
        """The journey this instance encodes for (from its context), if any."""
        return self._workflow_id

    def with_context(self, context: SerializationContext) -> Self:
        workflow_id: str | None = None
        # The exact-type test first: isinstance against these ABCs is slow.
        if type(context) in _JOURNEY_CONTEXTS or isinstance(context, _JOURNEY_CONTEXTS):
            journey = cast(WorkflowSerializationContext | ActivitySerializationContext, context)
            workflow_id = journey.workflow_id or None
        if workflow_id == self._workflow_id:
            return self
        # Shallow, and by hand (copy.copy is several times slower): the SDK binds a
        # context for every activation. Ciphers, keyring and key store (with its cache) are shared.
        bound = object.__new__(type(self))
        bound.__dict__.update(self.__dict__)
        bound._workflow_id = workflow_id
        return bound

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        try:
            return await self._encode(payloads)
        except Exception as err:
            self.count_error("encode", err)
            raise

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        try:
            return await self._decode(payloads)
        except Exception as err:
            self.count_error("decode", err)
            raise

    async def _encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if self._workflow_id is not None and payloads:
            loaded = await self._customer_keys.loaded_for_workflow(self._workflow_id)
            if loaded is not None:
                metadata = {
                    "encoding": ENCODING,
                    KEY_ID_METADATA: loaded.key_id.encode("utf-8"),
                    KEY_KIND_METADATA: CUSTOMER_KEY_KIND,
                }
                associated_data = _customer_associated_data(loaded.key_id)
                return [
                    seal(loaded.cipher, payload, dict(metadata), associated_data)
                    for payload in payloads
                ]
        return [self.encrypt(payload) for payload in payloads]

    async def _decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        decoded = []
        for payload in payloads:
            if (
                payload.metadata.get(KEY_KIND_METADATA) == CUSTOMER_KEY_KIND
                and payload.metadata.get("encoding") == ENCODING
            ):
                decoded.append(await self._decrypt_customer(payload))
            else:
                decoded.append(self.decrypt(payload))
        return decoded

    async def _decrypt_customer(self, payload: Payload) -> Payload:
        key_id = payload_key_id(payload)
        loaded = await self._customer_keys.loaded_by_id(key_id)
        if loaded is None:
            raise CustomerKeyDestroyed(key_id)
        opened = open_sealed(
            loaded.cipher,
            payload,
            _customer_associated_data(key_id),
            f"customer data key {key_id!r}",
        )
        if self._workflow_id is not None:
            self._customer_keys.owner_seen(self._workflow_id, key_id)
        return opened


@dataclass(frozen=True)
class ContextDataConverter(DataConverter):
    """A DataConverter whose :meth:`with_context` is cheap.

    The SDK's copies itself with ``dataclasses.replace``, which runs ``__post_init__``
    and so builds a new pydantic payload converter only to overwrite it; with a codec
    that takes the context, that happens on every activation and for every activity a
    workflow task schedules. This one does what the SDK's does (each part that takes a
    context gets it; nothing changed, the same converter) with a plain shallow copy.
    """

    def with_context(self, context: SerializationContext) -> Self:
        parts: dict[str, object] = {
            "payload_converter": self.payload_converter,
            "payload_codec": self.payload_codec,
            "failure_converter": self.failure_converter,
            "external_storage": self.external_storage,
        }
        changed = {}
        for name, part in parts.items():
            if isinstance(part, WithSerializationContext):
                bound = part.with_context(context)
                if bound is not part:
                    changed[name] = bound
        if not changed:
            return self
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)  # frozen: past __setattr__ on purpose
        clone.__dict__.update(changed)
        return clone


def customer_data_converter(
    keyring: Keyring, customer_keys: CustomerKeys, *, instruments: Instruments | None = None
) -> DataConverter:
    """The encrypting converter with per-customer keys (master keyring as fallback);
    ``instruments`` count the payloads that fail."""
    return encrypting_converter(
        CustomerKeyCodec(keyring, customer_keys, instruments=instruments),
        converter_class=ContextDataConverter,
    )


def customer_keys_of(source: Client | DataConverter) -> CustomerKeys | None:
    """The customer key store behind a client's (or converter's) codec; None when it
    encrypts with the master keyring alone (then journeys need no owner)."""
    converter = source.data_converter if isinstance(source, Client) else source
    codec = converter.payload_codec
    return codec.customer_keys if isinstance(codec, CustomerKeyCodec) else None
