"""WebhookDispatch: one per subscription, delivering the journey event outbox to it
(as webhooks, or to the broker's exchange: the input's ``transport`` picks the activity).

Serially and in outbox order: a batch at a time through the delivery activity,
which returns the new cursor. A failed delivery fails the activity, so Temporal
retries it with backoff for as long as it takes and the cursor does not move
(at least once: receivers deduplicate on ``webhook-id``). With nothing to send it
waits a few seconds, or less when nudged (a subscription just created).
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.versioning import continue_as_new_versioning
from workflows.webhook_contracts import (
    DeliverEventsInput,
    DeliverEventsResult,
    WebhookDispatchInput,
)

IDLE_WAIT = timedelta(seconds=3)
DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    maximum_attempts=0,  # a subscriber down for a day still gets everything
)


@workflow.defn(name="WebhookDispatch")
class WebhookDispatch:
    def __init__(self) -> None:
        self._nudged = False

    @workflow.run
    async def run(self, request: WebhookDispatchInput) -> None:
        cursor = request.cursor
        for _ in range(request.batches_per_run):
            result = await workflow.execute_activity(
                request.activity,
                DeliverEventsInput(subscription_id=request.subscription_id, after=cursor),
                result_type=DeliverEventsResult,
                start_to_close_timeout=timedelta(minutes=5),
                heartbeat_timeout=timedelta(seconds=30),
                retry_policy=DELIVERY_RETRY,
            )
            if result.removed:
                return
            cursor = result.cursor
            if result.handled == 0:
                self._nudged = False
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(lambda: self._nudged, timeout=IDLE_WAIT)
        workflow.continue_as_new(
            WebhookDispatchInput(
                subscription_id=request.subscription_id,
                cursor=cursor,
                batches_per_run=request.batches_per_run,
                transport=request.transport,
            ),
            # Under worker versioning, the next run starts on the current build.
            initial_versioning_behavior=continue_as_new_versioning(),
        )

    @workflow.signal
    def nudge(self) -> None:
        """Look for new events now rather than after the idle wait."""
        self._nudged = True
