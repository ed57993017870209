"""The report's charts, drawn by matplotlib (Agg, no display) as SVG to inline in
the page: the funnel per step, results per day, and experiment uplifts with their
confidence intervals.

Figures are built with the object API (``Figure``), never pyplot's global state,
so two requests drawing at once cannot draw into each other's figure. Text stays
text in the SVG (``svg.fonttype: none``) so it takes the page's font and stays
sharp; the fixed size is dropped so CSS scales the chart to its column.
"""

from __future__ import annotations

import io
import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib import rc_context
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from engine.insights.report_model import ExperimentReport, PlanReport

FUNNEL_STAGES = ("scheduled", "sent", "delivered", "clicked", "converted")
# Figure widths in inches: a desktop's column, and a phone's (a page shows one of
# the two by CSS, so the text stays readable instead of shrinking with the chart).
WIDE = 11.0
NARROW = 3.8
_GREY = "#6b7280"
_SIGNIFICANT = "#047857"
# Any: matplotlib types rc_context's keys as a Literal of every rc name.
_STYLE: Any = {
    "svg.fonttype": "none",
    "svg.hashsalt": "aftercare-report",
    "font.family": "sans-serif",
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#d1d5db",
    "axes.labelcolor": "#374151",
    "xtick.color": "#4b5563",
    "ytick.color": "#4b5563",
    "axes.grid": True,
    "grid.color": "#e5e7eb",
    "grid.linewidth": 0.8,
    "axes.axisbelow": True,
    "legend.frameon": False,
}
_SIZE_ATTRIBUTES = re.compile(r'\s(width|height)="[^"]*"')


def _style(width: float) -> Any:
    """The charts' look; a narrow chart's text is a little larger, as a phone shows
    it smaller."""
    return {**_STYLE, "font.size": 10 if width >= WIDE else 11}


def _shades(colour: str, count: int) -> list[tuple[float, float, float]]:
    """``count`` shades of ``colour``, from pale to full."""
    red, green, blue = to_rgb(colour)
    shades = []
    for index in range(count):
        mix = 0.25 + 0.75 * index / max(1, count - 1)
        shades.append((1 - mix * (1 - red), 1 - mix * (1 - green), 1 - mix * (1 - blue)))
    return shades


def _svg(figure: Figure, title: str) -> str:
    """The figure as an inline ``<svg>`` element, scalable, titled for screen readers."""
    out = io.StringIO()
    figure.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = out.getvalue()
    svg = text[text.index("<svg") :]
    opening_end = svg.index(">")
    opening = _SIZE_ATTRIBUTES.sub("", svg[:opening_end])
    label = title.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return f'{opening} role="img" aria-label="{label}" class="chart">{svg[opening_end + 1 :]}'


def funnel_chart(report: PlanReport, colour: str, width: float = WIDE) -> str:
    """Per step (channels together): scheduled, sent, delivered, clicked, converted."""
    per_step: dict[str, list[int]] = defaultdict(lambda: [0] * len(FUNNEL_STAGES))
    for row in report.steps:
        counts = per_step[row.step]
        for index, stage in enumerate(FUNNEL_STAGES):
            counts[index] += getattr(row, stage)
    steps = sorted(per_step, key=lambda step: -per_step[step][0])
    with rc_context(_style(width)):
        # Five bars a step: a narrow chart gives them more height to stay apart.
        height = 1.2 + (0.75 if width >= WIDE else 1.0) * max(1, len(steps))
        figure = Figure(figsize=(width, height))
        axes = figure.add_subplot()
        bar = 0.16
        for index, (stage, shade) in enumerate(
            zip(FUNNEL_STAGES, _shades(colour, len(FUNNEL_STAGES)), strict=True)
        ):
            positions = [row + (index - 2) * bar for row in range(len(steps))]
            values = [per_step[step][index] for step in steps]
            axes.barh(positions, values, height=bar * 0.92, color=shade, label=stage)
            for position, value in zip(positions, values, strict=True):
                if value:
                    axes.annotate(
                        f"{value:,}",
                        (value, position),
                        xytext=(3, 0),
                        textcoords="offset points",
                        va="center",
                        fontsize="small",
                        color=_GREY,
                    )
        axes.set_yticks(range(len(steps)), [step.replace("_", " ") for step in steps])
        axes.invert_yaxis()
        axes.grid(axis="y", visible=False)
        axes.xaxis.set_major_locator(MaxNLocator(nbins=8 if width >= WIDE else 4, integer=True))
        axes.set_xlabel("messages")
        axes.margins(x=0.12)  # room for the last bar's count
        axes.legend(
            loc="lower center",
            bbox_to_anchor=(0.5, 1.0),
            ncol=5 if width >= WIDE else 3,
            fontsize="medium",
        )
        if not steps:
            axes.text(0.5, 0.5, "no messages in this period", ha="center", transform=axes.transAxes)
        return _svg(figure, "Funnel per step: scheduled, sent, delivered, clicked, converted")


