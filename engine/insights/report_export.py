"""The plan report as JSON (everything, and read back by :func:`report_from_json`)
and as CSV tables for spreadsheets (steps, experiment arms, days; one table a
file, money in minor units with one column per currency)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from engine.insights.report_model import (
    DailyFigures,
    ExperimentReport,
    Period,
    PlanReport,
    StepFigures,
    Uplift,
    VariantFigures,
)

FORMAT_VERSION = 1


class CsvTable(StrEnum):
    STEPS = "steps"
    EXPERIMENTS = "experiments"
    DAYS = "days"


STEP_COLUMNS = (
    "step",
    "channel",
    "scheduled",
    "sent",
    "delivered",
    "clicked",
    "converted",
    "unsubscribes",
    "complaints",
)
ARM_COLUMNS = (
    "experiment",
    "step",
    "variant",
    "baseline",
    "exposed",
    "conversions",
    "conversion_rate",
    "difference",
    "ci_low",
    "ci_high",
    "p_value",
    "significant",
    "winner",
)
DAY_COLUMNS = ("day", "sent", "clicked", "converted")


def report_to_dict(report: PlanReport) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "plan": report.plan,
        "since": report.period.since.isoformat(),
        "until": report.period.until.isoformat(),
        "alpha": report.alpha,
        "statistics_method": report.statistics_method,
        "steps": [
            {**{name: getattr(row, name) for name in STEP_COLUMNS}, "revenue": row.revenue}
            for row in report.steps
        ],
        "experiments": [_experiment_dict(experiment) for experiment in report.experiments],
        "days": [
            {
                "day": row.day.isoformat(),
                "sent": row.sent,
                "clicked": row.clicked,
                "converted": row.converted,
            }
            for row in report.days
        ],
    }


def _experiment_dict(experiment: ExperimentReport) -> dict[str, Any]:
    return {
        "experiment": experiment.experiment,
        "step": experiment.step,
        "baseline": experiment.baseline,
        "winner": experiment.winner,
        "decided_at": experiment.decided_at.isoformat() if experiment.decided_at else None,
        "variants": [
            {
                "variant": arm.variant,
                "exposed": arm.exposed,
                "conversions": arm.conversions,
                "conversion_rate": arm.conversion_rate,
                "baseline": arm.baseline,
                "uplift": None
                if arm.uplift is None
                else {
                    "difference": arm.uplift.difference,
                    "ci_low": arm.uplift.ci_low,
                    "ci_high": arm.uplift.ci_high,
                    "p_value": arm.uplift.p_value,
                    "significant": arm.uplift.significant,
                },
            }
            for arm in experiment.variants
        ],
    }


def report_to_json(report: PlanReport) -> str:
    return json.dumps(report_to_dict(report), indent=2) + "\n"


def report_from_json(text: str) -> PlanReport:
    """A report written by :func:`report_to_json`; ValueError for anything else."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"not a plan report of format version {FORMAT_VERSION}")
    return PlanReport(
        plan=data["plan"],
        period=Period(datetime.fromisoformat(data["since"]), datetime.fromisoformat(data["until"])),
        steps=tuple(
            StepFigures(**{name: row[name] for name in STEP_COLUMNS}, revenue=dict(row["revenue"]))
            for row in data["steps"]
        ),
        experiments=tuple(
            ExperimentReport(
                experiment=item["experiment"],
                step=item["step"],
                baseline=item["baseline"],
                winner=item["winner"],
                decided_at=datetime.fromisoformat(item["decided_at"])
                if item["decided_at"]
                else None,
                variants=tuple(
                    VariantFigures(
                        variant=arm["variant"],
                        exposed=arm["exposed"],
                        conversions=arm["conversions"],
                        baseline=arm["baseline"],
                        uplift=Uplift(**arm["uplift"]) if arm["uplift"] else None,
                    )
                    for arm in item["variants"]
                ),
            )
            for item in data["experiments"]
        ),
        days=tuple(
            DailyFigures(
                date.fromisoformat(row["day"]), row["sent"], row["clicked"], row["converted"]
            )
            for row in data["days"]
        ),
        alpha=data["alpha"],
        statistics_method=data["statistics_method"],
    )


def currencies_of(report: PlanReport) -> list[str]:
    return sorted({currency for row in report.steps for currency in row.revenue})


def revenue_column(currency: str) -> str:
    return f"revenue_{currency}_minor"


def report_to_csv(report: PlanReport, table: CsvTable = CsvTable.STEPS) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if table is CsvTable.STEPS:
        currencies = currencies_of(report)
        writer.writerow([*STEP_COLUMNS, *(revenue_column(c) for c in currencies)])
        for row in report.steps:
            writer.writerow(
                [
                    *(getattr(row, name) for name in STEP_COLUMNS),
                    *(row.revenue.get(currency, 0) for currency in currencies),
                ]
            )
    elif table is CsvTable.EXPERIMENTS:
        writer.writerow(ARM_COLUMNS)
        for experiment in report.experiments:
            for arm in experiment.variants:
                found = arm.uplift
                writer.writerow(
                    [
                        experiment.experiment,
                        experiment.step,
                        arm.variant,
                        arm.baseline,
                        arm.exposed,
                        arm.conversions,
                        arm.conversion_rate,
                        *(
                            ("", "", "", "", "")
                            if found is None
                            else (
                                found.difference,
                                found.ci_low,
                                found.ci_high,
                                found.p_value,
                                found.significant,
                            )
                        ),
                        experiment.winner or "",
                    ]
                )
    else:
        writer.writerow(DAY_COLUMNS)
        for day in report.days:
            writer.writerow([day.day.isoformat(), day.sent, day.clicked, day.converted])
    return out.getvalue()


def steps_from_csv(text: str) -> tuple[StepFigures, ...]:
    """The steps table of :func:`report_to_csv` read back (what a spreadsheet sees)."""
    rows = csv.DictReader(io.StringIO(text))
    prefix, suffix = "revenue_", "_minor"
    steps = []
    for row in rows:
        revenue = {
            name[len(prefix) : -len(suffix)]: int(value)
            for name, value in row.items()
            if name.startswith(prefix) and name.endswith(suffix) and int(value)
        }
        counts = {name: int(row[name]) for name in STEP_COLUMNS[2:]}
        steps.append(
            StepFigures(step=row["step"], channel=row["channel"], revenue=revenue, **counts)
        )
    return tuple(steps)
