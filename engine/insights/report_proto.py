"""The plan report as the API's message (``aftercare.v1.GetPlanReportResponse``) and
back, so the CLI and scripts can read an API answer as the page reads the database."""

from __future__ import annotations

from datetime import UTC, date, datetime

from aftercare.v1 import reports_pb2 as pb
from google.protobuf.timestamp_pb2 import Timestamp

from engine.insights.report_model import (
    DailyFigures,
    ExperimentReport,
    Period,
    PlanReport,
    StepFigures,
    Uplift,
    VariantFigures,
)


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


def _instant(value: Timestamp) -> datetime:
    return value.ToDatetime(tzinfo=UTC)


def report_message(report: PlanReport) -> pb.GetPlanReportResponse:
    reply = pb.GetPlanReportResponse(
        plan=report.plan,
        since=_timestamp(report.period.since),
        until=_timestamp(report.period.until),
        alpha=report.alpha,
        statistics_method=report.statistics_method,
    )
    for row in report.steps:
        reply.steps.append(
            pb.StepResult(
                step=row.step,
                channel=row.channel,
                scheduled=row.scheduled,
                sent=row.sent,
                delivered=row.delivered,
                clicked=row.clicked,
                converted=row.converted,
                revenue=[
                    pb.Revenue(currency=currency, minor_units=amount)
                    for currency, amount in sorted(row.revenue.items())
                ],
                unsubscribes=row.unsubscribes,
                complaints=row.complaints,
            )
        )
    for experiment in report.experiments:
        item = pb.ExperimentResult(
            experiment=experiment.experiment,
            step=experiment.step,
            baseline=experiment.baseline,
            winner=experiment.winner or "",
        )
        if experiment.decided_at is not None:
            item.decided_at.CopyFrom(_timestamp(experiment.decided_at))
        for arm in experiment.variants:
            variant = pb.VariantResult(
                variant=arm.variant,
                exposed=arm.exposed,
                conversions=arm.conversions,
                conversion_rate=arm.conversion_rate,
                baseline=arm.baseline,
            )
            if arm.uplift is not None:
                variant.uplift.CopyFrom(
                    pb.Uplift(
                        difference=arm.uplift.difference,
                        ci_low=arm.uplift.ci_low,
                        ci_high=arm.uplift.ci_high,
                        p_value=arm.uplift.p_value,
                        significant=arm.uplift.significant,
                    )
                )
            item.variants.append(variant)
        reply.experiments.append(item)
    for day in report.days:
        reply.days.append(
            pb.DailyResult(
                day=day.day.isoformat(), sent=day.sent, clicked=day.clicked, converted=day.converted
            )
        )
    return reply


def report_from_message(reply: pb.GetPlanReportResponse) -> PlanReport:
    return PlanReport(
        plan=reply.plan,
        period=Period(_instant(reply.since), _instant(reply.until)),
        steps=tuple(
            StepFigures(
                step=row.step,
                channel=row.channel,
                scheduled=row.scheduled,
                sent=row.sent,
                delivered=row.delivered,
                clicked=row.clicked,
                converted=row.converted,
                revenue={money.currency: money.minor_units for money in row.revenue},
                unsubscribes=row.unsubscribes,
                complaints=row.complaints,
            )
            for row in reply.steps
        ),
        experiments=tuple(
            ExperimentReport(
                experiment=item.experiment,
                step=item.step,
                baseline=item.baseline,
                winner=item.winner or None,
                decided_at=_instant(item.decided_at) if item.HasField("decided_at") else None,
                variants=tuple(
                    VariantFigures(
                        variant=arm.variant,
                        exposed=arm.exposed,
                        conversions=arm.conversions,
                        baseline=arm.baseline,
                        uplift=Uplift(
                            difference=arm.uplift.difference,
                            ci_low=arm.uplift.ci_low,
                            ci_high=arm.uplift.ci_high,
                            p_value=arm.uplift.p_value,
                            significant=arm.uplift.significant,
                        )
                        if arm.HasField("uplift")
                        else None,
                    )
                    for arm in item.variants
                ),
            )
            for item in reply.experiments
        ),
        days=tuple(
            DailyFigures(date.fromisoformat(day.day), day.sent, day.clicked, day.converted)
            for day in reply.days
        ),
        alpha=reply.alpha,
        statistics_method=reply.statistics_method,
    )
