"""The plan interpreter's pure core: given a plan, the order and the journey's state,
which steps are due when, which are no longer needed, and which events are awaited.

Pure and deterministic (no clock: callers pass ``now`` as ``workflow.now()``), so
the workflow stays replay-safe and every rule here is unit-testable on its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from workflows.orders import Order
from workflows.plans.conditions import order_matches
from workflows.plans.model import Category, Plan, Replenishment, Step, TriggerKind
from workflows.state import JourneyState, StepOutcome
from workflows.timing import at_local_time, defer_out_of, next_open
from workflows.vocabulary import Channel, EventType, Stage

REPLENISHMENT_PREFIX = "replenishment:"
RETURN_EVENTS = (EventType.RETURN_REQUESTED, EventType.RETURNED, EventType.REFUNDED)
# A whole-order return ends every message that assumes the customer keeps the goods.
_STOPPED_BY_RETURN = {Category.FEEDBACK, Category.MARKETING, Category.RELATIONSHIP}


@dataclass(frozen=True)
class PlannedSend:
    """A message the plan will send, with its due time after local-time rules."""

    key: str  # step id, or "replenishment:<sku>"
    step_id: str
    template: str
    category: Category
    channels: tuple[Channel, ...]
    iteration: int
    base_at: datetime  # when the trigger alone would send it
    due_at: datetime  # after time of day, window and quiet hours
    step: Step | None = None  # None for replenishment reminders
    position: int = 0  # in the plan: sends due at the same instant go in plan order
    focus_sku: str = ""
    run_out_at: datetime | None = None


@dataclass(frozen=True)
class Skip:
    key: str
    reason: str
    # A replenishment skip ends the whole series for that SKU.
    ends_series: bool = True


@dataclass(frozen=True)
class Agenda:
    sends: list[PlannedSend] = field(default_factory=list)  # soonest first
    skips: list[Skip] = field(default_factory=list)
    waiting_for: list[EventType] = field(default_factory=list)

    def due(self, now: datetime) -> list[PlannedSend]:
        return [send for send in self.sends if send.due_at <= now]

    def next_due(self, now: datetime) -> datetime | None:
        later = [send.due_at for send in self.sends if send.due_at > now]
        return min(later) if later else None


def build_agenda(plan: Plan, order: Order, state: JourneyState) -> Agenda:
    tz = order.customer.timezone
    sends: list[PlannedSend] = []
    skips: list[Skip] = []
    waiting: set[EventType] = set()
    for position, step in enumerate(plan.steps):
        if step.id in state.steps:
            continue
        anchor = _anchor(step, state)
        base = anchor + step.trigger.delay if anchor is not None else None
        due = _local_rules(base, step.at, step, plan, tz) if base is not None else None
        reason = _skip_reason(step, order, state, base, due)
        if reason:
            skips.append(Skip(step.id, reason))
            continue
        if base is None or due is None:
            if step.trigger.on == TriggerKind.EVENT and step.trigger.event:
                waiting.add(step.trigger.event)
            continue
        if (
            step.stale_after is not None
            and step.category != Category.TRANSACTIONAL
            and due - base > step.stale_after
        ):
            skips.append(Skip(step.id, f"stale: it could only go out {_days(due - base)} late"))
            continue
        sends.append(
            PlannedSend(
                key=step.id,
                step_id=step.id,
                template=step.template,
                category=step.category,
                channels=step.channels,
                iteration=0,
                base_at=base,
                due_at=due,
                step=step,
                position=position,
            )
        )
    if plan.replenishment is not None:
        _replenishment(plan, plan.replenishment, order, state, sends, skips, waiting)
    sends.sort(key=lambda send: (send.due_at, send.position, send.key))
    return Agenda(sends=sends, skips=skips, waiting_for=sorted(waiting))


def with_deferrals(agenda: Agenda, deferred: Mapping[str, datetime]) -> Agenda:
    """The agenda with each message the cap deferred moved to its slot (never earlier
    than the plan has it), soonest first again."""
    if not deferred:
        return agenda
    sends = [
        dataclasses.replace(send, due_at=max(send.due_at, deferred[send.key]))
        if send.key in deferred
        else send
        for send in agenda.sends
    ]
    sends.sort(key=lambda send: (send.due_at, send.position, send.key))
    return dataclasses.replace(agenda, sends=sends)


def _anchor(step: Step, state: JourneyState) -> datetime | None:
    trigger = step.trigger
    if trigger.on == TriggerKind.START:
        return state.started_at
    if trigger.on == TriggerKind.EVENT:
        return state.events.get(trigger.event) if trigger.event else None
    record = state.steps.get(trigger.step or "")
    return record.at if record and record.outcome == StepOutcome.SENT else None


def _skip_reason(
    step: Step, order: Order, state: JourneyState, base: datetime | None, due: datetime | None
) -> str:
    trigger = step.trigger
    triggered_by_cancel = trigger.on == TriggerKind.EVENT and trigger.event == EventType.CANCELLED
    cancelled_at = state.events.get(EventType.CANCELLED)
    # What was already owed to the customer when they cancelled (the order
    # confirmation, racing the cancellation) still goes out; nothing later does.
    owed = (
        step.category == Category.TRANSACTIONAL
        and base is not None
        and (cancelled_at is not None and base <= cancelled_at)
    )
    if cancelled_at is not None and not triggered_by_cancel and not owed:
        return "order cancelled"
    # `unless` events count when they happened before the step was due: a
    # `delivered` reported before a late `shipped` makes the shipping notice moot,
    # one reported after it does not. Due means after the local-time rules: a
    # `shipped` while the delay notice waits for its window still stops it.
    # A step triggered by an event is also moot when an `unless` event reached the
    # journey in an earlier moment than its trigger did (a carrier's late `shipped`
    # scan, stamped with its real, earlier time, after `delivered`).
    trigger_reported = state.reported.get(trigger.event) if trigger.event else None
    for event in step.unless:
        happened = state.events.get(event)
        if happened is not None and due is not None and happened <= due:
            return f"not needed: {event} happened first"
        reported = state.reported.get(event)
        if reported is not None and trigger_reported is not None and reported < trigger_reported:
            return f"not needed: {event} was reported first"
    if state.whole_order_returned and step.category in _STOPPED_BY_RETURN:
        return "order returned"
    if state.marketing_blocked and step.category == Category.MARKETING:
        return "no marketing after unhappy feedback"
    if trigger.on == TriggerKind.STEP:
        earlier = state.steps.get(trigger.step or "")
        if earlier is not None and earlier.outcome != StepOutcome.SENT:
            return f"{trigger.step} was not sent"
    if not order_matches(step.when, order):
        return "conditions not met"
    if trigger.on == TriggerKind.EVENT and trigger.event == EventType.FEEDBACK and state.feedback:
        score = state.feedback.score
        low = step.when.min_score if step.when.min_score is not None else 0
        high = step.when.max_score if step.when.max_score is not None else 10
        if not low <= score <= high:
            return f"feedback score {score} outside {low}-{high}"
    return ""


def _replenishment(
    plan: Plan,
    spec: Replenishment,
    order: Order,
    state: JourneyState,
    sends: list[PlannedSend],
    skips: list[Skip],
    waiting: set[EventType],
) -> None:
    quantities: dict[str, tuple[int, int]] = {}
    for item in order.items:
        if item.consumption_days > 0:
            days, quantity = quantities.get(item.sku, (item.consumption_days, 0))
            quantities[item.sku] = (days, quantity + item.quantity)
    delivered = state.events.get(EventType.DELIVERED)
    for sku, (days, quantity) in quantities.items():
        key = f"{REPLENISHMENT_PREFIX}{sku}"
        if key in state.steps:
            continue
        reason = _replenishment_stop(sku, spec, state)
        if reason:
            skips.append(Skip(key, reason))
            continue
        if delivered is None:
            waiting.add(EventType.DELIVERED)
            continue
        reminder = state.reminders_sent.get(sku, 0) + 1
        if reminder > spec.max_reminders:
            skips.append(Skip(key, f"all {spec.max_reminders} reminders sent"))
            continue
        run_out = delivered + timedelta(days=days * quantity) * reminder
        base = max(run_out - spec.lead_time, delivered)
        due = _local_rules(base, spec.at, None, plan, order.customer.timezone, spec.category)
        waiting.add(EventType.REORDERED)
        sends.append(
            PlannedSend(
                key=key,
                step_id=key,
                template=spec.template,
                category=spec.category,
                channels=spec.channels,
                iteration=reminder,
                base_at=base,
                due_at=due,
                position=len(plan.steps),
                focus_sku=sku,
                run_out_at=run_out,
            )
        )


def _replenishment_stop(sku: str, spec: Replenishment, state: JourneyState) -> str:
    if EventType.CANCELLED in state.events:
        return "order cancelled"
    if state.whole_order_returned or sku in state.returned_skus:
        return "returned"
    if sku in state.reordered_skus:
        return "reordered"
    if state.marketing_blocked and spec.category == Category.MARKETING:
        return "no marketing after unhappy feedback"
    return ""


def _local_rules(
    base: datetime,
    at: str | None,
    step: Step | None,
    plan: Plan,
    tz: str,
    category: Category | None = None,
) -> datetime:
    """Move ``base`` to the step's time of day, into its window, out of quiet hours."""
    category = step.category if step is not None else category
    # Times of day are to the minute: a base a few seconds past 10:00 (the send a
    # step follows is recorded once it is done) still means today's 10:00, not
    # tomorrow's.
    due = at_local_time(base.replace(second=0, microsecond=0), at, tz) if at else base
    window = step.window if step is not None else None
    quiet = plan.quiet_hours if category != Category.TRANSACTIONAL else None
    # A window and quiet hours can push each other (quiet until 08:00, window from
    # 09:00): settle in a few rounds, each only ever moving later.
    for _ in range(4):
        before = due
        if window is not None:
            due = next_open(due, window.start, window.end, tz)
        if quiet is not None:
            due = defer_out_of(due, quiet.start, quiet.end, tz)
        if due == before:
            break
    return due


def stage_for(state: JourneyState, agenda: Agenda) -> Stage:
    events = state.events
    if EventType.CANCELLED in events:
        return Stage.ORDER_CANCELLED
    if any(event in events for event in RETURN_EVENTS) and (
        state.whole_order_returned or EventType.DELIVERED not in events
    ):
        return Stage.RETURNED
    if EventType.DELIVERED in events:
        pending = [send for send in agenda.sends]
        if pending and all(send.key.startswith(REPLENISHMENT_PREFIX) for send in pending):
            return Stage.REPLENISHMENT
        return Stage.DELIVERED
    if EventType.OUT_FOR_DELIVERY in events:
        return Stage.OUT_FOR_DELIVERY
    if EventType.SHIPPED in events:
        return Stage.SHIPPED
    return Stage.ORDERED


def _days(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.0f} hours"
