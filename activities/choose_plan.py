"""The ``choose_plan`` activity: read the plan catalogue and pick the order's plan.

Reading files is I/O, so it happens here; the journey pins the result (content
and hash) in its history and never reads the files again.
"""

from __future__ import annotations

from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.email.rendering import TEMPLATE_NAMES
from workflows.contracts import CHOOSE_PLAN_ACTIVITY, ChoosePlanInput
from workflows.plans.catalogue import (
    FrequencyCaps,
    PlanError,
    choose_plan,
    load_catalogue,
    with_frequency_caps,
)
from workflows.plans.model import PinnedPlan


def deployment_plans(
    folder: Path | None = None, *, frequency_caps: FrequencyCaps | None = None
) -> dict[str, PinnedPlan]:
    """The plans a journey may pin, keyed by id: the catalogue in ``folder``, validated
    (templates included), with the deployment's caps (AFTERCARE_FREQUENCY_CAPS) over
    every plan's, so a journey keeps the caps it started with. Raises PlanError."""
    plans = load_catalogue(folder, known_templates=TEMPLATE_NAMES)
    return {
        plan_id: with_frequency_caps(pinned, frequency_caps) for plan_id, pinned in plans.items()
    }


class PlanActivities:
    """For journeys started without a plan in their input (the API gives one): the
    journey asks for it in its first workflow task."""

    def __init__(
        self, folder: Path | None = None, *, frequency_caps: FrequencyCaps | None = None
    ) -> None:
        # Loaded once per worker and validated up front: a broken plan file stops
        # the worker at start instead of failing journeys one by one.
        self._plans = deployment_plans(folder, frequency_caps=frequency_caps)

    @activity.defn(name=CHOOSE_PLAN_ACTIVITY)
    async def choose_plan(self, request: ChoosePlanInput) -> PinnedPlan:
        try:
            return choose_plan(request.order, self._plans)
        except PlanError as err:
            raise ApplicationError(str(err), type="NoPlan", non_retryable=True) from err
