"""Which journeys a replay takes: a Temporal visibility query built from the options."""

from __future__ import annotations

from dataclasses import dataclass

from workflows.search_attributes import JOURNEY_PLAN, JOURNEY_STAGE

JOURNEY_WORKFLOW_TYPE = "OrderJourney"


@dataclass(frozen=True)
class Selection:
    """Running journeys, narrowed by plan, stage or one journey id; ``sample`` takes
    that many of them at random (None: all)."""

    plan: str | None = None
    stage: str | None = None
    journey_id: str | None = None
    sample: int | None = None
    # One journey asked for by id is replayed whether it still runs or not.
    running_only: bool = True

    def query(self) -> str:
        clauses = [f"WorkflowType = {_quoted(JOURNEY_WORKFLOW_TYPE)}"]
        if self.journey_id is not None:
            clauses.append(f"WorkflowId = {_quoted(self.journey_id)}")
        elif self.running_only:
            clauses.append("ExecutionStatus = 'Running'")
        if self.plan is not None:
            clauses.append(f"{JOURNEY_PLAN.name} = {_quoted(self.plan)}")
        if self.stage is not None:
            clauses.append(f"{JOURNEY_STAGE.name} = {_quoted(self.stage)}")
        return " AND ".join(clauses)


def _quoted(value: str) -> str:
    """A string literal of the visibility query language (single quotes, escaped)."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"
