"""What a chaos run prints: per scenario what was injected and what was checked, then
one table for the whole run."""

from __future__ import annotations

from collections.abc import Sequence

from tools.chaos.scenario import ScenarioResult

COLUMNS = (
    "scenario",
    "journeys",
    "completed",
    "expected msgs",
    "sent (ledger)",
    "received",
    "duplicates",
    "missing",
    "verdict",
    "time",
)


def row(result: ScenarioResult) -> list[str]:
    v = result.verification
    return [
        result.name,
        str(v.journeys),
        str(v.completed),
        str(v.expected),
        str(v.sent),
        str(v.received),
        f"{v.duplicates} ({v.resent_after_kill} after a kill)"
        if v.resent_after_kill
        else str(v.duplicates),
        str(v.missing),
        "PASS" if result.passed else "FAIL",
        f"{result.seconds:.0f} s",
    ]


def table(rows: Sequence[Sequence[str]], columns: Sequence[str] = COLUMNS) -> str:
    """A Markdown table (readable as it is, and pasteable into the README)."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(columns, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(columns), rule, *(line(r) for r in rows)])


def render_result(result: ScenarioResult) -> str:
    lines = [f"-- {result.name}: {result.description}", "injected:"]
    lines += [f"  {at:7.1f} s  {what}" for at, what in result.injected] or ["  (nothing)"]
    lines.append("checked:")
    lines += ["  " + text for text in table([row(result)]).splitlines()]
    lines += [f"  {text}" for text in result.observed]
    if result.verification.problems:
        lines.append("problems:")
        lines += [f"  - {problem}" for problem in result.verification.problems]
    return "\n".join(lines)


def print_result(result: ScenarioResult) -> None:
    print(render_result(result), flush=True)
    print(flush=True)


def print_summary(results: Sequence[ScenarioResult]) -> None:
    print("== chaos run", flush=True)
    print(table([row(result) for result in results]), flush=True)
