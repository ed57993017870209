"""``aftercare report``: what a plan's journeys achieved, through the gRPC API
(ReportsService.GetPlanReport; the key needs the reports:read scope).

    aftercare report --plan default --since 30d
    aftercare report --plan default --since 2026-11-01 --until 2026-12-01 --format csv
    aftercare report --plan default --format json --output report.json
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from engine.cli.connection import ApiKeyOption, call_api
from engine.insights import report_format
from engine.insights.report_export import CsvTable, report_to_csv, report_to_json
from engine.insights.report_model import InvalidReportRequest, PlanReport
from engine.insights.report_period import parse_period
from engine.insights.report_proto import report_from_message


class OutputFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


def report_command(
    plan: Annotated[str, typer.Option("--plan", help="Plan id, e.g. default.")] = "default",
    since: Annotated[
        str, typer.Option("--since", help="Start: 30d, 12h, 2w before now, or an ISO date.")
    ] = "30d",
    until: Annotated[
        str | None, typer.Option("--until", help="End (exclusive), same forms; default now.")
    ] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="table, csv or json.")
    ] = OutputFormat.TABLE,
    table: Annotated[
        CsvTable, typer.Option("--table", help="With --format csv: steps, experiments or days.")
    ] = CsvTable.STEPS,
    output: Annotated[
        Path | None, typer.Option("--output", help="Write to this file instead of stdout.")
    ] = None,
    api_key: ApiKeyOption = None,
) -> None:
    """What a plan's journeys achieved: sent, delivered, clicked, converted, revenue per
    step and channel, and its experiments' uplifts (reports:read)."""
    try:
        period = parse_period(since, until)
    except InvalidReportRequest as err:
        typer.echo(f"--{err.field}: {err.problem}", err=True)
        raise typer.Exit(code=2) from None
    reply = call_api(
        lambda client: client.get_plan_report(plan, since=period.since, until=period.until),
        api_key,
    )
    report = report_from_message(reply)
    if output_format is OutputFormat.JSON:
        text = report_to_json(report)
    elif output_format is OutputFormat.CSV:
        text = report_to_csv(report, table)
    else:
        text = render_table(report)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)


def _columns(rows: list[list[str]], right_from: int) -> list[str]:
    widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(width) if index >= right_from else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def render_table(report: PlanReport) -> str:
    """The report for a terminal: steps, then experiments, then how it was computed."""
    since = report.period.since.strftime("%Y-%m-%d %H:%M")
    until = report.period.until.strftime("%Y-%m-%d %H:%M")
    lines = [f"plan {report.plan}, {since} to {until} UTC", ""]
    header = ["step", "channel", "scheduled", "sent", "delivered", "clicked", "converted"]
    header += ["revenue", "unsubscribes", "complaints"]
    rows = [header]
    totals = report.totals()
    for row in [*report.steps, totals] if report.steps else []:
        rows.append(
            [
                row.step,
                row.channel,
                str(row.scheduled),
                str(row.sent),
                f"{row.delivered} ({report_format.share(row.delivered, row.sent)})",
                f"{row.clicked} ({report_format.share(row.clicked, row.delivered)})",
                f"{row.converted} ({report_format.share(row.converted, row.delivered)})",
                report_format.revenue(row.revenue),
                str(row.unsubscribes),
                str(row.complaints),
            ]
        )
    if len(rows) == 1:
        lines.append("no message of this plan in this period")
    else:
        lines.extend(_columns(rows, right_from=2))
    for experiment in report.experiments:
        lines += ["", f"experiment {experiment.experiment} on {experiment.step}"]
        if experiment.winner:
            lines[-1] += f" (stopped, winner {experiment.winner})"
        arms = [["arm", "exposed", "conversions", "rate", "uplift", "interval", "p", "verdict"]]
        for arm in experiment.variants:
            found = arm.uplift
            if arm.baseline:
                verdict, figures = "baseline", ["-", "-", "-"]
            elif found is None:
                verdict, figures = "too little data", ["-", "-", "-"]
            else:
                verdict = "significant" if found.significant else "not significant"
                figures = [
                    report_format.points(found.difference),
                    report_format.interval(found),
                    report_format.p_value(found.p_value),
                ]
            arms.append(
                [
                    arm.variant,
                    str(arm.exposed),
                    str(arm.conversions),
                    report_format.rate(arm.conversion_rate),
                    *figures,
                    verdict,
                ]
            )
        lines.extend(_columns(arms, right_from=1))
    lines += [
        "",
        f"alpha {report.alpha}: {report.statistics_method}",
        "Opens are not reported: mail privacy proxies inflate them.",
    ]
    return "\n".join(lines) + "\n"
