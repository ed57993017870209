"""The metrics a journey records itself, through ``workflow.metric_meter()``.

That meter records nothing while a workflow replays, so each figure is recorded
once, when the journey really runs; and recording is no history event, so adding or
changing one needs no patch. The names, help and buckets live here because workflows
import nothing from ``engine``; ``engine.platform.telemetry.catalogue`` lists them
with every other metric, and the worker's Prometheus exporter takes the buckets from
there. Labels are the plan, the step, its category and the triggering event: all
from the pinned plan's fixed vocabulary, never anything of the customer's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from temporalio import workflow

# Seconds: a step is late by seconds (a busy worker) to hours (a deferral, a pause);
# an event's message follows in seconds to minutes.
SLOW_SECONDS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 6 * 3600.0, 86400.0)

# The label of the journey's start among the events that trigger a message.
STARTED = "started"


@dataclass(frozen=True)
class JourneyHistogram:
    name: str
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = SLOW_SECONDS

    def record(self, seconds: float, labels: dict[str, str]) -> None:
        """Record ``seconds`` (never below 0) on the running journey's meter."""
        if set(labels) != set(self.labels):
            raise ValueError(f"{self.name}: labels {sorted(labels)}, expected {self.labels}")
        workflow.metric_meter().create_histogram_float(self.name, self.help, "s").record(
            max(seconds, 0.0), labels
        )


STEP_LATENESS = JourneyHistogram(
    "aftercare_step_lateness_seconds",
    "From a step's due time (after the frequency cap's deferral, if any) to the start "
    "of its send; recorded by the journey, never on replay.",
    ("plan", "step", "category"),
)
EVENT_TO_MESSAGE = JourneyHistogram(
    "aftercare_event_to_message_seconds",
    "From the moment the journey learned of the event that triggered a step (or its "
    "start) to the step's message being sent; only steps sent on the trigger itself "
    "(no delay, time of day, window, quiet hours or deferral).",
    ("plan", "step", "event"),
)


def seconds_between(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()
