"""The plan catalogue: read journey plans from YAML, check them, pick one for an order.

Each ``*.yaml`` file under ``workflows/plans/`` holds one plan. Loading it:

1. parses the YAML with a *safe* loader that follows YAML 1.2 for plain scalars:
   only ``true``/``false`` are booleans (so ``on: start`` keeps its ``on`` key, which
   YAML 1.1 would turn into ``True``), numbers are plain decimals (so ``at: 10:00``
   stays a string instead of the sexagesimal 600), and dates stay strings; a key
   written twice in one mapping is an error rather than silently losing one value;
2. validates the data against :class:`workflows.plans.model.Plan` with pydantic in strict
   JSON mode (no ``"3"`` for an int, durations only as ISO 8601 strings);
3. checks what types cannot express (unique step ids, trigger references, times of
   day, score ranges, channels, ...).

Every problem is reported as a :class:`PlanError` naming the file and the path in
it (``steps[3].trigger.event``). A valid plan is pinned with a hash of its
*validated* content, so reformatting the YAML or editing comments keeps the hash
while any change to what the journey does changes it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from workflows.orders import Order
from workflows.plans.conditions import order_matches
from workflows.plans.experiment_rules import check_attribution, check_experiment
from workflows.plans.model import (
    CappedCategory,
    Conditions,
    FrequencyCap,
    PinnedPlan,
    Plan,
    Replenishment,
    TimeWindow,
    TriggerKind,
)
from workflows.vocabulary import Channel, EventType

# Per category, the caps that replace a plan's (see with_frequency_caps).
FrequencyCaps = dict[CappedCategory, tuple[FrequencyCap, ...]]

FREQUENCY_CAPS_SETTING = "AFTERCARE_FREQUENCY_CAPS"

DEFAULT_PLAN_FOLDER = Path(__file__).resolve().parent
PLAN_SUFFIXES = (".yaml", ".yml")

MIN_SCORE, MAX_SCORE = 0, 10
MAX_REMINDERS = 24

_PLAN_ID = re.compile(r"[a-z][a-z0-9_-]*")
# Step ids end up in idempotency keys and template names in file names
# (see activities.email.rendering): plain identifiers only.
_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]*")
_TIME_OF_DAY = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]")
_COUNTRY = re.compile(r"[A-Z]{2}")

_ADAPTER = TypeAdapter(Plan)
_DURATION = TypeAdapter(timedelta)
_FREQUENCY_CAPS = TypeAdapter(FrequencyCaps)

Problem = tuple[str, str]  # (path inside the file, what is wrong)


class PlanError(Exception):
    """A plan file (or the catalogue) is unusable, or no plan fits an order.

    ``file`` and ``problems`` are set for problems in a file; ``path`` is the
    location of the first problem (``steps[3].trigger.event``).
    """

    def __init__(self, message: str, *, file: str = "", problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.file = file
        self.problems: tuple[Problem, ...] = tuple(problems)

    @property
    def path(self) -> str:
        return self.problems[0][0] if self.problems else ""

    @classmethod
    def in_file(cls, file: str, problems: Sequence[Problem]) -> PlanError:
        lines = [f"{path}: {what}" if path else what for path, what in problems]
        if len(lines) == 1:
            message = f"{file}: {lines[0]}"
        else:
            message = f"{file}: {len(lines)} problems:\n" + "\n".join(f"  {x}" for x in lines)
        return cls(message, file=file, problems=problems)


# --- YAML -----------------------------------------------------------------------------


class _PlanYamlLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 plain scalars and duplicate keys rejected."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"the key {key_node.value!r} appears more than once",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# Keep only null and merge (`<<`) from the YAML 1.1 resolvers; add YAML 1.2 core
# booleans, integers and floats. Everything else plain is a string.
_PlanYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag.endswith((":null", ":merge"))]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_PlanYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_PlanYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)
_PlanYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _read_yaml(text: str, file: str) -> object:
    try:
        # A SafeLoader subclass: as safe as yaml.safe_load.
        return yaml.load(text, Loader=_PlanYamlLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = ": ".join(x for x in (exc.context, exc.problem) if x) or "unreadable"
        raise PlanError.in_file(file, [(where, f"invalid YAML: {what}")]) from exc
    except yaml.YAMLError as exc:
        raise PlanError.in_file(file, [("", f"invalid YAML: {exc}")]) from exc


def _plain_data_problems(data: object, path: str) -> list[Problem]:
    """What in the loaded YAML has no JSON equivalent (explicit tags, odd keys)."""
    if data is None or isinstance(data, str | bool | int | float):
        return []
    if isinstance(data, list):
        return [p for i, x in enumerate(data) for p in _plain_data_problems(x, f"{path}[{i}]")]
    if isinstance(data, dict):
        problems: list[Problem] = []
        for key, value in data.items():
            if not isinstance(key, str):
                problems.append((path, f"keys must be names, not {key!r}"))
                continue
            problems.extend(_plain_data_problems(value, _join(path, key)))
        return problems
    return [(path, f"unsupported YAML value of type {type(data).__name__}")]


# --- paths ----------------------------------------------------------------------------


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _loc_path(loc: Iterable[str | int]) -> str:
    path = ""
    for part in loc:
        path = _join(path, part)
    return path


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _iso(duration: timedelta) -> str:
    return str(_DURATION.dump_python(duration, mode="json"))


def _validation_problems(error: ValidationError) -> list[Problem]:
    problems: list[Problem] = []
    for detail in error.errors(include_url=False):
        message = detail["msg"]
        if detail["type"] == "unexpected_keyword_argument":
            message = "unknown key"
        elif detail["type"] != "missing":
            message = f"{message} (got {_short(detail['input'])})"
        problems.append((_loc_path(detail["loc"]), message))
    return problems


# --- semantic checks ------------------------------------------------------------------


def _check_time(value: str | None, path: str) -> list[Problem]:
    if value is None or _TIME_OF_DAY.fullmatch(value):
        return []
    return [(path, f"expected a local time of day as HH:MM (00:00-23:59), got {value!r}")]


def _check_window(window: TimeWindow | None, path: str) -> list[Problem]:
    if window is None:
        return []
    problems = _check_time(window.start, f"{path}.start") + _check_time(window.end, f"{path}.end")
    if not problems and window.start == window.end:
        problems.append((path, f"start and end are both {window.start}: the window is empty"))
    return problems


def _check_channels(channels: Sequence[Channel], path: str) -> list[Problem]:
    if not channels:
        return [(path, "at least one channel is needed")]
    problems: list[Problem] = []
    seen: set[Channel] = set()
    for i, channel in enumerate(channels):
        if channel in seen:
            problems.append((f"{path}[{i}]", f"channel {channel.value!r} is listed twice"))
        seen.add(channel)
    return problems


def _check_template(
    template: str, path: str, known_templates: Collection[str] | None
) -> list[Problem]:
    if not _IDENTIFIER.fullmatch(template):
        return [(path, f"template names are plain identifiers [a-z][a-z0-9_]*, got {template!r}")]
    if known_templates is not None and template not in known_templates:
        known = ", ".join(sorted(known_templates)) or "none"
        return [(path, f"unknown template {template!r} (known: {known})")]
    return []


def _check_conditions(conditions: Conditions, path: str, *, scores_allowed: bool) -> list[Problem]:
    problems: list[Problem] = []
    low, high = conditions.min_order_value_minor, conditions.max_order_value_minor
    for name, value in (("min_order_value_minor", low), ("max_order_value_minor", high)):
        if value is not None and value < 0:
            problems.append((f"{path}.{name}", f"must not be negative, got {value}"))
    if low is not None and high is not None and low > high:
        problems.append((path, f"min_order_value_minor {low} is above the max, {high}"))
    for i, category in enumerate(conditions.categories):
        if not category.strip():
            problems.append((f"{path}.categories[{i}]", "empty category"))
    for i, country in enumerate(conditions.countries):
        if not _COUNTRY.fullmatch(country):
            problems.append(
                (f"{path}.countries[{i}]", f"expected an ISO 3166 code like 'DE', got {country!r}")
            )
    low, high = conditions.min_score, conditions.max_score
    if (low is not None or high is not None) and not scores_allowed:
        name = "min_score" if low is not None else "max_score"
        problems.append(
            (f"{path}.{name}", "score conditions only apply to steps triggered by a feedback event")
        )
        return problems
    for name, value in (("min_score", low), ("max_score", high)):
        if value is not None and not MIN_SCORE <= value <= MAX_SCORE:
            problems.append(
                (f"{path}.{name}", f"scores run from {MIN_SCORE} to {MAX_SCORE}, got {value}")
            )
    if low is not None and high is not None and low > high:
        problems.append((path, f"min_score {low} is above max_score {high}"))
    return problems


def _check_duration(value: timedelta | None, path: str, *, positive: bool = False) -> list[Problem]:
    if value is None:
        return []
    if positive and value <= timedelta(0):
        return [(path, f"must be a positive duration, got {_iso(value)}")]
    if value < timedelta(0):
        return [(path, f"must not be negative, got {_iso(value)}")]
    return []


def _check_triggers(plan: Plan) -> list[Problem]:
    problems: list[Problem] = []
    first_index: dict[str, int] = {}
    for i, step in enumerate(plan.steps):
        if step.id in first_index:
            also = f"steps[{first_index[step.id]}]"
            problems.append((f"steps[{i}].id", f"duplicate step id {step.id!r} (also {also})"))
        else:
            first_index[step.id] = i

    for i, step in enumerate(plan.steps):
        trigger, path = step.trigger, f"steps[{i}].trigger"
        kind = f"on: {trigger.on.value}"
        needs_event = trigger.on is TriggerKind.EVENT
        needs_step = trigger.on is TriggerKind.STEP
        if needs_event and trigger.event is None:
            problems.append((f"{path}.event", "an event trigger needs an event"))
        if not needs_event and trigger.event is not None:
            problems.append((f"{path}.event", f"only event triggers name an event, not {kind}"))
        if needs_step and trigger.step is None:
            problems.append((f"{path}.step", "a step trigger needs a step"))
        if not needs_step and trigger.step is not None:
            problems.append((f"{path}.step", f"only step triggers name a step, not {kind}"))
        if needs_step and trigger.step is not None:
            if trigger.step == step.id:
                problems.append((f"{path}.step", "a step cannot be triggered by itself"))
            elif trigger.step not in first_index:
                problems.append((f"{path}.step", f"no step {trigger.step!r} in this plan"))
        problems += _check_duration(trigger.delay, f"{path}.delay")

    # Each step has at most one parent, so a cycle is found by walking up from a step.
    by_id = {step.id: step for step in plan.steps}
    in_reported_cycle: set[str] = set()
    for i, step in enumerate(plan.steps):
        if step.trigger.step == step.id or step.id in in_reported_cycle:
            continue
        chain, current = [step.id], step
        while current.trigger.on is TriggerKind.STEP and current.trigger.step in by_id:
            parent = current.trigger.step
            if parent == step.id:
                cycle = " -> ".join([step.id, *reversed(chain)])
                problems.append((f"steps[{i}].trigger.step", f"steps trigger each other: {cycle}"))
                in_reported_cycle.update(chain)
                break
            if parent in chain:  # a cycle further up, reported from one of its own steps
                break
            chain.append(parent)
            current = by_id[parent]
    return problems


def _check_replenishment(
    replenishment: Replenishment | None, known_templates: Collection[str] | None
) -> list[Problem]:
    if replenishment is None:
        return []
    path = "replenishment"
    problems = _check_template(replenishment.template, f"{path}.template", known_templates)
    problems += _check_channels(replenishment.channels, f"{path}.channels")
    problems += _check_duration(replenishment.lead_time, f"{path}.lead_time", positive=True)
    problems += _check_time(replenishment.at, f"{path}.at")
    if not 1 <= replenishment.max_reminders <= MAX_REMINDERS:
        problems.append(
            (
                f"{path}.max_reminders",
                f"must be between 1 and {MAX_REMINDERS}, got {replenishment.max_reminders}",
            )
        )
    return problems


def _plan_problems(plan: Plan, known_templates: Collection[str] | None) -> list[Problem]:
    problems: list[Problem] = []
    if not _PLAN_ID.fullmatch(plan.id):
        problems.append(("id", f"plan ids are plain identifiers [a-z][a-z0-9_-]*, got {plan.id!r}"))
    if plan.version < 1:
        problems.append(("version", f"versions start at 1, got {plan.version}"))
    if not plan.description.strip():
        problems.append(("description", "say what the plan is for"))
    if not plan.steps:
        problems.append(("steps", "a plan needs at least one step"))
    problems += _check_conditions(plan.applies_when, "applies_when", scores_allowed=False)
    problems += _check_window(plan.quiet_hours, "quiet_hours")
    problems += _check_duration(plan.linger, "linger")
    problems += _check_duration(plan.expire_after, "expire_after", positive=True)

    for i, step in enumerate(plan.steps):
        path = f"steps[{i}]"
        if not _IDENTIFIER.fullmatch(step.id):
            problems.append(
                (f"{path}.id", f"step ids are plain identifiers [a-z][a-z0-9_]*, got {step.id!r}")
            )
        problems += _check_template(step.template, f"{path}.template", known_templates)
        problems += _check_channels(step.channels, f"{path}.channels")
        problems += _check_time(step.at, f"{path}.at")
        problems += _check_window(step.window, f"{path}.window")
        on_feedback = (
            step.trigger.on is TriggerKind.EVENT and step.trigger.event is EventType.FEEDBACK
        )
        problems += _check_conditions(step.when, f"{path}.when", scores_allowed=on_feedback)
        problems += _check_duration(step.stale_after, f"{path}.stale_after", positive=True)
        if step.experiment is not None:
            problems += check_experiment(
                step.experiment,
                step.category,
                f"{path}.experiment",
                lambda name, where: _check_template(name, where, known_templates),
            )

    problems += _check_triggers(plan)
    problems += _check_replenishment(plan.replenishment, known_templates)
    problems += check_attribution(plan.attribution, "attribution")
    return problems


# --- public API -----------------------------------------------------------------------


def content_hash(plan: Plan) -> str:
    """sha256 (hex) of the plan's canonical JSON: same meaning, same hash."""
    canonical = json.dumps(
        _ADAPTER.dump_python(plan, mode="json"),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def load_plan(path: Path, *, known_templates: Collection[str] | None = None) -> PinnedPlan:
    """Read, validate and pin one plan file.

    ``known_templates``: the template names that exist; ``None`` skips that check.
    """
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError.in_file(file, [("", f"cannot read the file: {exc}")]) from exc

    data = _read_yaml(text, file)
    if not isinstance(data, dict):
        found = "nothing" if data is None else type(data).__name__
        raise PlanError.in_file(file, [("", f"expected a mapping of plan fields, found {found}")])
    problems = _plain_data_problems(data, "")
    if problems:
        raise PlanError.in_file(file, problems)

    try:
        plan = _ADAPTER.validate_json(json.dumps(data), strict=True)
    except ValidationError as exc:
        raise PlanError.in_file(file, _validation_problems(exc)) from exc

    problems = _plan_problems(plan, known_templates)
    if problems:
        raise PlanError.in_file(file, problems)
    return PinnedPlan(plan=plan, content_hash=content_hash(plan), source=path.name)


def load_catalogue(
    folder: Path | None = None, *, known_templates: Collection[str] | None = None
) -> dict[str, PinnedPlan]:
    """Every plan file in ``folder`` (``*.yaml``, ``*.yml``; by default
    :data:`DEFAULT_PLAN_FOLDER`, ``workflows/plans``), keyed by plan id."""
    folder = DEFAULT_PLAN_FOLDER if folder is None else folder
    if not folder.is_dir():
        raise PlanError(f"{folder}: no such plan folder", file=str(folder))
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in PLAN_SUFFIXES)
    if not files:
        raise PlanError(f"{folder}: no plan files (*.yaml) in the folder", file=str(folder))
    plans: dict[str, PinnedPlan] = {}
    files_by_id: dict[str, Path] = {}
    for file in files:
        pinned = load_plan(file, known_templates=known_templates)
        plan_id = pinned.plan.id
        if plan_id in plans:
            raise PlanError.in_file(
                str(file), [("id", f"plan id {plan_id!r} is also used by {files_by_id[plan_id]}")]
            )
        plans[plan_id] = pinned
        files_by_id[plan_id] = file
    return plans


