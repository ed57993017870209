"""One way to ask for a plan's report, for the page, the API and the CLI alike:
the plan id checked, the plan known, then the figures."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection

from engine.insights.experiment_stats import DEFAULT_ALPHA
from engine.insights.report_model import InvalidReportRequest, Period, PlanReport, UnknownPlan
from engine.insights.report_query import PlanReports

# Plan ids as plan files spell them (workflows.plans), without the "@v3" of a label.
_PLAN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")

KnownPlans = Callable[[], Collection[str]]


def checked_plan_id(plan: str) -> str:
    value = plan.strip()
    if not value:
        raise InvalidReportRequest("plan", "is required (a plan id such as 'default')")
    if not _PLAN_ID.fullmatch(value):
        raise InvalidReportRequest(
            "plan", "must be a plan id: 1-100 characters of A-Z a-z 0-9 _ - (no version)"
        )
    return value


class ReportLookup:
    """Reports of the plans this deployment has, or had: a plan the plan files no
    longer hold still has a report while its messages are in the ledger."""

    def __init__(self, reports: PlanReports, known_plans: KnownPlans) -> None:
        self._reports = reports
        self._known_plans = known_plans

    def plan_ids(self) -> list[str]:
        return sorted(self._known_plans())

    def default_plan(self) -> str:
        plans = self.plan_ids()
        return "default" if "default" in plans or not plans else plans[0]

    async def report(
        self, plan: str, period: Period, *, alpha: float = DEFAULT_ALPHA
    ) -> PlanReport:
        """InvalidReportRequest for a malformed id, UnknownPlan for a plan nobody has."""
        plan = checked_plan_id(plan)
        if plan not in self._known_plans() and not await self._reports.plan_seen(plan):
            raise UnknownPlan(plan)
        return await self._reports.report(plan, period, alpha=alpha)
