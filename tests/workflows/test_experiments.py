"""Experiment assignment: a pure function of customer and experiment, stable, and
spread by the weights (holdout first)."""

from __future__ import annotations

from collections import Counter

from workflows.experiments import arm_for, assign, point_of
from workflows.plans.model import Category, Experiment, Step, Trigger, TriggerKind, Variant

AB = Experiment(
    id="review-subject",
    holdout=0.1,
    variants=(Variant(name="control", weight=1), Variant(name="b", weight=3)),
)


def test_the_same_customer_always_gets_the_same_arm() -> None:
    # Across calls, i.e. across journeys and workers: nothing but the ids goes in.
    for n in range(200):
        customer = f"cust-{n}"
        assert assign(customer, AB) == assign(customer, AB)
        assert point_of(customer, AB.id) == point_of(customer, AB.id)


def test_arms_follow_the_weights() -> None:
    arms = Counter(assign(f"cust-{n}", AB) for n in range(20_000))
    # 10% holdout, the remaining 90% split 1:3. A binomial's 5-sigma margins.
    assert abs(arms["holdout"] / 20_000 - 0.10) < 0.011
    assert abs(arms["control"] / 20_000 - 0.225) < 0.015
    assert abs(arms["b"] / 20_000 - 0.675) < 0.017


def test_experiments_assign_independently() -> None:
    other = Experiment(id="other", variants=AB.variants, holdout=AB.holdout)
    same = sum(assign(f"cust-{n}", AB) == assign(f"cust-{n}", other) for n in range(5_000))
    # Independent assignments agree with probability 0.1^2 + 0.225^2 + 0.675^2 ~ 0.52.
    assert 0.47 < same / 5_000 < 0.57


def test_an_arm_carries_every_arms_content() -> None:
    step = Step(
        id="review_request",
        trigger=Trigger(on=TriggerKind.START),
        template="review_request",
        category=Category.MARKETING,
        experiment=Experiment(
            id="x",
            variants=(
                Variant(name="control"),
                Variant(name="b", subject="Tell us!", template="review_short"),
            ),
        ),
    )
    assert step.experiment is not None
    arm = arm_for(step, step.experiment, "control")
    assert arm.variant == "control"
    assert not arm.holdout
    control = arm.content("control")
    assert control is not None
    assert control.template == "review_request"
    b = arm.content("b")
    assert b is not None
    assert b.template == "review_short"
    assert b.subject_for("de-AT") == "Tell us!"  # one text for every language


def test_a_subject_per_locale_falls_back_to_the_language_then_the_template() -> None:
    step = Step(
        id="thanks",
        trigger=Trigger(on=TriggerKind.START),
        template="thank_you",
        category=Category.RELATIONSHIP,
        experiment=Experiment(
            id="x",
            variants=(
                Variant(name="control"),
                Variant(name="b", subject={"en": "Thanks!", "de": "Danke!"}),
            ),
        ),
    )
    assert step.experiment is not None
    b = arm_for(step, step.experiment, "b").content("b")
    assert b is not None
    assert [b.subject_for(locale) for locale in ("en", "de-AT", "de_CH", "sv")] == [
        "Thanks!",
        "Danke!",
        "Danke!",
        "",  # no Swedish line: the template's subject
    ]
