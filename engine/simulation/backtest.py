"""``aftercare plans check NEW --against DIR``: recorded journeys run through a new plan.

Each history under DIR (exported by ``aftercare replay --export`` or recorded by
``make histories``) gives a customer's order, the plan it ran and the events it
received, at their times. Both plans run that same order and those same events
through the real workflow on the time-skipping test server: the recorded plan
(*before*) and the new one (*after*), each as a journey of its own with a customer of
its own (so neither counts against the other's frequency cap). The report says, per
customer, how their messages change: how many, which steps, when (from the order)
and on which channels. Only journeys on the new plan's id are compared; the others
are counted as skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from engine.journeys.plan_changes.diff import duration_text
from engine.journeys.replay.fetching import history_files, read_history_file
from engine.simulation.recorded import NotAJourneyStart, RecordedJourney, recorded_journey
from engine.simulation.sandbox_stack import sandbox_stack
from workflows.contracts import Delivery
from workflows.ids import journey_id_for
from workflows.order_journey import OrderJourney
from workflows.plans.model import PinnedPlan
from workflows.state import JourneyInput, JourneyState


@dataclass(frozen=True)
class Message:
    """One message a journey sent: its step, channel and when, counted from the order."""

    step: str
    channel: str
    after: timedelta

    @property
    def when(self) -> str:
        return f"+{duration_text(self.after)}"


@dataclass(frozen=True)
class CustomerChange:
    journey_id: str
    before: tuple[Message, ...]
    after: tuple[Message, ...]

    @property
    def changes(self) -> list[str]:
        """What differs, message by message (a step's repeats paired in order)."""
        lines: list[str] = []
        steps = dict.fromkeys(m.step for m in (*self.before, *self.after))
        for step in steps:
            was = [m for m in self.before if m.step == step]
            now = [m for m in self.after if m.step == step]
            for old, new in zip(was, now, strict=False):
                if old.channel != new.channel:
                    lines.append(f"{step}: channel {old.channel} -> {new.channel}")
                if old.after != new.after:
                    lines.append(
                        f"{step}: at +{duration_text(old.after)} -> +{duration_text(new.after)}"
                    )
            for gone in was[len(now) :]:
                lines.append(
                    f"{step}: no longer sent ({gone.channel}, +{duration_text(gone.after)})"
                )
            for extra in now[len(was) :]:
                lines.append(f"{step}: newly sent ({extra.channel}, +{duration_text(extra.after)})")
        return lines


@dataclass
class BacktestReport:
    plan: str
    customers: list[CustomerChange] = field(default_factory=list)
    # File name -> why it was not compared (another plan, a later run, no journey).
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> list[CustomerChange]:
        return [customer for customer in self.customers if customer.changes]


async def backtest(new_plan: PinnedPlan, against: Path) -> BacktestReport:
    report = BacktestReport(plan=f"{new_plan.plan.id} v{new_plan.plan.version}")
    journeys: list[RecordedJourney] = []
    for file in history_files(against):
        fetched = await read_history_file(file)
        try:
            journey = recorded_journey(fetched.workflow_id, fetched.history)
        except NotAJourneyStart as err:
            report.skipped[file.name] = str(err)
            continue
        if journey.plan.plan.id != new_plan.plan.id:
            report.skipped[file.name] = f"on plan {journey.plan.plan.id}"
            continue
        journeys.append(journey)
    if journeys:
        async with _simulator() as simulator:
            for journey in journeys:
                before = await simulator.run(journey, journey.plan, "before")
                after = await simulator.run(journey, new_plan, "after")
                report.customers.append(CustomerChange(journey.journey_id, before, after))
    return report


@asynccontextmanager
async def _simulator() -> AsyncIterator[_Simulator]:
    """One sandbox stack for every journey of a backtest: nothing reaches a customer."""
    async with sandbox_stack("backtest") as stack:
        yield _Simulator(stack.env, stack.task_queue)


@dataclass(frozen=True)
class _Simulator:
    env: WorkflowEnvironment
    task_queue: str

    async def run(
        self, journey: RecordedJourney, plan: PinnedPlan, label: str
    ) -> tuple[Message, ...]:
        """The messages ``journey``'s order and events get under ``plan``."""
        suffix = f"{label}-{uuid.uuid4().hex[:6]}"
        # At the recorded start's hour and weekday: quiet hours and a step's "at" time
        # then fall as they fell for the customer, whenever the backtest runs.
        now = await self.env.get_current_time()
        await self.env.sleep(same_time_of_week(now, journey.started_at) - now)
        start = await self.env.get_current_time()  # the order is placed now
        original = journey.order
        order = replace(
            original,
            order_id=f"{original.order_id}-{suffix}",
            customer=replace(original.customer, id=f"{original.customer.id}-{suffix}"),
            placed_at=start,
        )
        handle = await self.env.client.start_workflow(
            OrderJourney.run,
            JourneyInput(order=order, plan=plan),
            id=journey_id_for(order.order_id),
            task_queue=self.task_queue,
        )
        elapsed = timedelta(0)
        for offset, event in journey.events:
            if offset > elapsed:
                await self.env.sleep(offset - elapsed)
                elapsed = offset
            moved = replace(event, occurred_at=await self.env.get_current_time())
            await handle.signal(OrderJourney.record_event, moved)
        return _messages(await handle.result())


def same_time_of_week(now: datetime, recorded: datetime) -> datetime:
    """The first instant at or after ``now`` a whole number of weeks from ``recorded``."""
    return now + (recorded - now) % timedelta(days=7)


def _messages(state: JourneyState) -> tuple[Message, ...]:
    """The messages a finished journey sent, in order: when from its timeline (workflow
    time, so virtual time here), the channel from its send records."""
    channels: dict[str, list[str]] = {}
    for sent in state.sent:
        if sent.status == Delivery.SENT:
            channel = str(sent.channel.value) if sent.channel else "none"
            channels.setdefault(sent.step, []).append(channel)
    messages: list[Message] = []
    seen: dict[str, int] = {}
    for entry in state.timeline:
        if entry.kind != "message":
            continue
        # "<step key>[ #<iteration>]: <detail>"
        step = entry.detail.split(": ", 1)[0].split(" #", 1)[0]
        index = seen.get(step, 0)
        seen[step] = index + 1
        known = channels.get(step, [])
        channel = known[index] if index < len(known) else "unknown"
        messages.append(Message(step, channel, _rounded(entry.at - state.started_at)))
    return tuple(messages)


def _rounded(span: timedelta) -> timedelta:
    """To the minute: the workflow's own processing time is no change of plan."""
    return timedelta(minutes=round(span.total_seconds() / 60))


def render_backtest(report: BacktestReport) -> str:
    lines = [f"backtest of plan {report.plan}"]
    for customer in report.customers:
        head = f"{customer.journey_id}: {len(customer.before)} -> {len(customer.after)} messages"
        changes = customer.changes
        lines.append(head + ("" if changes else ", unchanged"))
        lines.extend(f"    {line}" for line in changes)
    for name, why in sorted(report.skipped.items()):
        lines.append(f"skipped {name}: {why}")
    before = sum(len(c.before) for c in report.customers)
    after = sum(len(c.after) for c in report.customers)
    lines.append(
        f"{len(report.customers)} customers: {len(report.changed)} with changed messages; "
        f"{before} -> {after} messages in all; {len(report.skipped)} histories skipped"
    )
    return "\n".join(lines)