def choose_plan(order: Order, plans: Mapping[str, PinnedPlan]) -> PinnedPlan:
    """The plan for ``order``: of the plans whose ``applies_when`` holds, the one with
    the highest priority; equal priorities go to the plan id that sorts first."""
    matching = [p for p in plans.values() if order_matches(p.plan.applies_when, order)]
    if not matching:
        tried = ", ".join(sorted(plans)) or "none"
        raise PlanError(f"no plan applies to order {order.order_id} (plans: {tried})")
    return min(matching, key=lambda pinned: (-pinned.plan.priority, pinned.plan.id))


# --- deployment override of the frequency caps ------------------------------------------


def parse_frequency_caps(value: object) -> FrequencyCaps | None:
    """Read the ``AFTERCARE_FREQUENCY_CAPS`` setting: JSON (or an already-parsed
    mapping) such as ``{"marketing": [{"max": 1, "days": 3}]}``; empty means unset.

    Raises ValueError naming the setting and the path of every problem in it.
    """
    if value is None:
        return None
    try:
        if isinstance(value, str | bytes):
            if not value.strip():
                return None
            # Strict JSON: "1" is not a number of messages.
            return _FREQUENCY_CAPS.validate_json(value, strict=True)
        return _FREQUENCY_CAPS.validate_python(value)
    except ValidationError as err:
        problems = _validation_problems(err)
        # pydantic places a bad dict key at "<key>.[key]": the key itself is the path.
        lines = [
            f"{path.removesuffix('.[key]')}: {what}" if path else what for path, what in problems
        ]
        example = '{"marketing": [{"max": 1, "days": 3}]}'
        raise ValueError(
            f"{FREQUENCY_CAPS_SETTING}: " + "; ".join(lines) + f" (expected JSON like {example})"
        ) from None


def with_frequency_caps(pinned: PinnedPlan, override: FrequencyCaps | None) -> PinnedPlan:
    """``pinned`` with the override's caps in place of its own, category by category:
    a category the override names takes exactly the override's caps (an empty list:
    not capped at all); the others keep the plan's. The hash is taken again, since
    the journey's content changes (what it pins is what it runs)."""
    if not override:
        return pinned
    merged: FrequencyCaps = {**pinned.plan.frequency_caps, **override}
    caps: FrequencyCaps = {category: limits for category, limits in merged.items() if limits}
    plan = dataclasses.replace(pinned.plan, frequency_caps=caps)
    return PinnedPlan(plan=plan, content_hash=content_hash(plan), source=pinned.source)
