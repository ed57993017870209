"""OperationsService requests -> checked domain values; every bad field is named.

A pause names what it holds by id (plan, step, template) or by category; a name no
plan of the deployment knows is refused rather than saved as a pause that holds
nothing while the bad message keeps going out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from aftercare.v1 import journey_pb2
from aftercare.v1 import operations_pb2 as pb
from google.protobuf.timestamp_pb2 import Timestamp

from engine.journeys.operations.bulk import BulkAction
from engine.journeys.operations.filters import PLAN_VERSION_SEPARATOR, JourneyFilter
from engine.journeys.parsing import STAGES
from engine.messaging.pauses import PauseScope, ScopeKind
from engine.platform.rpc.violations import Violations, shown
from workflows.plans.model import Category, PinnedPlan

MAX_REASON = 200
MAX_RATE = 1000
# What a step pause names to hold every replenishment reminder (engine.messaging.pauses).
REPLENISHMENT_STEP = "replenishment"

_PLAN_ID = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_PLAN_LABEL = re.compile(r"[a-z][a-z0-9_-]{0,63}@v[1-9][0-9]{0,8}")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,99}")
# Ids this service or Temporal made: pause ids (hex), batch job ids.
_OPAQUE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
# Timestamps a person could mean: 1970 up to the year 9999.
_LATEST_SECONDS = 253402300799

SCOPE_KINDS: dict[int, ScopeKind] = {
    pb.PAUSE_SCOPE_KIND_PLAN: ScopeKind.PLAN,
    pb.PAUSE_SCOPE_KIND_STEP: ScopeKind.STEP,
    pb.PAUSE_SCOPE_KIND_CATEGORY: ScopeKind.CATEGORY,
    pb.PAUSE_SCOPE_KIND_TEMPLATE: ScopeKind.TEMPLATE,
}


BULK_ACTIONS: dict[int, BulkAction] = {
    pb.BULK_ACTION_CANCEL: BulkAction.CANCEL,
    pb.BULK_ACTION_PAUSE: BulkAction.PAUSE,
    pb.BULK_ACTION_PAUSE_ALL: BulkAction.PAUSE_ALL,
    pb.BULK_ACTION_RESUME: BulkAction.RESUME,
}


@dataclass(frozen=True)
class PauseVocabulary:
    """The plan ids, step ids and templates a pause may name (the deployment's)."""

    plans: frozenset[str]
    steps: frozenset[str]
    templates: frozenset[str]

    @classmethod
    def of(cls, plans: Mapping[str, PinnedPlan], templates: Iterable[str]) -> PauseVocabulary:
        steps = {step.id for pinned in plans.values() for step in pinned.plan.steps}
        used = {step.template for pinned in plans.values() for step in pinned.plan.steps}
        for pinned in plans.values():
            if pinned.plan.replenishment is not None:
                # Its reminders are steps "replenishment:<sku>", all held by this name.
                steps.add(REPLENISHMENT_STEP)
                used.add(pinned.plan.replenishment.template)
        return cls(frozenset(plans), frozenset(steps), frozenset(templates) | frozenset(used))


@dataclass(frozen=True)
class PauseWanted:
    scope: PauseScope
    include_transactional: bool
    reason: str


@dataclass(frozen=True)
class BulkWanted:
    journeys: JourneyFilter
    action: BulkAction
    reason: str
    dry_run: bool
    # None: Temporal's default.
    max_operations_per_second: int | None


def pause_request(
    request: pb.PauseSendingRequest, vocabulary: PauseVocabulary | None
) -> PauseWanted:
    v = Violations()
    scope = _scope(v, request, vocabulary)
    reason = v.text("reason", request.reason, max_length=MAX_REASON)
    v.raise_if_any()
    assert scope is not None  # no violation means a scope was made
    return PauseWanted(scope, request.include_transactional, reason)


def _scope(
    v: Violations, request: pb.PauseSendingRequest, vocabulary: PauseVocabulary | None
) -> PauseScope | None:
    if not request.HasField("scope"):
        v.add("scope", "is required")
        return None
    kind = SCOPE_KINDS.get(request.scope.kind)
    if kind is None:
        v.add("scope.kind", "must be plan, step, category or template")
        return None
    value = request.scope.value
    path = "scope.value"
    if not value:
        v.add(path, "is required")
        return None
    if kind is ScopeKind.CATEGORY:
        if value not in Category._value2member_map_:
            v.add(path, f"must be one of {', '.join(Category)}, got {shown(value)}")
            return None
    elif kind is ScopeKind.PLAN:
        if not _PLAN_ID.fullmatch(value):
            v.add(path, "must be a plan id: a-z 0-9 _ - starting with a letter")
            return None
        if vocabulary is not None and value not in vocabulary.plans:
            v.add(path, f"no plan of this deployment is called {shown(value)}")
            return None
    else:
        if not _NAME.fullmatch(value):
            v.add(path, f"must be a {kind} name: a-z 0-9 _ starting with a letter")
            return None
        known = None
        if vocabulary is not None:
            known = vocabulary.steps if kind is ScopeKind.STEP else vocabulary.templates
        if known is not None and value not in known:
            v.add(path, f"no plan of this deployment has a {kind} {shown(value)}")
            return None
    return PauseScope(kind=kind, value=value)


def pause_id(value: str) -> str:
    v = Violations()
    _opaque_id(v, "pause_id", value)
    v.raise_if_any()
    return value


def job_id(value: str) -> str:
    v = Violations()
    _opaque_id(v, "job_id", value)
    v.raise_if_any()
    return value


def _opaque_id(v: Violations, path: str, value: str) -> None:
    if not value:
        v.add(path, "is required")
    elif not _OPAQUE_ID.fullmatch(value):
        v.add(path, "must be 1-128 characters of A-Z a-z 0-9 . _ : - as this API issued it")


def count_request(request: pb.CountJourneysRequest) -> JourneyFilter:
    v = Violations()
    journeys = journey_filter(v, "filter", request.filter)
    v.raise_if_any()
    return journeys


def bulk_request(request: pb.StartBulkOperationRequest) -> BulkWanted:
    v = Violations()
    journeys = journey_filter(v, "filter", request.filter)
    # Judged on what was sent: a field set to a bad value is named on its own.
    if not request.filter.ListFields():
        v.add(
            "filter",
            "must select something: set plan, stage, customer_id, started_after, "
            "started_before or paused (count every journey with CountJourneys)",
        )
    action = BULK_ACTIONS.get(request.action)
    if action is None:
        v.add("action", "must be cancel, pause, pause_all or resume")
    reason = v.text("reason", request.reason, required=not request.dry_run, max_length=MAX_REASON)
    rate = request.max_operations_per_second
    if not 0 <= rate <= MAX_RATE:
        v.add("max_operations_per_second", f"must be between 0 and {MAX_RATE}")
    v.raise_if_any()
    assert action is not None
    return BulkWanted(journeys, action, reason, request.dry_run, rate or None)


def journey_filter(v: Violations, path: str, message: pb.JourneyFilter) -> JourneyFilter:
    plan = message.plan
    if plan and not (_PLAN_ID.fullmatch(plan) or _PLAN_LABEL.fullmatch(plan)):
        v.add(
            f"{path}.plan",
            f"must be a plan id (default) or a pinned version (default{PLAN_VERSION_SEPARATOR}1)",
        )
    stage = None
    if message.stage != journey_pb2.JOURNEY_STAGE_UNSPECIFIED:
        stage = STAGES.get(message.stage)
        if stage is None:
            v.add(f"{path}.stage", f"must be a known journey stage, got {message.stage}")
    customer_id = message.customer_id
    if customer_id:
        v.customer_id(f"{path}.customer_id", customer_id)
    after = _instant(v, f"{path}.started_after", message, "started_after")
    before = _instant(v, f"{path}.started_before", message, "started_before")
    if after is not None and before is not None and after >= before:
        v.add(f"{path}.started_before", "must be later than started_after")
    paused = message.paused if message.HasField("paused") else None
    return JourneyFilter(
        plan=plan,
        stage=stage,
        customer_id=customer_id,
        started_after=after,
        started_before=before,
        paused=paused,
    )


def _instant(v: Violations, path: str, message: pb.JourneyFilter, name: str) -> datetime | None:
    if not message.HasField(name):  # type: ignore[arg-type]
        return None
    stamp: Timestamp = getattr(message, name)
    if not 0 <= stamp.seconds <= _LATEST_SECONDS or not 0 <= stamp.nanos < 1_000_000_000:
        v.add(path, "must be a valid instant between 1970 and 9999")
        return None
    return stamp.ToDatetime(tzinfo=UTC)
