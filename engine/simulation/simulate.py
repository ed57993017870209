"""``aftercare simulate``: one sample order through the real workflow, in virtual time.

The marketer's preview: which messages the plan would send, on which channel, at
what local time, for a given sequence of events. The real workflow, plan and
activities run (templates really render), against an in-memory mail sink and a
throwaway ledger, so nothing reaches a customer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, timedelta
from pathlib import Path

import yaml
from pydantic import ConfigDict, TypeAdapter

from activities.email.rendering import TEMPLATE_NAMES
from engine.simulation.sandbox_stack import sandbox_stack
from workflows.ids import journey_id_for
from workflows.order_journey import OrderJourney
from workflows.orders import Feedback, Order, OrderEvent
from workflows.plans.catalogue import PlanError, load_catalogue
from workflows.state import JourneyInput, JourneyState
from workflows.timing import local_iso
from workflows.vocabulary import EventType


@dataclass(frozen=True)
class SimulatedEvent:
    """One line of an events file: ``{after: P1D, event: shipped}``; ``after``
    counts from the previous event (or the journey start)."""

    __pydantic_config__ = ConfigDict(extra="forbid")
    event: EventType
    after: timedelta = timedelta(0)
    score: int | None = None
    skus: tuple[str, ...] = ()


DEFAULT_EVENTS = (
    SimulatedEvent(event=EventType.SHIPPED, after=timedelta(days=1)),
    SimulatedEvent(event=EventType.DELIVERED, after=timedelta(days=2)),
)


def load_events(path: Path) -> list[SimulatedEvent]:
    data = yaml.safe_load(path.read_text())
    return list(TypeAdapter(list[SimulatedEvent]).validate_python(data or []))


@dataclass(frozen=True)
class TimelineRow:
    local_time: str
    what: str
    detail: str


async def simulate(
    plan_id: str,
    order: Order,
    events: list[SimulatedEvent],
    plans_dir: Path | None = None,
) -> tuple[JourneyState, list[TimelineRow]]:
    plans = load_catalogue(plans_dir, known_templates=TEMPLATE_NAMES)
    if plan_id not in plans:
        raise PlanError(f"no plan {plan_id!r}; known: {', '.join(sorted(plans))}")
    async with sandbox_stack("simulate", plans_dir) as stack:
        env = stack.env
        order = replace(order, placed_at=await env.get_current_time())
        handle = await env.client.start_workflow(
            OrderJourney.run,
            JourneyInput(order=order, plan=plans[plan_id]),
            id=journey_id_for(order.order_id),
            task_queue=stack.task_queue,
        )
        for number, step in enumerate(events):
            await env.sleep(step.after)
            await handle.signal(
                OrderJourney.record_event,
                OrderEvent(
                    event_id=f"simulated-{number}",
                    type=step.event,
                    occurred_at=await env.get_current_time(),
                    feedback=Feedback(score=step.score) if step.score is not None else None,
                    skus=list(step.skus),
                ),
            )
        state = await handle.result()
    return state, timeline_rows(state)


def timeline_rows(state: JourneyState) -> list[TimelineRow]:
    rows = []
    for entry in state.timeline:
        if entry.kind in {"event", "message", "skip"}:
            rows.append(
                TimelineRow(
                    local_time=local_iso(entry.at.astimezone(UTC), state.timezone),
                    what=entry.kind,
                    detail=entry.detail,
                )
            )
    return rows


def render_table(state: JourneyState, rows: list[TimelineRow]) -> str:
    header = (
        f"Plan {state.plan_id} v{state.plan_version} ({state.plan_hash[:12]}), "
        f"customer time zone {state.timezone}"
    )
    lines = [header, "", f"{'local time':<24}{'kind':<9}detail"]
    lines += [f"{row.local_time:<24}{row.what:<9}{row.detail}" for row in rows]
    sent = sum(1 for message in state.sent if message.status == "sent")
    lines += ["", f"{sent} message(s) sent; journey ended at stage {state.stage}"]
    return "\n".join(lines)
