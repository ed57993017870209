"""`aftercare plans diff`: steps added, removed and moved, timing and channel changes
between two versions of a real plan file."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from engine.cli.app import app
from engine.journeys.plan_changes.diff import diff_plans
from workflows.plans.catalogue import load_plan

DEFAULT = Path(__file__).resolve().parents[4] / "workflows" / "plans" / "default.yaml"


def changed_plan(tmp_path: Path) -> Path:
    """default.yaml, its next version: product tips dropped, the thank-you a day after
    delivery instead of four hours, the shipping notice by email only, the cross-sell
    hung off the feedback request instead of delivery, and a new step."""
    text = DEFAULT.read_text()
    start = text.index("  - id: product_education")
    end = text.index("  - id: feedback_request")
    text = text[:start] + text[end:]
    version = int(re.search(r"^version: (\d+)$", text, re.MULTILINE).group(1))  # type: ignore[union-attr]
    edits = [
        (f"version: {version}\n", f"version: {version + 1}\n"),
        ("event: delivered, delay: PT4H}", "event: delivered, delay: P1D}"),
        (
            "trigger: {on: event, event: delivered, delay: P21D}",
            "trigger: {on: step, step: feedback_request, delay: P14D}",
        ),
    ]
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    notice = text.index("  - id: shipping_notice")
    shipped = "channels: [push, email, sms]"
    channels = text.index(shipped, notice)
    text = text[:channels] + "channels: [email]" + text[channels + len(shipped) :]
    text += (
        "\n  - id: care_tips\n"
        "    trigger: {on: event, event: delivered, delay: P5D}\n"
        "    category: relationship\n"
        "    template: product_education\n"
    )
    path = tmp_path / "default.yaml"
    path.write_text(text)
    return path


def test_the_diff_names_every_kind_of_change(tmp_path: Path) -> None:
    old = load_plan(DEFAULT).plan
    new = load_plan(changed_plan(tmp_path)).plan
    result = diff_plans(old, new)
    found = {(change.kind, change.subject): change.detail for change in result.changes}
    assert ("removed", "product_education") in found
    assert ("added", "care_tips") in found
    assert found[("timing", "thank_you")] == "delay 4h -> 1d"
    assert found[("channels", "shipping_notice")] == "[push, email, sms] -> [email]"
    assert found[("moved", "cross_sell")] == "trigger event delivered -> step feedback_request"
    assert found[("timing", "cross_sell")] == "delay 21d -> 14d"
    # Nothing else changed: the other steps are not listed.
    assert {subject for _, subject in found} == {
        "product_education",
        "care_tips",
        "thank_you",
        "shipping_notice",
        "cross_sell",
    }
    assert diff_plans(old, old).changes == []


def test_the_command_prints_the_diff(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["plans", "diff", str(DEFAULT), str(changed_plan(tmp_path))])
    assert result.exit_code == 0, result.output
    version = load_plan(DEFAULT).plan.version
    assert f"plan default v{version} -> default v{version + 1}" in result.output
    assert "- removed   product_education" in result.output
    assert "+ added     care_tips" in result.output
    assert "~ timing    thank_you: delay 4h -> 1d" in result.output


def test_an_invalid_plan_is_refused_with_its_problem(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(DEFAULT.read_text().replace("template: thank_you", "template: no_such"))
    result = CliRunner().invoke(app, ["plans", "diff", str(DEFAULT), str(broken)])
    assert result.exit_code == 2
    assert "no_such" in result.output
