"""Experiments on plan steps: which arm a customer is in, and what that arm sends.

**Assignment** is a pure function of the customer's id and the experiment's id
(:func:`assign`): SHA-256 of both gives a number in [0, 1); the first ``holdout``
of that range is the holdout, the rest is split among the variants by weight, in
the order the plan lists them. So a customer is in the same arm in every journey
(a repeat order, a journey on the next plan version), without any lookup, and the
journey pins the arm in its state the first time it asks (``JourneyState.
experiments``), so a plan edit that changes the weights never moves a customer who
was already assigned. hashlib is deterministic, so this is safe in workflow code.

**What travels to the send**: an :class:`ExperimentArm`, the arm plus the content
of every arm, so the send activity can switch to a winner an operator decided
after the journey fell asleep (``engine.messaging.experiment_decisions``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from workflows.plans.model import HOLDOUT_VARIANT, Experiment, Step

# 2**64: the hash's first eight bytes, as a fraction of this, are the customer's point.
_SCALE = float(1 << 64)


# The key of a subject written for every language.
ANY_LOCALE = "*"


@dataclass(frozen=True)
class ArmContent:
    """What one arm sends: its template and, for email, subject lines of its own by
    locale (none for a locale: the template's subject)."""

    name: str
    template: str
    subjects: dict[str, str] = field(default_factory=dict)

    def subject_for(self, locale: str) -> str:
        """The subject for a customer writing ``locale`` ("de-AT" takes "de"), or ""
        to keep the template's."""
        language = locale.split("-")[0].split("_")[0].lower()
        for key in (locale, language, ANY_LOCALE):
            if key in self.subjects:
                return self.subjects[key]
        return ""


@dataclass(frozen=True)
class ExperimentArm:
    """A send's place in an experiment: the experiment, the customer's arm
    (``holdout`` for the holdout), and every arm's content."""

    experiment: str
    variant: str
    arms: tuple[ArmContent, ...] = ()

    @property
    def holdout(self) -> bool:
        return self.variant == HOLDOUT_VARIANT

    def content(self, name: str) -> ArmContent | None:
        return next((arm for arm in self.arms if arm.name == name), None)


def point_of(customer_id: str, experiment_id: str) -> float:
    """The customer's point in [0, 1) for this experiment."""
    digest = hashlib.sha256(f"{experiment_id}\x1f{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def assign(customer_id: str, experiment: Experiment) -> str:
    """The arm (a variant's name, or ``holdout``) of this customer in ``experiment``."""
    point = point_of(customer_id, experiment.id)
    if point < experiment.holdout:
        return HOLDOUT_VARIANT
    # Stretch the rest of the range over the variants, by weight.
    rest = (point - experiment.holdout) / (1.0 - experiment.holdout)
    total = sum(variant.weight for variant in experiment.variants)
    reached = 0.0
    for variant in experiment.variants:
        reached += variant.weight / total
        if rest < reached:
            return variant.name
    return experiment.variants[-1].name  # rounding at the very top of the range


def arm_for(step: Step, experiment: Experiment, variant: str) -> ExperimentArm:
    """The arm ``variant`` of ``step``'s experiment, with every arm's content."""
    arms = tuple(
        ArmContent(
            name=option.name,
            template=option.template or step.template,
            subjects=_subjects(option.subject),
        )
        for option in experiment.variants
    )
    return ExperimentArm(experiment=experiment.id, variant=variant, arms=arms)


def _subjects(subject: str | dict[str, str] | None) -> dict[str, str]:
    if subject is None:
        return {}
    if isinstance(subject, str):
        return {ANY_LOCALE: subject}
    return dict(subject)
