"""The plan report as plain data: what every output (table, CSV, JSON, page, gRPC)
is made from, so they all show the same numbers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


class InvalidReportRequest(ValueError):
    """A report asked for with a bad value; ``field`` names it (``plan``, ``since``,
    ``until``), ``problem`` says what is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class UnknownPlan(LookupError):
    def __init__(self, plan: str) -> None:
        super().__init__(
            f"no plan {plan!r}: the deployment has none and no message was sent on one"
        )
        self.plan = plan


@dataclass(frozen=True)
class Period:
    """``since`` inclusive, ``until`` exclusive; both aware (UTC)."""

    since: datetime
    until: datetime


@dataclass(frozen=True)
class StepFigures:
    """One step of a plan on one channel (see docs/reports.md for each figure)."""

    step: str
    channel: str
    scheduled: int = 0
    sent: int = 0
    delivered: int = 0
    clicked: int = 0
    converted: int = 0
    # Attributed revenue in minor units, by ISO 4217 currency.
    revenue: dict[str, int] = field(default_factory=dict)
    unsubscribes: int = 0
    complaints: int = 0


@dataclass(frozen=True)
class Uplift:
    """An arm against the baseline: difference of conversion rates with its
    confidence interval and the p-value of "no difference"."""

    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    significant: bool


@dataclass(frozen=True)
class VariantFigures:
    variant: str
    exposed: int
    conversions: int
    baseline: bool = False
    # None for the baseline, and when either arm has too little data to compare.
    uplift: Uplift | None = None

    @property
    def conversion_rate(self) -> float:
        return self.conversions / self.exposed if self.exposed else 0.0


@dataclass(frozen=True)
class ExperimentReport:
    experiment: str
    step: str
    baseline: str
    variants: tuple[VariantFigures, ...]
    winner: str | None = None
    decided_at: datetime | None = None


@dataclass(frozen=True)
class DailyFigures:
    day: date
    sent: int = 0
    clicked: int = 0
    converted: int = 0


@dataclass(frozen=True)
class PlanReport:
    plan: str
    period: Period
    steps: tuple[StepFigures, ...]
    experiments: tuple[ExperimentReport, ...]
    days: tuple[DailyFigures, ...]
    alpha: float
    statistics_method: str

    def totals(self) -> StepFigures:
        """Every step and channel together."""
        revenue: dict[str, int] = {}
        for row in self.steps:
            for currency, amount in row.revenue.items():
                revenue[currency] = revenue.get(currency, 0) + amount
        return StepFigures(
            step="all steps",
            channel="all",
            scheduled=sum(row.scheduled for row in self.steps),
            sent=sum(row.sent for row in self.steps),
            delivered=sum(row.delivered for row in self.steps),
            clicked=sum(row.clicked for row in self.steps),
            converted=sum(row.converted for row in self.steps),
            revenue=dict(sorted(revenue.items())),
            unsubscribes=sum(row.unsubscribes for row in self.steps),
            complaints=sum(row.complaints for row in self.steps),
        )
