"""Erasing a customer (GDPR art. 17, CCPA deletion): what we hold about them goes.

In this order, so that nothing can write about the customer again while we work:

1. their preferences and consent events are deleted and a hash of their id is kept
   in ``erased_customers`` (from then on any write about them is refused, see
   :class:`engine.customers.consent.CustomerErased`, and no journey starts for them,
   see :class:`engine.journeys.errors.CustomerWasErased`);
2. their running journeys are **terminated**: closed at once by the server, running
   no more workflow code. (A cancel lets each journey run to its end, which can take
   longer than the API gives a call; the key must outlive every journey that could
   still encrypt under it.)
3. in one transaction, the other rows about them go: frequency-cap slots
   (``capped_sends``), the phone index (``phone_customers``) and feedback answers
   (``feedback_responses``, their comments being their own words);
4. the message ledger rows of all their journeys keep only a keyed hash of the
   recipient, with step, channel, status and timestamps (the proof that a message
   went out, without the address);
5. their data key is destroyed, so the payloads of their journeys stored in
   Temporal can no longer be decrypted (crypto-shredding).

Every step is idempotent: a second erasure (or a retry after a failure half way)
finds nothing left to do, answers with zero counts and ``already_erased``.

Left open: a send activity already running when its journey is terminated runs to
its end (Temporal does not stop activity code), so it may still deliver that one
message and write its ledger row, slot or phone row after steps 3-4; erasing again
afterwards cleans those up.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowExecutionStatus

from engine.customers import feedback_responses
from engine.customers.preferences import PreferenceStore
from engine.journeys.directory import JourneyDirectory
from engine.journeys.errors import JourneyEnded, JourneyNotFound
from engine.messaging import phone_index
from engine.messaging.frequency_caps import delete_slots
from engine.messaging.ledger import MessageLedger
from engine.platform.logging import get_logger

log = get_logger(__name__)

ERASURE_REASON = "customer erased (GDPR / CCPA request)"


class DataKeys(Protocol):
    """The per-customer key store (``engine.platform.codec.customer_keys.CustomerKeys``)."""

    async def destroy(self, customer_id: str) -> bool:
        """Destroy the customer's key; True if there was one to destroy."""
        ...


@dataclass(frozen=True)
class ErasureReport:
    journeys_terminated: int
    preference_rows_deleted: int
    consent_rows_deleted: int
    cap_slots_deleted: int
    phone_rows_deleted: int
    feedback_rows_deleted: int
    ledger_rows_anonymised: int
    data_key_destroyed: bool
    already_erased: bool
    erased_at: datetime

    @property
    def journeys_cancelled(self) -> int:
        """What the API answers as ``journeys_cancelled``: the journeys erasure
        stopped (by terminating them)."""
        return self.journeys_terminated


@dataclass(frozen=True)
class _DeletedRows:
    cap_slots: int
    phone_rows: int
    feedback_rows: int


class RecipientHasher:
    """A keyed hash (HMAC-SHA256) of an address: the same address always gives the
    same hash, so a complaint about an address can still be matched to the ledger,
    but without the key the hash cannot be reversed by trying likely addresses."""

    def __init__(self, secret: str) -> None:
        # A key of its own, derived from the service secret: never the link-signing key.
        self._key = hmac.new(secret.encode(), b"aftercare ledger recipients", "sha256").digest()

    def __call__(self, recipient: str) -> str:
        normalised = recipient.strip().lower().encode()
        return hmac.new(self._key, normalised, hashlib.sha256).hexdigest()


class CustomerEraser:
    def __init__(
        self,
        journeys: JourneyDirectory,
        preferences: PreferenceStore,
        ledger: MessageLedger,
        keys: DataKeys,
        hasher: RecipientHasher,
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        self._journeys = journeys
        self._preferences = preferences
        self._ledger = ledger
        self._keys = keys
        self._hasher = hasher
        self._sessions = sessions

    async def erase(self, customer_id: str) -> ErasureReport:
        erasure = await self._preferences.erase(customer_id)
        journeys = await self._journeys.customer_journeys(customer_id)
        terminated = 0
        for journey in journeys:
            if journey.status != WorkflowExecutionStatus.RUNNING:
                continue
            try:
                await self._journeys.terminate(journey.order_id, ERASURE_REASON)
            except (JourneyEnded, JourneyNotFound):
                continue  # it ended on its own meanwhile
            terminated += 1
        deleted = await self._delete_rows(customer_id)
        anonymised = await self._ledger.anonymise_recipients(
            [journey.journey_id for journey in journeys], self._hasher
        )
        # Last: every journey that could encrypt under the key is closed by now.
        destroyed = await self._keys.destroy(customer_id)
        report = ErasureReport(
            journeys_terminated=terminated,
            preference_rows_deleted=erasure.preference_rows_deleted,
            consent_rows_deleted=erasure.consent_rows_deleted,
            cap_slots_deleted=deleted.cap_slots,
            phone_rows_deleted=deleted.phone_rows,
            feedback_rows_deleted=deleted.feedback_rows,
            ledger_rows_anonymised=anonymised,
            data_key_destroyed=destroyed,
            already_erased=erasure.already_erased,
            erased_at=erasure.erased_at,
        )
        # Counts only: the customer id is exactly what must not linger in logs.
        log.info(
            "customer erased",
            journeys_terminated=terminated,
            cap_slots_deleted=deleted.cap_slots,
            phone_rows_deleted=deleted.phone_rows,
            feedback_rows_deleted=deleted.feedback_rows,
            ledger_rows_anonymised=anonymised,
            data_key_destroyed=destroyed,
            already_erased=report.already_erased,
        )
        return report

    async def _delete_rows(self, customer_id: str) -> _DeletedRows:
        """The customer's rows outside preferences and the ledger, all or none."""
        async with self._sessions() as session, session.begin():
            return _DeletedRows(
                cap_slots=await delete_slots(session, customer_id),
                phone_rows=await phone_index.forget_customer(session, customer_id),
                feedback_rows=await feedback_responses.forget_customer(session, customer_id),
            )
