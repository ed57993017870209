"""Plan validation of step experiments and attribution windows: each mistake is named
by its path in the file; a valid experiment loads into the plan."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from workflows.plans.catalogue import PlanError, load_plan
from workflows.plans.model import Experiment, Variant

TEMPLATES = ("thanks", "thanks_short")


def plan_with(experiment: str, *, category: str = "relationship", extra: str = "") -> str:
    body = textwrap.indent(textwrap.dedent(experiment).strip(), " " * 6)
    return (
        "id: test\nversion: 1\ndescription: a plan with an experiment\n" + extra + "steps:\n"
        "  - id: thanks\n"
        "    trigger: {on: start}\n"
        f"    category: {category}\n"
        "    template: thanks\n"
        "    experiment:\n" + body + "\n"
    )


def problems_of(tmp_path: Path, text: str) -> list[tuple[str, str]]:
    path = tmp_path / "test.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PlanError) as raised:
        load_plan(path, known_templates=TEMPLATES)
    return list(raised.value.problems)


VALID = """
id: thanks-subject
holdout: 0.1
variants:
  - {name: control, weight: 1}
  - {name: short, weight: 1, template: thanks_short, subject: "Thank you!"}
"""


def test_a_valid_experiment_loads(tmp_path: Path) -> None:
    path = tmp_path / "test.yaml"
    path.write_text(plan_with(VALID), encoding="utf-8")
    plan = load_plan(path, known_templates=TEMPLATES).plan
    assert plan.step("thanks").experiment == Experiment(
        id="thanks-subject",
        holdout=0.1,
        variants=(
            Variant(name="control", weight=1),
            Variant(name="short", weight=1, template="thanks_short", subject="Thank you!"),
        ),
    )
    # Without an attribution block, the documented defaults.
    assert plan.attribution.click_window == timedelta(days=7)
    assert plan.attribution.delivery_window == timedelta(days=1)


def test_attribution_windows_load(tmp_path: Path) -> None:
    path = tmp_path / "test.yaml"
    path.write_text(
        plan_with(VALID, extra="attribution: {click_window: P3D, delivery_window: PT12H}\n"),
        encoding="utf-8",
    )
    plan = load_plan(path, known_templates=TEMPLATES).plan
    assert plan.attribution.click_window == timedelta(days=3)
    assert plan.attribution.delivery_window == timedelta(hours=12)


INVALID: dict[str, tuple[str, str, str, str]] = {
    # name: (experiment, step category, path of the problem, part of the message)
    "zero weight": (
        "id: e\nvariants: [{name: control, weight: 0}, {name: b, weight: 1}]",
        "relationship",
        "steps[0].experiment.variants[0].weight",
        "positive",
    ),
    "negative weight": (
        "id: e\nvariants: [{name: control}, {name: b, weight: -2}]",
        "relationship",
        "steps[0].experiment.variants[1].weight",
        "positive",
    ),
    "no control": (
        "id: e\nvariants: [{name: a}, {name: b}]",
        "relationship",
        "steps[0].experiment.variants",
        "'control'",
    ),
    "duplicate name": (
        "id: e\nvariants: [{name: control}, {name: b}, {name: b}]",
        "relationship",
        "steps[0].experiment.variants[2].name",
        "listed twice",
    ),
    "a variant named holdout": (
        "id: e\nvariants: [{name: control}, {name: holdout}]",
        "relationship",
        "steps[0].experiment.variants[1].name",
        "set holdout instead",
    ),
    "holdout too large": (
        "id: e\nholdout: 0.7\nvariants: [{name: control}, {name: b}]",
        "relationship",
        "steps[0].experiment.holdout",
        "0 to 0.5",
    ),
    "holdout of a transactional message": (
        "id: e\nholdout: 0.1\nvariants: [{name: control}, {name: b}]",
        "transactional",
        "steps[0].experiment.holdout",
        "nobody may be held out",
    ),
    "one variant and no holdout": (
        "id: e\nvariants: [{name: control}]",
        "relationship",
        "steps[0].experiment.variants",
        "two variants",
    ),
    "unknown template": (
        "id: e\nvariants: [{name: control}, {name: b, template: nope}]",
        "relationship",
        "steps[0].experiment.variants[1].template",
        "unknown template",
    ),
    "bad experiment id": (
        "id: Not An Id\nvariants: [{name: control}, {name: b}]",
        "relationship",
        "steps[0].experiment.id",
        "plain identifiers",
    ),
    "empty channels": (
        "id: e\nvariants: [{name: control}, {name: b, channels: []}]",
        "relationship",
        "steps[0].experiment.variants[1].channels",
        "at least one channel",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_experiments_are_named(tmp_path: Path, case: str) -> None:
    experiment, category, path, message = INVALID[case]
    problems = problems_of(tmp_path, plan_with(experiment, category=category))
    assert any(where == path and message in what for where, what in problems), problems


def test_attribution_window_must_be_positive(tmp_path: Path) -> None:
    text = plan_with(VALID, extra="attribution: {click_window: PT0S}\n")
    problems = problems_of(tmp_path, text)
    assert any(where == "attribution.click_window" for where, _ in problems), problems
