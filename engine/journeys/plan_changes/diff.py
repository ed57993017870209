"""``aftercare plans diff OLD NEW``: what changes between two versions of a plan.

Steps are matched by id. A step is *added* or *removed*; one present in both is
*moved* when its place among the shared steps changed or it hangs off another
trigger (event, step), and it has *timing* changes (delay, local time, window, stale
limit) and *channel* changes; anything else that differs (template, category,
conditions) is listed as *other*. Plan-wide settings that move messages in time
(quiet hours, linger, expiry, replenishment, frequency caps) are compared too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from workflows.plans.model import Plan, Step


@dataclass(frozen=True)
class Change:
    """One difference: ``kind`` is added, removed, moved, timing, channels, other or
    plan; ``subject`` the step id (or the plan setting)."""

    kind: str
    subject: str
    detail: str


@dataclass
class PlanDiff:
    old: str
    new: str
    changes: list[Change] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Change]:
        return [change for change in self.changes if change.kind == kind]


def _text(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, timedelta):
        return duration_text(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_text(item) for item in value) + "]"
    if hasattr(value, "start") and hasattr(value, "end"):
        return f"{value.start}-{value.end}"
    return str(getattr(value, "value", value))


def duration_text(value: timedelta) -> str:
    """A span as people read it: 1d2h, 30m, 0."""
    seconds = int(value.total_seconds())
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    parts = [
        f"{days}d" if days else "",
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
    ]
    return "".join(parts) or "0"


def _trigger(step: Step) -> str:
    trigger = step.trigger
    anchor = {"event": trigger.event, "step": trigger.step}.get(str(trigger.on.value))
    return f"{trigger.on.value}" + (f" {_text(anchor)}" if anchor is not None else "")


# What of a step decides when its message goes, and on what.
_TIMING: dict[str, Callable[[Step], Any]] = {
    "delay": lambda step: step.trigger.delay,
    "at": lambda step: step.at,
    "window": lambda step: step.window,
    "stale_after": lambda step: step.stale_after,
}
_OTHER: dict[str, Callable[[Step], Any]] = {
    "template": lambda step: step.template,
    "category": lambda step: step.category,
    "when": lambda step: step.when,
    "unless": lambda step: step.unless,
    "hook": lambda step: step.hook,
    "experiment": lambda step: step.experiment,
}
_PLAN: dict[str, Callable[[Plan], Any]] = {
    "quiet_hours": lambda plan: plan.quiet_hours,
    "linger": lambda plan: plan.linger,
    "expire_after": lambda plan: plan.expire_after,
    "replenishment": lambda plan: plan.replenishment,
    "frequency_caps": lambda plan: plan.frequency_caps,
    "applies_when": lambda plan: plan.applies_when,
}


def diff_plans(old: Plan, new: Plan) -> PlanDiff:
    result = PlanDiff(old=f"{old.id} v{old.version}", new=f"{new.id} v{new.version}")
    result.changes = list(_changes(old, new))
    return result


def _changes(old: Plan, new: Plan) -> Iterator[Change]:
    before = {step.id: step for step in old.steps}
    after = {step.id: step for step in new.steps}
    for step in new.steps:
        if step.id not in before:
            yield Change("added", step.id, _summary(step))
    for step in old.steps:
        if step.id not in after:
            yield Change("removed", step.id, _summary(step))
    shared_before = [step.id for step in old.steps if step.id in after]
    shared_after = [step.id for step in new.steps if step.id in before]
    for step_id in shared_after:
        was, now = before[step_id], after[step_id]
        if _trigger(was) != _trigger(now):
            yield Change("moved", step_id, f"trigger {_trigger(was)} -> {_trigger(now)}")
        elif shared_before.index(step_id) != shared_after.index(step_id):
            yield Change(
                "moved",
                step_id,
                f"position {shared_before.index(step_id) + 1} -> {shared_after.index(step_id) + 1}",
            )
        for name, read in _TIMING.items():
            if read(was) != read(now):
                yield Change("timing", step_id, f"{name} {_text(read(was))} -> {_text(read(now))}")
        if was.channels != now.channels:
            yield Change("channels", step_id, f"{_text(was.channels)} -> {_text(now.channels)}")
        for name, read in _OTHER.items():
            if read(was) != read(now):
                yield Change("other", step_id, f"{name} {_text(read(was))} -> {_text(read(now))}")
    for name, setting in _PLAN.items():
        if setting(old) != setting(new):
            yield Change("plan", name, f"{_text(setting(old))} -> {_text(setting(new))}")


def _summary(step: Step) -> str:
    timing = f"{_trigger(step)} +{_text(step.trigger.delay)}"
    if step.at:
        timing += f" at {step.at}"
    return f"{step.template} by {_text(step.channels)}, {timing}"


_TITLES = {
    "added": "+ added",
    "removed": "- removed",
    "moved": "~ moved",
    "timing": "~ timing",
    "channels": "~ channels",
    "other": "~ other",
    "plan": "~ plan",
}


def render_diff(result: PlanDiff) -> str:
    lines = [f"plan {result.old} -> {result.new}"]
    if not result.changes:
        lines.append("no changes to steps, timing or channels")
    for change in result.changes:
        lines.append(f"{_TITLES[change.kind]:<11} {change.subject}: {change.detail}")
    return "\n".join(lines)
