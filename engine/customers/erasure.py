"""Erasing a customer (GDPR art. 17, CCPA deletion): the steps of the durable
``workflows.erasure.CustomerErasure`` (activities, run by the worker) and the API's
way to start one and answer with what it did or where it stands.

Each step is idempotent, so Temporal's retries, a restart or a second erasure of
the same customer find nothing left to do. The erasure's workflow id is derived
from the keyed hash of the customer id, never the id: one erasure per customer at
a time, and another may run later (``already_erased`` then tells).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from engine.customers import feedback_responses
from engine.customers.preferences import PreferenceStore
from engine.journeys.directory import JourneyDirectory
from engine.journeys.errors import JourneyEnded, JourneyNotFound
from engine.messaging import phone_index, push_devices
from engine.messaging.frequency_caps import delete_slots
from engine.messaging.ledger import MessageLedger
from engine.platform.database.erasure_journal import ErasureJournal
from engine.platform.database.erasure_marks import ErasureMarks
from engine.platform.logging import get_logger
from workflows.erasure import CustomerErasure
from workflows.erasure_contracts import (
    ANONYMISE_LEDGER_ACTIVITY,
    CLOSE_JOURNEY_ACTIVITY,
    DESTROY_KEY_ACTIVITY,
    ERASURE_WORKFLOW_PREFIX,
    FORGET_ROWS_ACTIVITY,
    MARK_ERASED_ACTIVITY,
    OWNED_JOURNEYS_ACTIVITY,
    AnonymiseLedger,
    Closed,
    CloseJourney,
    ErasureProgress,
    ErasureRequest,
    Marked,
    OwnedJourney,
    RowsForgotten,
    SweepRequest,
)
from workflows.ids import order_id_from

log = get_logger(__name__)

# A journey whose owner was registered this recently may still be starting (the API
# registers the owner, then starts the workflow): it is looked for again until then.
START_GRACE = timedelta(minutes=1)
QUERY_TIMEOUT = timedelta(seconds=2)


class DataKeys(Protocol):
    """The per-customer key store (``engine.platform.codec.customer_keys.CustomerKeys``)."""

    async def destroy(self, customer_id: str) -> bool:
        """Destroy the customer's key; True if there was one to destroy."""
        ...

    async def journeys_of(self, customer_id: str) -> list[tuple[str, datetime]]:
        """Every journey the customer owns or owned: (workflow id, registered at)."""
        ...


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


@dataclass(frozen=True)
class ErasureActivities:
    """The steps of an erasure, on the worker."""

    journeys: JourneyDirectory
    preferences: PreferenceStore
    ledger: MessageLedger
    keys: DataKeys
    hasher: RecipientHasher
    sessions: async_sessionmaker[AsyncSession]
    # Kept apart from the database, so a restored backup gets this erasure re-applied.
    journal: ErasureJournal
    marks: ErasureMarks

    @activity.defn(name=MARK_ERASED_ACTIVITY)
    async def mark(self, request: ErasureRequest) -> Marked:
        # Journaled first, on every run: no crash can leave a mark, or later a destroyed
        # key, that the journal does not know (the step is retried until both are done).
        await self.journal.record(self.marks.digest(request.customer_id))
        erasure = await self.preferences.erase(request.customer_id)
        return Marked(
            preference_rows_deleted=erasure.preference_rows_deleted,
            consent_rows_deleted=erasure.consent_rows_deleted,
            already_erased=erasure.already_erased,
            erased_at=erasure.erased_at,
        )

    @activity.defn(name=OWNED_JOURNEYS_ACTIVITY)
    async def owned_journeys(self, request: ErasureRequest) -> list[OwnedJourney]:
        """Through our own owner mapping (closed journeys, ones Temporal no longer
        keeps), and through visibility (journeys started before owners were recorded)."""
        found = {
            workflow_id: OwnedJourney(workflow_id, registered_at)
            for workflow_id, registered_at in await self.keys.journeys_of(request.customer_id)
        }
        for summary in await self.journeys.customer_journeys(request.customer_id):
            found.setdefault(summary.journey_id, OwnedJourney(summary.journey_id))
        return sorted(found.values(), key=lambda journey: journey.workflow_id)

    @activity.defn(name=CLOSE_JOURNEY_ACTIVITY)
    async def close_journey(self, request: CloseJourney) -> str:
        journey = request.journey
        order_id = order_id_from(journey.workflow_id)
        try:
            status = await self.journeys.status(order_id)
        except JourneyNotFound:
            registered = journey.registered_at
            recent = registered is not None and datetime.now(UTC) - registered < START_GRACE
            if recent and not await self.ledger.for_journey(journey.workflow_id):
                # Its owner was registered a moment ago and it sent nothing yet: the
                # start may be in flight. (One that sent something did start: Temporal
                # no longer keeping it means it is gone.)
                raise ApplicationError(
                    "the journey may still be starting; looking again", type="MayBeStarting"
                ) from None
            return Closed.ABSENT
        if status != WorkflowExecutionStatus.RUNNING:
            return Closed.ENDED
        try:
            # Terminated, not cancelled: it runs no more code, so it is closed when
            # this returns, before the key that encrypts it is destroyed.
            await self.journeys.terminate(order_id, request.reason)
        except (JourneyEnded, JourneyNotFound):
            return Closed.ENDED  # it ended on its own meanwhile
        return Closed.TERMINATED

    @activity.defn(name=FORGET_ROWS_ACTIVITY)
    async def forget_rows(self, request: SweepRequest) -> RowsForgotten:
        """The customer's rows outside preferences and the ledger, all or none."""
        return await forget_customer_rows(self.sessions, request.customer_id)

    @activity.defn(name=ANONYMISE_LEDGER_ACTIVITY)
    async def anonymise_ledger(self, request: AnonymiseLedger) -> int:
        return await self.ledger.anonymise_recipients(request.workflow_ids, self.hasher)

    @activity.defn(name=DESTROY_KEY_ACTIVITY)
    async def destroy_key(self, request: ErasureRequest) -> bool:
        # Last: every journey that could encrypt under the key is closed by now.
        return await self.keys.destroy(request.customer_id)

    def all(self) -> list[Callable[..., Awaitable[object]]]:
        """Every step, for a worker's ``activities``."""
        return [
            self.mark,
            self.owned_journeys,
            self.close_journey,
            self.forget_rows,
            self.anonymise_ledger,
            self.destroy_key,
        ]