def daily_chart(report: PlanReport, colour: str, width: float = WIDE) -> str:
    """Messages sent per day (bars) with clicks and conversions (lines, right axis)."""
    positions = list(range(len(report.days)))
    with rc_context(_style(width)):
        figure = Figure(figsize=(width, 3.2))
        sent_axes = figure.add_subplot()
        sent_axes.bar(
            positions, [row.sent for row in report.days], color=_shades(colour, 3)[0], label="sent"
        )
        sent_axes.set_ylabel("sent")
        sent_axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        outcome_axes = sent_axes.twinx()
        outcome_axes.spines["right"].set_visible(True)
        outcome_axes.grid(False)
        # Few days: mark each one, or a two-day line reads as a trend.
        marker = "o" if len(positions) <= 14 else None
        outcome_axes.plot(
            positions,
            [row.clicked for row in report.days],
            color=colour,
            label="clicked",
            linewidth=2,
            marker=marker,
        )
        outcome_axes.plot(
            positions,
            [row.converted for row in report.days],
            color=_SIGNIFICANT,
            label="converted",
            linewidth=2,
            linestyle="--",
            marker=marker,
        )
        outcome_axes.set_ylabel("clicked, converted")
        outcome_axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        outcome_axes.set_ylim(bottom=0)
        # About one labelled day per 1.4 inches, whatever the period's length.
        every = max(1, round(len(positions) / max(3, width / 1.4)))
        ticks = positions[::every]
        sent_axes.set_xticks(ticks, [report.days[tick].day.strftime("%d %b") for tick in ticks])
        sent_axes.set_xlim(-0.6, max(0.6, len(positions) - 0.4))
        handles, labels = sent_axes.get_legend_handles_labels()
        more_handles, more_labels = outcome_axes.get_legend_handles_labels()
        sent_axes.legend(
            handles + more_handles,
            labels + more_labels,
            loc="lower center",
            bbox_to_anchor=(0.5, 1.0),
            ncol=3,
            fontsize="medium",
        )
        return _svg(figure, "Results per day: messages sent, clicked and converted")


def uplift_chart(experiments: Sequence[ExperimentReport], colour: str, width: float = WIDE) -> str:
    """Each arm's difference in conversion rate from its experiment's baseline, in
    percentage points, with its confidence interval; significant arms in green."""
    labels: list[str] = []
    points: list[tuple[float, float, float, bool]] = []
    for experiment in experiments:
        for arm in experiment.variants:
            if arm.uplift is None:
                continue
            # A narrow chart stacks the names, so the label leaves room for the plot.
            joint = "\n" if width < WIDE else ": "
            labels.append(f"{experiment.experiment}{joint}{arm.variant} vs {experiment.baseline}")
            found = arm.uplift
            points.append(
                (found.difference * 100, found.ci_low * 100, found.ci_high * 100, found.significant)
            )
    with rc_context(_style(width)):
        figure = Figure(figsize=(width, 1.0 + 0.6 * max(1, len(points))))
        axes = figure.add_subplot()
        axes.axvline(0, color=_GREY, linewidth=1)
        for row, (difference, low, high, significant) in enumerate(points):
            shade = _SIGNIFICANT if significant else colour
            axes.errorbar(
                [difference],
                [row],
                xerr=[[difference - low], [high - difference]],
                fmt="o",
                color=shade,
                ecolor=shade,
                elinewidth=2.5,
                capsize=4,
                markersize=7,
            )
            axes.annotate(
                # A narrow chart says it by colour alone (the table beside says it in words).
                f"{difference:+.1f} pp" + (" significant" if significant and width >= WIDE else ""),
                (high, row),
                xytext=(6, 0),
                textcoords="offset points",
                va="center",
                fontsize="small",
                color=shade,
            )
        axes.set_yticks(range(len(points)), labels)
        axes.set_ylim(-0.6, max(0.6, len(points) - 0.4))
        axes.invert_yaxis()
        axes.grid(axis="y", visible=False)
        axes.set_xlabel("difference in conversion rate (percentage points)")
        axes.margins(x=0.25)
        if not points:
            axes.text(0.5, 0.5, "no experiment to compare", ha="center", transform=axes.transAxes)
        return _svg(
            figure, "Uplift of each experiment arm over its baseline, with confidence intervals"
        )
