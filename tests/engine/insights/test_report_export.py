"""Exports of the plan report read back: JSON and the gRPC message give the same
report, the CSV tables give the same figures a spreadsheet would see."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta

import pytest

from engine.insights.experiment_stats import METHOD, compare_arms
from engine.insights.report_export import (
    ARM_COLUMNS,
    CsvTable,
    report_from_json,
    report_to_csv,
    report_to_json,
    steps_from_csv,
)
from engine.insights.report_model import (
    DailyFigures,
    ExperimentReport,
    Period,
    PlanReport,
    StepFigures,
)
from engine.insights.report_proto import report_from_message, report_message

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def sample_report() -> PlanReport:
    baseline, arms = compare_arms({"control": (500, 20), "short": (480, 41), "holdout": (60, 1)})
    return PlanReport(
        plan="default",
        period=Period(NOW - timedelta(days=2), NOW),
        steps=(
            StepFigures(
                "review_request",
                "email",
                1040,
                980,
                950,
                120,
                62,
                {"EUR": 431_00, "USD": 99_50},
                3,
                1,
            ),
            StepFigures("delivered", "sms", 300, 298, 290, 0, 0, {}, 1, 0),
        ),
        experiments=(
            ExperimentReport(
                "review-subject", "review_request", baseline, arms, winner="short", decided_at=NOW
            ),
            ExperimentReport(
                "thank-you-tone", "thank_you", *compare_arms({"A": (0, 0), "B": (3, 1)})
            ),
        ),
        days=(
            DailyFigures(date(2026, 12, 4), 600, 70, 30),
            DailyFigures(date(2026, 12, 5), 678, 50, 32),
            DailyFigures(date(2026, 12, 6), 0, 0, 0),
        ),
        alpha=0.05,
        statistics_method=METHOD,
    )


def test_json_round_trips() -> None:
    report = sample_report()
    text = report_to_json(report)
    assert report_from_json(text) == report
    assert json.loads(text)["steps"][0]["revenue"] == {"EUR": 43100, "USD": 9950}


def test_json_of_another_format_is_refused() -> None:
    with pytest.raises(ValueError, match="format version"):
        report_from_json('{"format_version": 99}')


def test_the_grpc_message_round_trips() -> None:
    report = sample_report()
    assert report_from_message(report_message(report)) == report


def test_the_steps_csv_reads_back_as_the_same_figures() -> None:
    report = sample_report()
    text = report_to_csv(report, CsvTable.STEPS)
    assert text.splitlines()[0].endswith("revenue_EUR_minor,revenue_USD_minor")
    assert steps_from_csv(text) == report.steps


def test_the_experiments_csv_has_one_row_per_arm() -> None:
    report = sample_report()
    rows = list(csv.DictReader(io.StringIO(report_to_csv(report, CsvTable.EXPERIMENTS))))
    assert tuple(rows[0]) == ARM_COLUMNS
    assert [(row["experiment"], row["variant"]) for row in rows] == [
        ("review-subject", "holdout"),
        ("review-subject", "control"),
        ("review-subject", "short"),
        ("thank-you-tone", "A"),
        ("thank-you-tone", "B"),
    ]
    short = rows[2]
    arm = report.experiments[0].variants[2]
    assert arm.uplift is not None
    assert float(short["difference"]) == arm.uplift.difference
    assert float(short["p_value"]) == arm.uplift.p_value
    assert short["significant"] == str(arm.uplift.significant)
    assert short["winner"] == "short"
    # An arm nobody saw has no comparison: empty cells, not zeros.
    assert rows[4]["difference"] == ""


def test_the_days_csv() -> None:
    rows = list(csv.reader(io.StringIO(report_to_csv(sample_report(), CsvTable.DAYS))))
    assert rows == [
        ["day", "sent", "clicked", "converted"],
        ["2026-12-04", "600", "70", "30"],
        ["2026-12-05", "678", "50", "32"],
        ["2026-12-06", "0", "0", "0"],
    ]
