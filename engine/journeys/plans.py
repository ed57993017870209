"""The plans this deployment's journeys may pin: the catalogue, checked against the
templates that exist, with the deployment's frequency caps over every plan's."""

from __future__ import annotations

from activities.email.rendering import TEMPLATE_NAMES
from engine.platform.settings import Settings
from workflows.plans.catalogue import load_catalogue, with_frequency_caps
from workflows.plans.model import PinnedPlan


def deployment_plans(settings: Settings) -> dict[str, PinnedPlan]:
    """Keyed by plan id, from ``AFTERCARE_PLANS_DIR`` (the shipped plans unless set)
    and ``AFTERCARE_FREQUENCY_CAPS``; a journey keeps the caps it started with.
    Raises PlanError naming the file and the path in it."""
    plans = load_catalogue(settings.plans_dir, known_templates=TEMPLATE_NAMES)
    return {
        plan_id: with_frequency_caps(pinned, settings.frequency_caps)
        for plan_id, pinned in plans.items()
    }
