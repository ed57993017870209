"""``aftercare simulate``: a marketer's preview of a plan, run through the real workflow
in virtual time (the time-skipping server) and printed as a timeline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

AFTERCARE = Path(sys.executable).parent / "aftercare"


def _simulate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AFTERCARE), "simulate", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_simulate_prints_the_timeline_in_local_time(tmp_path: Path) -> None:
    events = tmp_path / "events.yaml"
    events.write_text(
        "- {after: P1D, event: shipped}\n"
        "- {after: P2D, event: delivered}\n"
        "- {after: P9D, event: feedback, score: 3}\n"
    )
    result = _simulate("--plan", "default", "--events", str(events))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Plan default v3" in out
    assert "customer time zone Europe/Berlin" in out  # the sample order's customer
    lines = [line for line in out.splitlines() if "message" in line]
    steps = [line.split("message", 1)[1].split(":")[0].strip() for line in lines]
    assert steps[:3] == ["order_confirmation", "shipping_notice", "delivered"]
    assert "detractor_follow_up" in steps
    assert "review_request" not in steps  # no marketing after a detractor score
    education = next(line for line in lines if "product_education" in line)
    assert "T10:00+01:00" in education or "T10:00+02:00" in education
    assert "skip     cross_sell: no marketing after unhappy feedback" in out


def test_simulate_refuses_an_unknown_plan() -> None:
    result = _simulate("--plan", "nonexistent")
    assert result.returncode == 2
    assert "nonexistent" in result.stderr
    assert "default" in result.stderr  # names the known plans