async def forget_customer_rows(
    sessions: async_sessionmaker[AsyncSession], customer_id: str
) -> RowsForgotten:
    """Delete the customer's frequency-cap slots, phone index rows, feedback answers
    and push devices in one transaction (an erasure's step, and a restore re-applying
    one)."""
    async with sessions() as session, session.begin():
        return RowsForgotten(
            cap_slots=await delete_slots(session, customer_id),
            phone_rows=await phone_index.forget_customer(session, customer_id),
            feedback_rows=await feedback_responses.forget_customer(session, customer_id),
            push_devices=await push_devices.forget_customer(session, customer_id),
        )


class CustomerEraser:
    """Starts a customer's erasure (or finds the one under way) and answers with its
    result, or with its progress when it takes longer than ``wait``."""

    def __init__(
        self, client: Client, task_queue: str, marks: ErasureMarks, *, answer_within: timedelta
    ) -> None:
        self._client = client
        self._task_queue = task_queue
        self._marks = marks
        # Most of the time for the result, the rest for asking where it stands.
        self._query_timeout = min(QUERY_TIMEOUT, answer_within * 0.3)
        self._wait = answer_within - self._query_timeout

    def erasure_id(self, customer_id: str) -> str:
        return ERASURE_WORKFLOW_PREFIX + self._marks.digest(customer_id)

    async def erase(self, customer_id: str) -> tuple[str, ErasureProgress]:
        """The erasure's workflow id, and what it did (``finished``) or so far."""
        handle = await self._client.start_workflow(
            CustomerErasure.run,
            ErasureRequest(customer_id),
            id=self.erasure_id(customer_id),
            task_queue=self._task_queue,
            # One at a time per customer; a finished one may run again (idempotent).
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary="customer erasure (GDPR / CCPA)",
        )
        try:
            progress = await asyncio.wait_for(handle.result(), self._wait.total_seconds())
        except TimeoutError:
            progress = await self._progress_of(handle)
        # Counts only: the customer id is exactly what must not linger in logs.
        log.info(
            "customer erasure",
            erasure=handle.id,
            finished=progress.finished,
            stage=progress.stage,
            journeys_terminated=progress.journeys_terminated,
            ledger_rows_anonymised=progress.ledger_rows_anonymised,
            data_key_destroyed=progress.data_key_destroyed,
            already_erased=progress.already_erased,
        )
        return handle.id, progress

    async def _progress_of(self, handle: WorkflowHandle[Any, ErasureProgress]) -> ErasureProgress:
        """Where a running erasure stands; a query needs a worker, so when none answers
        in time the answer is that it waits for one (it goes on when one comes)."""
        try:
            return await handle.query(CustomerErasure.progress, rpc_timeout=self._query_timeout)
        except (RPCError, WorkflowQueryFailedError):
            return ErasureProgress(stage="waiting for a worker")
