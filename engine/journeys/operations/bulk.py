"""Bulk operations on journeys through Temporal's batch operations (no gRPC here).

A batch operation runs inside the Temporal server: it reads the visibility query,
then cancels or signals every journey it selects at a bounded rate, and keeps its
own progress (``DescribeBatchOperation``). So a bulk cancel of 100,000 journeys
survives the API process going away, and the Temporal UI shows it under "Batch
Operations". Pausing and resuming are signals without arguments (a batch
signal carries no per-journey input): the journey does the rest.

Temporal runs only so many batch operations per namespace at once
(``frontend.MaxConcurrentBatchOperationPerNamespace``, 1 by default). A bulk
operation over that limit is refused (:class:`TooManyBulkOperations`); the
signal that tells held journeys a pause was lifted falls back to signalling
them one by one, a few at a time, in the background, since the pause is lifted
in any case and a held send asks again by itself (within 12 hours).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from temporalio.api.batch.v1 import BatchOperationCancellation, BatchOperationSignal
from temporalio.api.enums.v1 import BatchOperationState
from temporalio.api.workflowservice.v1 import (
    DescribeBatchOperationRequest,
    StartBatchOperationRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from engine.journeys.operations.filters import PAUSED_JOURNEYS, JourneyFilter, visibility_query
from engine.platform.logging import get_logger
from workflows.contracts import (
    PAUSE_JOURNEY_ALL_SIGNAL,
    PAUSE_JOURNEY_SIGNAL,
    RESUME_JOURNEY_SIGNAL,
    SENDING_RESUMED_SIGNAL,
)

log = get_logger(__name__)

# Job ids say what the job does, so GetBulkOperation can tell (a signal is a
# signal to Temporal) and ops can read it in the UI.
JOB_PREFIX = "aftercare-"
SENDING_RESUMED_JOB = "sending_resumed"
# Journeys signalled at once when the batch fallback signals them one by one.
FALLBACK_CONCURRENCY = 8


class BulkAction(StrEnum):
    CANCEL = "cancel"
    PAUSE = "pause"  # hold the journey's non-transactional sends
    PAUSE_ALL = "pause_all"  # hold all of them
    RESUME = "resume"  # lift the journey's own pause


# Each a signal without arguments (a batch signal carries none).
_SIGNALS = {
    BulkAction.PAUSE: PAUSE_JOURNEY_SIGNAL,
    BulkAction.PAUSE_ALL: PAUSE_JOURNEY_ALL_SIGNAL,
    BulkAction.RESUME: RESUME_JOURNEY_SIGNAL,
}


class BulkState(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    UNKNOWN = "unknown"


_STATES = {
    BatchOperationState.BATCH_OPERATION_STATE_RUNNING: BulkState.RUNNING,
    BatchOperationState.BATCH_OPERATION_STATE_COMPLETED: BulkState.COMPLETED,
    BatchOperationState.BATCH_OPERATION_STATE_FAILED: BulkState.FAILED,
}


class BulkOperationNotFound(Exception):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"no bulk operation has job id {job_id!r}")


class TooManyBulkOperations(Exception):
    def __init__(self) -> None:
        super().__init__(
            "Temporal runs as many bulk operations as it allows at once; "
            "wait for one to finish (GetBulkOperation) and try again"
        )


@dataclass(frozen=True)
class BulkProgress:
    job_id: str
    # None for a batch operation this service did not start.
    action: BulkAction | None
    state: BulkState
    total: int
    completed: int
    failed: int
    started_at: datetime | None
    closed_at: datetime | None
    reason: str
    query: str


class BulkOperations:
    def __init__(self, client: Client) -> None:
        self._client = client
        # Fallback signalling under way; kept so the tasks are not collected early.
        self._background: set[asyncio.Task[int]] = set()

    async def count(self, journeys: JourneyFilter) -> int:
        return (await self._client.count_workflows(visibility_query(journeys))).count

    async def start(
        self,
        action: BulkAction,
        journeys: JourneyFilter,
        reason: str,
        *,
        identity: str,
        max_operations_per_second: int | None = None,
    ) -> str:
        """Start ``action`` on the running journeys ``journeys`` selects; the job id.
        TooManyBulkOperations when Temporal runs its limit of them already."""
        job_id = f"{JOB_PREFIX}{action.value}-{uuid.uuid4().hex[:16]}"
        request = StartBatchOperationRequest(
            namespace=self._client.namespace,
            visibility_query=visibility_query(journeys),
            job_id=job_id,
            reason=reason,
            max_operations_per_second=float(max_operations_per_second or 0),
        )
        if action is BulkAction.CANCEL:
            request.cancellation_operation.CopyFrom(BatchOperationCancellation(identity=identity))
        else:
            request.signal_operation.CopyFrom(
                BatchOperationSignal(signal=_SIGNALS[action], identity=identity)
            )
        await self._start_batch(request)
        return job_id

    async def tell_held_journeys(self, reason: str, *, identity: str) -> str | None:
        """Signal ``sending_resumed`` to every journey holding a send; the job id, or
        None when Temporal refused a batch and the journeys are signalled one by one
        in the background instead."""
        job_id = f"{JOB_PREFIX}{SENDING_RESUMED_JOB}-{uuid.uuid4().hex[:16]}"
        query = visibility_query(PAUSED_JOURNEYS)
        request = StartBatchOperationRequest(
            namespace=self._client.namespace,
            visibility_query=query,
            job_id=job_id,
            reason=reason,
            signal_operation=BatchOperationSignal(signal=SENDING_RESUMED_SIGNAL, identity=identity),
        )
        try:
            await self._start_batch(request)
        except TooManyBulkOperations:
            task = asyncio.create_task(self._signal_one_by_one(query, SENDING_RESUMED_SIGNAL))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            log.info("bulk signal refused by temporal; signalling one by one")
            return None
        return job_id

    async def _signal_one_by_one(self, query: str, signal: str) -> int:
        limit = asyncio.Semaphore(FALLBACK_CONCURRENCY)
        signalled = 0

        async def signal_one(workflow_id: str) -> None:
            nonlocal signalled
            async with limit:
                try:
                    await self._client.get_workflow_handle(workflow_id).signal(signal)
                except RPCError as err:
                    if err.status != RPCStatusCode.NOT_FOUND:  # ended since the listing
                        log.warning("signal failed", signal=signal, status=str(err.status))
                    return
                signalled += 1

        try:
            pending: set[asyncio.Task[None]] = set()
            async for execution in self._client.list_workflows(query):
                pending.add(asyncio.create_task(signal_one(execution.id)))
                if len(pending) >= FALLBACK_CONCURRENCY * 4:
                    _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if pending:
                await asyncio.wait(pending)
        except RPCError as err:
            log.warning("listing journeys to signal failed", signal=signal, status=str(err.status))
        log.info("journeys signalled one by one", signal=signal, journeys=signalled)
        return signalled

    async def _start_batch(self, request: StartBatchOperationRequest) -> None:
        try:
            await self._client.workflow_service.start_batch_operation(request)
        except RPCError as err:
            if err.status == RPCStatusCode.RESOURCE_EXHAUSTED:
                raise TooManyBulkOperations() from None
            raise

    async def describe(self, job_id: str) -> BulkProgress:
        try:
            described = await self._client.workflow_service.describe_batch_operation(
                DescribeBatchOperationRequest(namespace=self._client.namespace, job_id=job_id)
            )
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise BulkOperationNotFound(job_id) from None
            raise
        return BulkProgress(
            job_id=job_id,
            action=action_of(job_id),
            state=_STATES.get(described.state, BulkState.UNKNOWN),
            total=described.total_operation_count,
            completed=described.complete_operation_count,
            failed=described.failure_operation_count,
            started_at=described.start_time.ToDatetime(tzinfo=UTC)
            if described.HasField("start_time")
            else None,
            closed_at=described.close_time.ToDatetime(tzinfo=UTC)
            if described.HasField("close_time") and described.close_time.seconds
            else None,
            reason=described.reason,
            query=described.query,
        )


def action_of(job_id: str) -> BulkAction | None:
    """The action a job id of ours names; None for other batch operations."""
    if not job_id.startswith(JOB_PREFIX):
        return None
    name = job_id.removeprefix(JOB_PREFIX).rpartition("-")[0]
    return BulkAction(name) if name in BulkAction._value2member_map_ else None
