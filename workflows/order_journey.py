"""OrderJourney: the durable journey of one order.

Deterministic code only: time comes from ``workflow.now()``, waiting from
``workflow.wait_condition``; every send is an activity.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    # Plain data and constants: loaded once outside the sandbox, so datetime and
    # enum types in them are the real ones the payload converter expects.
    from workflows import search_attributes as sa
    from workflows.model import (
        SEND_EMAIL_ACTIVITY,
        EventType,
        JourneyInput,
        JourneyState,
        OrderEvent,
        SendEmailInput,
        SentMessage,
        Shipment,
        Stage,
        TimelineEntry,
    )

# Transactional mail keeps trying (a customer must learn their order shipped, even
# if the mail server is down for hours); the backoff caps at five minutes.
TRANSACTIONAL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=["PermanentDeliveryFailure"],
)

# Stages only move forward: a late `shipped` after `delivered` is recorded but
# must not drag the journey back.
_STAGE_RANK = {
    Stage.ORDERED: 0,
    Stage.SHIPPED: 1,
    Stage.OUT_FOR_DELIVERY: 2,
    Stage.DELIVERED: 3,
}

# What each event does while the order is on its way: the stage it moves to, and
# the step (and template) that tells the customer.
_DELIVERY_STEPS: dict[EventType, tuple[Stage, str]] = {
    EventType.SHIPPED: (Stage.SHIPPED, "shipping_notice"),
    EventType.OUT_FOR_DELIVERY: (Stage.OUT_FOR_DELIVERY, "out_for_delivery"),
    EventType.DELIVERED: (Stage.DELIVERED, "delivered"),
}

_FINAL_STAGES = {Stage.DELIVERED, Stage.ORDER_CANCELLED, Stage.COMPLETED, Stage.STOPPED}

_NEXT_STEP_TEXT = {
    Stage.ORDERED: "Shipping notice when the order ships",
    Stage.SHIPPED: "Out-for-delivery or delivered notice from the carrier",
    Stage.OUT_FOR_DELIVERY: "Delivered notice when the parcel arrives",
}


@workflow.defn
class OrderJourney:
    @workflow.init
    def __init__(self, journey: JourneyInput) -> None:
        order = journey.order
        self._order = order
        self._state = JourneyState(
            journey_id=workflow.info().workflow_id,
            order_id=order.order_id,
            customer_id=order.customer.id,
            stage=Stage.ORDERED,
        )
        self._inbox: list[OrderEvent] = []

    @workflow.run
    async def run(self, journey: JourneyInput) -> JourneyState:
        try:
            self._note("stage", f"journey started at stage {self._state.stage}")
            await self._send_email("order_confirmation", "order_confirmation")
            self._publish()
            while self._state.stage not in _FINAL_STAGES:
                await workflow.wait_condition(lambda: bool(self._inbox))
                await self._apply(self._inbox.pop(0))
            if self._state.stage == Stage.DELIVERED:
                self._set_stage(Stage.COMPLETED)
            return self._state
        except asyncio.CancelledError:
            # An operator cancelled the journey (API or Temporal UI): record it so
            # the query shows why it ended, send nothing more, end as cancelled.
            self._set_stage(Stage.STOPPED)
            self._note("note", "journey cancelled by an operator; nothing more will be sent")
            self._publish()
            raise

    @workflow.signal(name="record_event")
    def record_event(self, event: OrderEvent) -> None:
        if event.event_id in self._state.seen_event_ids:
            self._note("event", f"duplicate event {event.event_id} ({event.type}) ignored")
            return
        self._state.seen_event_ids.append(event.event_id)
        self._inbox.append(event)

    @workflow.query(name="state")
    def state(self) -> JourneyState:
        return self._state

    async def _apply(self, event: OrderEvent) -> None:
        self._note("event", f"{event.type} ({event.event_id})")
        if event.type in _DELIVERY_STEPS:
            stage, step = _DELIVERY_STEPS[event.type]
            if _STAGE_RANK[stage] <= _STAGE_RANK.get(self._state.stage, 99):
                self._note("note", f"{event.type} arrived after stage {self._state.stage}")
                return
            self._set_stage(stage)
            await self._send_email(step, step, shipment=event.shipment)
        elif event.type == EventType.CANCELLED:
            self._set_stage(Stage.ORDER_CANCELLED)
            await self._send_email("order_cancelled", "order_cancelled")
        else:
            self._note("note", f"{event.type} recorded; this journey has no step for it")
        self._publish()

    async def _send_email(
        self, step: str, template: str, *, shipment: Shipment | None = None
    ) -> None:
        request = SendEmailInput(
            journey_id=self._state.journey_id,
            step=step,
            template=template,
            order=self._order,
            shipment=shipment,
        )
        try:
            sent = await workflow.execute_activity(
                SEND_EMAIL_ACTIVITY,
                request,
                result_type=SentMessage,
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=TRANSACTIONAL_RETRY,
                summary=f"send {template} email",
            )
        except ActivityError as err:
            # A permanent failure (the mail server refused the address) must not
            # end the journey: record it and go on with the next steps.
            cause = err.cause
            reason = cause.message if isinstance(cause, ApplicationError) else str(err)
            self._note("message", f"{step} email failed: {reason}")
            return
        self._state.sent.append(sent)
        self._note("message", f"{step} sent by {sent.channel} ({sent.template})")

    def _set_stage(self, stage: Stage) -> None:
        if stage == self._state.stage:
            return
        self._state.stage = stage
        self._note("stage", f"stage {stage}")
        workflow.upsert_search_attributes([sa.JOURNEY_STAGE.value_set(stage.value)])

    def _publish(self) -> None:
        """Refresh what the query and the Temporal UI say comes next."""
        stage = self._state.stage
        if stage in _FINAL_STAGES:
            self._state.waiting_for = []
            self._state.next_step = "Nothing: the journey has ended"
        else:
            self._state.waiting_for = [
                event
                for event, (target, _) in _DELIVERY_STEPS.items()
                if _STAGE_RANK[target] > _STAGE_RANK[stage]
            ] + [EventType.CANCELLED]
            self._state.next_step = _NEXT_STEP_TEXT[stage]
        workflow.set_current_details(
            f"**Stage:** {stage}\n\n**Next:** {self._state.next_step}\n\n"
            f"**Messages sent:** {len(self._state.sent)}"
        )

    def _note(self, kind: str, detail: str) -> None:
        self._state.timeline.append(TimelineEntry(at=workflow.now(), kind=kind, detail=detail))
