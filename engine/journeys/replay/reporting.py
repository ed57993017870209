"""What a replay found, per journey, and how it is shown."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class JourneyProblem:
    """A journey that did not replay (or could not be read): ``event_id`` is the
    history event the replay stopped at, when the SDK names it."""

    journey_id: str
    run_id: str
    message: str
    event_id: int | None = None


@dataclass
class ReplayReport:
    passed: list[str] = field(default_factory=list)
    # The code about to ship would break these journeys.
    nondeterministic: list[JourneyProblem] = field(default_factory=list)
    # Replay failed otherwise (a workflow task raised).
    failed: list[JourneyProblem] = field(default_factory=list)
    # Payloads that would not decode: wrong keys configured, or altered data.
    unreadable: list[JourneyProblem] = field(default_factory=list)
    # Customer erased: the key is destroyed, so nobody can read the history. Skipped.
    erased: list[str] = field(default_factory=list)
    exported: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.nondeterministic or self.failed or self.unreadable)

    @property
    def replayed(self) -> int:
        return len(self.passed) + len(self.nondeterministic) + len(self.failed)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "replayed": self.replayed,
            "passed": sorted(self.passed),
            "nondeterministic": [asdict(p) for p in self.nondeterministic],
            "failed": [asdict(p) for p in self.failed],
            "unreadable": [asdict(p) for p in self.unreadable],
            "erased_skipped": len(self.erased),
            "exported": [str(path) for path in self.exported],
        }


def render_text(report: ReplayReport) -> str:
    lines: list[str] = []
    for title, problems in (
        ("NON-DETERMINISTIC", report.nondeterministic),
        ("REPLAY FAILED", report.failed),
        ("UNREADABLE", report.unreadable),
    ):
        for problem in sorted(problems, key=lambda p: p.journey_id):
            where = f"event {problem.event_id}" if problem.event_id is not None else "event ?"
            lines.append(f"{title}  {problem.journey_id} (run {problem.run_id}) at {where}")
            lines.extend(f"    {line}" for line in problem.message.splitlines() or [""])
    for path in report.exported:
        lines.append(f"exported  {path}")
    lines.append(
        f"{report.replayed} replayed: {len(report.passed)} passed, "
        f"{len(report.nondeterministic)} non-deterministic, {len(report.failed)} failed; "
        f"{len(report.unreadable)} unreadable; "
        f"{len(report.erased)} erased customers skipped"
    )
    lines.append("OK" if report.ok else "FAILED: the code would break the journeys above")
    return "\n".join(lines)
