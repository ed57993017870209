"""The ``choose_plan`` activity, for journeys started without a plan in their input
(the API gives one): the journey asks for it in its first workflow task, and pins
the answer (content and hash) in its history."""

from __future__ import annotations

from collections.abc import Mapping

from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.contracts import CHOOSE_PLAN_ACTIVITY, ChoosePlanInput
from workflows.plans.catalogue import PlanError, choose_plan
from workflows.plans.model import PinnedPlan


class PlanActivities:
    def __init__(self, plans: Mapping[str, PinnedPlan]) -> None:
        # Loaded once per worker and validated up front: a broken plan file stops
        # the worker at start instead of failing journeys one by one.
        self._plans = plans

    @activity.defn(name=CHOOSE_PLAN_ACTIVITY)
    async def choose_plan(self, request: ChoosePlanInput) -> PinnedPlan:
        try:
            return choose_plan(request.order, self._plans)
        except PlanError as err:
            raise ApplicationError(str(err), type="NoPlan", non_retryable=True) from err
