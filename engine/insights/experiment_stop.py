"""Stopping an experiment with a winner (``ReportsService.StopExperiment``,
``aftercare experiments stop``): checked against the deployment's plans, then
recorded as a decision the send activity applies (engine.messaging.experiment_decisions).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import grpc
from aftercare.v1 import reports_pb2 as pb
from google.protobuf.timestamp_pb2 import Timestamp

from engine.messaging.experiment_decisions import AlreadyDecided, ExperimentDecisions
from engine.platform.rpc.answers import Refusal
from engine.platform.rpc.caller import calling_api_key
from engine.platform.rpc.violations import FieldViolation, InvalidRequest
from workflows.plans.model import HOLDOUT_VARIANT, PinnedPlan

_NAME = re.compile(r"[a-z][a-z0-9_-]{0,99}")


class UnknownExperiment(LookupError):
    """No deployed plan has this experiment, or it has no such arm."""


def experiment_arms(plans: Mapping[str, PinnedPlan]) -> dict[str, frozenset[str]]:
    """Every experiment of the deployed plans, with the arms it can be stopped with."""
    arms: dict[str, set[str]] = {}
    for pinned in plans.values():
        for step in pinned.plan.steps:
            experiment = step.experiment
            if experiment is None:
                continue
            names = arms.setdefault(experiment.id, set())
            names.update(variant.name for variant in experiment.variants)
            if experiment.holdout > 0:
                names.add(HOLDOUT_VARIANT)
    return {experiment: frozenset(names) for experiment, names in arms.items()}


def stop_refusal(error: Exception) -> Refusal | None:
    """The status of the refusals of :class:`ExperimentStopper`."""
    if isinstance(error, UnknownExperiment):
        return grpc.StatusCode.NOT_FOUND, str(error)
    if isinstance(error, AlreadyDecided):
        return grpc.StatusCode.ALREADY_EXISTS, str(error)
    return None


class ExperimentStopper:
    def __init__(
        self,
        decisions: ExperimentDecisions,
        arms: Callable[[], Mapping[str, frozenset[str]]],
    ) -> None:
        self._decisions = decisions
        self._arms = arms

    async def stop(self, request: pb.StopExperimentRequest) -> pb.StopExperimentResponse:
        """Raises InvalidRequest, UnknownExperiment or AlreadyDecided (see the proto)."""
        violations = [
            FieldViolation(name, "an identifier [a-z][a-z0-9_-]*, at most 100 characters")
            for name, value in (("experiment", request.experiment), ("winner", request.winner))
            if not _NAME.fullmatch(value)
        ]
        if violations:
            raise InvalidRequest(violations)
        arms = self._arms().get(request.experiment)
        if arms is None:
            raise UnknownExperiment(f"no deployed plan has experiment {request.experiment!r}")
        if request.winner not in arms:
            known = ", ".join(sorted(arms))
            raise UnknownExperiment(
                f"experiment {request.experiment!r} has no arm {request.winner!r} (arms: {known})"
            )
        decision = await self._decisions.decide(
            request.experiment, request.winner, decided_by=calling_api_key()
        )
        decided_at = Timestamp()
        decided_at.FromDatetime(decision.decided_at)
        return pb.StopExperimentResponse(
            experiment=decision.experiment,
            winner=decision.winner,
            decided_at=decided_at,
            decided_by=decision.decided_by or "",
        )
