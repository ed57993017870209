"""Decrypting a fetched history with the service's codec, before it is replayed or exported.

The payloads are decoded in place, so the replayer (and an exported file) sees the
plaintext the worker saw; replaying then needs only the plain converter. A history
whose customer key was destroyed (the customer erased) cannot be decoded by anyone:
that is an expected outcome, :class:`ErasedJourney`, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.api.history.v1 import History
from temporalio.converter import PayloadCodec

from engine.journeys.replay.payload_walk import payloads_in
from engine.platform.codec.customer_codec import CustomerKeyDestroyed


@dataclass(frozen=True)
class ErasedJourney:
    """The journey's customer was erased: its history stays unreadable, by design."""

    key_id: str


class HistoryDecodeError(Exception):
    """A payload that should decode does not (wrong keys configured, altered data)."""


async def decode_history(history: History, codec: PayloadCodec | None) -> History | ErasedJourney:
    """A copy of ``history`` with every payload decoded by ``codec`` (None: plaintext
    already, e.g. a file written by ``--export``)."""
    decoded = History()
    decoded.CopyFrom(history)
    if codec is None:
        return decoded
    payloads = list(payloads_in(decoded))
    if not payloads:
        return decoded
    try:
        plain = await codec.decode(payloads)
    except CustomerKeyDestroyed as err:
        return ErasedJourney(err.key_id)
    except Exception as err:
        raise HistoryDecodeError(f"{type(err).__name__}: {err}") from err
    for payload, plaintext in zip(payloads, plain, strict=True):
        payload.CopyFrom(plaintext)
    return decoded
