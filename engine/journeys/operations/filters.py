"""Which journeys a bulk operation acts on, as a Temporal visibility query.

The query is built here from a :class:`JourneyFilter` whose fields were already
checked (``engine.journeys.operations.parsing``): enum values, ids of a safe
character set, instants we format ourselves. No text a caller sent is pasted in
as query syntax; string values are still quoted and escaped, as a second guard.
Every query selects running journeys only: a closed journey can be neither
cancelled nor paused, and the dry run must count what the operation would touch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from workflows import search_attributes as sa
from workflows.order_journey import OrderJourney
from workflows.vocabulary import Stage

WORKFLOW_TYPE = OrderJourney.__name__
# JourneyPlan holds the pinned plan's label, "<plan id>@v<version>".
PLAN_VERSION_SEPARATOR = "@v"
JOURNEY_PAUSED = sa.JOURNEY_PAUSED.name


@dataclass(frozen=True)
class JourneyFilter:
    """Running journeys matching every criterion given (empty: all of them)."""

    # A plan id ("default": any version) or a pinned label ("default@v1").
    plan: str = ""
    stage: Stage | None = None
    customer_id: str = ""
    started_after: datetime | None = None
    started_before: datetime | None = None
    # True: journeys holding a send or paused on their own; False: the others.
    paused: bool | None = None

    @property
    def is_empty(self) -> bool:
        return self == JourneyFilter()


def literal(value: str) -> str:
    """A visibility-query string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def instant(value: datetime) -> str:
    """An instant as visibility queries read it: RFC 3339 in UTC."""
    return literal(value.astimezone(UTC).isoformat().replace("+00:00", "Z"))


def visibility_query(journeys: JourneyFilter) -> str:
    clauses = [f"WorkflowType = {literal(WORKFLOW_TYPE)}", "ExecutionStatus = 'Running'"]
    if journeys.plan:
        if PLAN_VERSION_SEPARATOR in journeys.plan:
            clauses.append(f"{sa.JOURNEY_PLAN.name} = {literal(journeys.plan)}")
        else:
            prefix = journeys.plan + PLAN_VERSION_SEPARATOR
            clauses.append(f"{sa.JOURNEY_PLAN.name} STARTS_WITH {literal(prefix)}")
    if journeys.stage is not None:
        clauses.append(f"{sa.JOURNEY_STAGE.name} = {literal(journeys.stage.value)}")
    if journeys.customer_id:
        clauses.append(f"{sa.CUSTOMER_ID.name} = {literal(journeys.customer_id)}")
    if journeys.started_after is not None:
        clauses.append(f"StartTime > {instant(journeys.started_after)}")
    if journeys.started_before is not None:
        clauses.append(f"StartTime < {instant(journeys.started_before)}")
    if journeys.paused is True:
        clauses.append(f"{JOURNEY_PAUSED} = true")
    elif journeys.paused is False:
        # A journey that never paused has no value at all.
        clauses.append(f"({JOURNEY_PAUSED} = false OR {JOURNEY_PAUSED} IS NULL)")
    return " AND ".join(clauses)


#: Journeys holding a send (or paused on their own): who hears that a pause was lifted.
PAUSED_JOURNEYS = JourneyFilter(paused=True)
