"""CustomerErasure: erasing a customer (GDPR art. 17, CCPA deletion) as a durable
workflow, so it survives restarts and outlives an API call's time limit.

In this order, so that nothing can write about the customer again while it works:

1. mark them erased (a keyed hash of the id), deleting their preferences and
   consent; from then on every write about them, and every journey start and data
   key for them, is refused (the mark is checked in the same transaction that
   registers a journey's owner);
2. find every journey they own, through our own durable owner mapping (closed
   journeys and ones Temporal deleted too) and through visibility;
3. close each: terminate it if it runs; one that does not exist yet may still be
   starting (its owner registered a moment ago), so it is looked for again for a
   little while;
4. delete their other rows (frequency-cap slots, phone index, feedback answers);
5. replace the recipient of every ledger row of those journeys with a keyed hash;
6. destroy their data key, so whatever Temporal still stores of them can never be
   decrypted (crypto-shredding), keeping the owner rows under the hashed id so a
   later erasure still finds their journeys;
7. leave behind a sweep (ErasureSweep, a child that outlives this workflow) that,
   once a send in flight when its journey closed has had time to end, does 4 and 5
   again for what it wrote meanwhile.

Every activity is idempotent, so a retry, a restart or a second erasure of the same
customer finds nothing left to do and says so.
"""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from workflows.erasure_contracts import (
        ANONYMISE_LEDGER_ACTIVITY,
        CLOSE_JOURNEY_ACTIVITY,
        DESTROY_KEY_ACTIVITY,
        ERASURE_REASON,
        ERASURE_WORKFLOW_PREFIX,
        FORGET_ROWS_ACTIVITY,
        MARK_ERASED_ACTIVITY,
        OWNED_JOURNEYS_ACTIVITY,
        SWEEP_WORKFLOW_PREFIX,
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

# A send attempt in flight when its journey closed ends within its timeout and its
# ledger lease; whatever it wrote is cleaned up after this.
SETTLE = timedelta(minutes=2)
STEP_TIMEOUT = timedelta(seconds=30)
# Each step retries until it succeeds: an erasure must finish, whatever the outage.
STEP_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=5))


@workflow.defn
class CustomerErasure:
    def __init__(self) -> None:
        self._progress = ErasureProgress()

    @workflow.run
    async def run(self, request: ErasureRequest) -> ErasureProgress:
        progress = self._progress
        marked: Marked = await _step(MARK_ERASED_ACTIVITY, request, Marked)
        progress.preference_rows_deleted = marked.preference_rows_deleted
        progress.consent_rows_deleted = marked.consent_rows_deleted
        progress.already_erased = marked.already_erased
        progress.erased_at = marked.erased_at

        progress.stage = "closing journeys"
        owned: list[OwnedJourney] = await _step(
            OWNED_JOURNEYS_ACTIVITY, request, list[OwnedJourney]
        )
        progress.journeys = [journey.workflow_id for journey in owned]
        progress.journeys_found = len(owned)
        for journey in owned:
            closed: str = await _step(
                CLOSE_JOURNEY_ACTIVITY, CloseJourney(journey, ERASURE_REASON), str
            )
            if closed == Closed.TERMINATED:
                progress.journeys_terminated += 1

        progress.stage = "forgetting"
        sweep = SweepRequest(request.customer_id, progress.journeys)
        forgotten = await _forget(sweep)
        progress.cap_slots_deleted = forgotten.cap_slots
        progress.phone_rows_deleted = forgotten.phone_rows
        progress.feedback_rows_deleted = forgotten.feedback_rows
        progress.ledger_rows_anonymised = forgotten.ledger_rows

        progress.stage = "destroying the data key"
        progress.data_key_destroyed = await _step(DESTROY_KEY_ACTIVITY, request, bool)

        await self._leave_sweep(sweep)
        progress.stage = "done"
        progress.finished = True
        return progress

    @workflow.query
    def progress(self) -> ErasureProgress:
        return self._progress

    async def _leave_sweep(self, sweep: SweepRequest) -> None:
        # An earlier erasure's sweep still to come covers this one too.
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await workflow.start_child_workflow(
                ErasureSweep.run,
                sweep,
                id=workflow.info().workflow_id.replace(
                    ERASURE_WORKFLOW_PREFIX, SWEEP_WORKFLOW_PREFIX, 1
                ),
                parent_close_policy=ParentClosePolicy.ABANDON,
                static_summary="erasure: clean up after sends in flight",
            )


@workflow.defn
class ErasureSweep:
    """After an erasure, once sends in flight have ended: forget what they wrote."""

    @workflow.run
    async def run(self, sweep: SweepRequest) -> RowsForgotten:
        await workflow.sleep(SETTLE, summary="let sends in flight end")
        return await _forget(sweep)


async def _forget(sweep: SweepRequest) -> RowsForgotten:
    forgotten: RowsForgotten = await _step(FORGET_ROWS_ACTIVITY, sweep, RowsForgotten)
    anonymised: int = await _step(
        ANONYMISE_LEDGER_ACTIVITY, AnonymiseLedger(sweep.workflow_ids), int
    )
    return dataclasses.replace(forgotten, ledger_rows=anonymised)


async def _step(activity: str, argument: object, result_type: Any) -> Any:
    return await workflow.execute_activity(
        activity,
        argument,
        result_type=result_type,
        start_to_close_timeout=STEP_TIMEOUT,
        retry_policy=STEP_RETRY,
        summary=activity.removeprefix("erasure_").replace("_", " "),
    )
