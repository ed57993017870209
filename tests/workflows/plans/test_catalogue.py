"""The plan catalogue: the shipped plans, validation errors, pinning hashes, choosing."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.orders import domain_order
from workflows.orders import LineItem, Order
from workflows.plans.catalogue import (
    DEFAULT_PLAN_FOLDER,
    PlanError,
    choose_plan,
    content_hash,
    load_catalogue,
    load_plan,
)
from workflows.plans.model import (
    Category,
    Conditions,
    Hook,
    PinnedPlan,
    Replenishment,
    Segment,
    TimeWindow,
    TriggerKind,
)
from workflows.vocabulary import Channel, EventType

E = EventType
ON_START, ON_EVENT, ON_STEP = TriggerKind.START, TriggerKind.EVENT, TriggerKind.STEP

# step id: (trigger kind, event or step it waits for, delay, category)
SHIPPED_STEPS: dict[str, tuple[TriggerKind, str | None, timedelta, Category]] = {
    "order_confirmation": (ON_START, None, timedelta(0), Category.TRANSACTIONAL),
    "shipping_delay": (ON_START, None, timedelta(days=3), Category.TRANSACTIONAL),
    "shipping_notice": (ON_EVENT, E.SHIPPED, timedelta(0), Category.TRANSACTIONAL),
    "out_for_delivery": (ON_EVENT, E.OUT_FOR_DELIVERY, timedelta(0), Category.TRANSACTIONAL),
    "delivered": (ON_EVENT, E.DELIVERED, timedelta(0), Category.TRANSACTIONAL),
    "order_cancelled": (ON_EVENT, E.CANCELLED, timedelta(0), Category.TRANSACTIONAL),
    "return_confirmation": (ON_EVENT, E.RETURN_REQUESTED, timedelta(0), Category.TRANSACTIONAL),
    "refund_confirmation": (ON_EVENT, E.REFUNDED, timedelta(0), Category.TRANSACTIONAL),
    "address_changed": (ON_EVENT, E.ADDRESS_CHANGED, timedelta(0), Category.TRANSACTIONAL),
    "thank_you": (ON_EVENT, E.DELIVERED, timedelta(hours=4), Category.RELATIONSHIP),
    "product_education": (ON_EVENT, E.DELIVERED, timedelta(days=3), Category.RELATIONSHIP),
    "feedback_request": (ON_EVENT, E.DELIVERED, timedelta(days=7), Category.FEEDBACK),
    "feedback_reminder": (ON_STEP, "feedback_request", timedelta(days=3), Category.FEEDBACK),
    "detractor_follow_up": (ON_EVENT, E.FEEDBACK, timedelta(0), Category.SUPPORT),
    "passive_thanks": (ON_EVENT, E.FEEDBACK, timedelta(0), Category.RELATIONSHIP),
    "review_request": (ON_EVENT, E.FEEDBACK, timedelta(0), Category.MARKETING),
    "cross_sell": (ON_EVENT, E.DELIVERED, timedelta(days=21), Category.MARKETING),
}
CONSUMABLE_CATEGORIES = ("coffee", "tea", "skincare", "supplements", "pet_food", "cleaning")
SHIPPED_TEMPLATES = frozenset(SHIPPED_STEPS) | {"replenishment_reminder"}


@pytest.fixture(scope="module")
def catalogue() -> dict[str, PinnedPlan]:
    return load_catalogue()


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def plan_text(
    steps: str | None = None,
    *,
    plan_id: str = "test",
    head: str = "",
    tail: str = "",
) -> str:
    """A valid small plan, with ``steps`` (already indented by 2) and extra fields."""
    if steps is None:
        steps = """\
          - id: hello
            trigger: {on: start}
            category: transactional
            template: hello
        """
    head = textwrap.indent(textwrap.dedent(head), " " * 8)
    tail = textwrap.indent(textwrap.dedent(tail), " " * 8)
    return (
        f"""\
        id: {plan_id}
        version: 1
        description: A plan for tests.
"""
        + head
        + "        steps:\n"
        + textwrap.indent(textwrap.dedent(steps), " " * 8)
        + tail
    )


# --- the shipped plans ----------------------------------------------------------------


def test_catalogue_has_the_default_and_consumables_plans(
    catalogue: dict[str, PinnedPlan],
) -> None:
    assert set(catalogue) == {"default", "consumables"}
    assert catalogue["default"].source == "default.yaml"
    assert catalogue["consumables"].source == "consumables.yaml"
    repo = Path(__file__).resolve().parents[3]
    assert repo / "workflows" / "plans" == DEFAULT_PLAN_FOLDER
    for plan_id, pinned in catalogue.items():
        assert pinned.label == f"{plan_id}@v3"
        assert len(pinned.content_hash) == 64
        assert pinned.content_hash == content_hash(pinned.plan)
    assert catalogue["default"].content_hash != catalogue["consumables"].content_hash


@pytest.mark.parametrize("plan_id", ["default", "consumables"])
def test_shipped_plan_steps_and_triggers(catalogue: dict[str, PinnedPlan], plan_id: str) -> None:
    plan = catalogue[plan_id].plan
    expected = dict(SHIPPED_STEPS)
    if plan_id == "consumables":
        expected.pop("cross_sell")  # its marketing is the replenishment reminders
    assert [step.id for step in plan.steps] == list(expected)
    for step in plan.steps:
        on, waits_for, delay, category = expected[step.id]
        trigger = step.trigger
        assert trigger.on is on, step.id
        if on is ON_EVENT:
            assert (trigger.event, trigger.step) == (waits_for, None), step.id
        elif on is ON_STEP:
            assert (trigger.event, trigger.step) == (None, waits_for), step.id
        else:
            assert (trigger.event, trigger.step) == (None, None), step.id
        assert trigger.delay == delay, step.id
        assert step.category is category, step.id
        assert step.template == step.id  # every step has its own template


@pytest.mark.parametrize("plan_id", ["default", "consumables"])
def test_shipped_plan_step_details(catalogue: dict[str, PinnedPlan], plan_id: str) -> None:
    plan = catalogue[plan_id].plan
    email, sms, whatsapp, push = Channel.EMAIL, Channel.SMS, Channel.WHATSAPP, Channel.PUSH
    assert plan.step("order_confirmation").channels == (email,)
    # Shipping and delivery news: the app first, for customers who have it.
    assert plan.step("shipping_notice").channels == (push, email, sms)
    assert plan.step("out_for_delivery").channels == (push, sms, whatsapp, email)
    assert plan.step("delivered").channels == (push, sms, whatsapp, email)
    assert plan.step("order_cancelled").channels == (email,)

    delay = plan.step("shipping_delay")
    assert delay.unless == (E.SHIPPED, E.OUT_FOR_DELIVERY, E.DELIVERED, E.CANCELLED)
    assert delay.window == TimeWindow(start="08:00", end="20:00")
    assert plan.step("thank_you").window == TimeWindow(start="09:00", end="20:00")
    for step_id in ("product_education", "feedback_request", "feedback_reminder"):
        assert plan.step(step_id).at == "10:00", step_id
    assert plan.step("feedback_request").unless == (E.FEEDBACK,)
    assert plan.step("feedback_reminder").unless == (E.FEEDBACK,)

    detractor = plan.step("detractor_follow_up")
    assert detractor.when == Conditions(max_score=6)
    assert detractor.hook is Hook.SUPPORT_TICKET
    assert plan.step("passive_thanks").when == Conditions(min_score=7, max_score=8)
    review = plan.step("review_request")
    assert review.when == Conditions(min_score=9)
    assert review.window == TimeWindow(start="09:00", end="20:00")
    assert review.stale_after == timedelta(days=3)
    if plan_id == "default":
        cross_sell = plan.step("cross_sell")
        assert cross_sell.at == "11:00"
        assert cross_sell.stale_after == timedelta(days=2)

    # v2: the review request's subject line test; v3: push on shipping and delivery news.
    assert plan.version == 3
    assert plan.description
    assert plan.quiet_hours == TimeWindow(start="21:00", end="08:00")
    assert plan.linger == timedelta(days=14)
    assert plan.expire_after == timedelta(days=120)


def test_default_plan_applies_to_every_order(catalogue: dict[str, PinnedPlan]) -> None:
    default = catalogue["default"].plan
    assert default.priority == 0
    assert default.applies_when == Conditions()
    assert default.replenishment is None


def test_consumables_plan_adds_replenishment(catalogue: dict[str, PinnedPlan]) -> None:
    consumables = catalogue["consumables"].plan
    assert consumables.priority == 10
    assert consumables.applies_when == Conditions(categories=CONSUMABLE_CATEGORIES)
    assert consumables.replenishment == Replenishment(
        template="replenishment_reminder",
        lead_time=timedelta(days=5),
        at="10:00",
        max_reminders=6,
        channels=(Channel.EMAIL, Channel.SMS),
    )
    # The shared steps are written out in both files; they must not drift apart.
    default_steps = catalogue["default"].plan.steps
    assert consumables.steps == tuple(s for s in default_steps if s.id != "cross_sell")


def test_shipped_plans_use_only_the_given_templates() -> None:
    plans = load_catalogue(known_templates=SHIPPED_TEMPLATES)
    assert set(plans) == {"default", "consumables"}
    with pytest.raises(PlanError) as caught:
        load_catalogue(known_templates=SHIPPED_TEMPLATES - {"feedback_reminder"})
    assert "feedback_reminder" in str(caught.value)
    assert caught.value.path.endswith(".template")


def test_shipped_plans_use_only_templates_the_renderer_has() -> None:
    from activities.email.rendering import TEMPLATE_NAMES

    assert set(load_catalogue(known_templates=TEMPLATE_NAMES)) == {"default", "consumables"}


# --- the content hash -----------------------------------------------------------------

HASHED = """\
    # A plan written one way.
    id: hashed
    version: 1
    description: Hash me.
    steps:
      - id: hello
        trigger: {on: start}
        category: transactional
        template: hello
      - id: later
        trigger: {on: event, event: delivered, delay: P3D}
        at: "10:00"
        category: relationship
        template: later
        channels: [email, sms]
"""

HASHED_REFORMATTED = """\
    # The same plan written another way: block style, other key order, other
    # quoting, comments, and defaults spelled out.
    description: "Hash me."
    id: 'hashed'
    version: 1
    priority: 0       # the default
    linger: PT336H    # 14 days
    steps:
      - id: hello
        template: hello
        category: transactional
        trigger:
          on: start
          delay: PT0S
      - id: later
        category: relationship
        template: later
        at: 10:00
        channels:
          - email
          - sms
        trigger:
          on: event
          event: delivered
          delay: PT72H
"""


def test_hash_ignores_formatting_and_comments(tmp_path: Path) -> None:
    first = load_plan(write(tmp_path, "a.yaml", HASHED))
    second = load_plan(write(tmp_path, "b.yaml", HASHED_REFORMATTED))
    assert first.plan == second.plan
    assert first.content_hash == second.content_hash
    assert first.source == "a.yaml"
    assert second.source == "b.yaml"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("delay: P3D", "delay: P4D"),
        ("delay: P3D", "delay: PT71H"),
        ('at: "10:00"', 'at: "10:01"'),
        ("channels: [email, sms]", "channels: [sms, email]"),
        ("version: 1", "version: 2"),
        ("description: Hash me.", "description: Hash me!"),
    ],
)
def test_hash_changes_with_any_semantic_change(tmp_path: Path, old: str, new: str) -> None:
    assert old in HASHED
    first = load_plan(write(tmp_path, "a.yaml", HASHED))
    second = load_plan(write(tmp_path, "b.yaml", HASHED.replace(old, new)))
    assert first.content_hash != second.content_hash


def test_hash_is_stable_across_loads(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", HASHED)
    assert load_plan(path).content_hash == load_plan(path).content_hash
    pinned = load_plan(path)
    changed = replace(pinned.plan, linger=timedelta(days=15))
    assert content_hash(changed) != pinned.content_hash


# --- invalid plans --------------------------------------------------------------------

STEP_A = """\
  - id: a
    trigger: {on: start}
    category: transactional
    template: a
"""


def one_step(body: str) -> str:
    """A plan whose only step is ``body`` (written as the lines under ``- ``)."""
    lines = textwrap.dedent(body).strip().splitlines()
    return plan_text("\n".join(["  - " + lines[0], *("    " + x for x in lines[1:])]) + "\n")


INVALID: dict[str, tuple[str, str, str]] = {
    # name: (plan text, path of the problem, part of the message)
    "unknown top-level key": (plan_text(head="prority: 3\n"), "prority", "unknown key"),
    "unknown step key": (
        one_step("id: a\ntrigger: {on: start}\ncategory: transactional\ntemplate: a\nchanels: []"),
        "steps[0].chanels",
        "unknown key",
    ),
    "missing field": (
        one_step("id: a\ntrigger: {on: start}\ncategory: transactional"),
        "steps[0].template",
        "required",
    ),
    "unknown event": (
        one_step("id: a\ntrigger: {on: event, event: shiped}\ncategory: support\ntemplate: a"),
        "steps[0].trigger.event",
        "'shiped'",
    ),
    "unknown trigger kind": (
        one_step("id: a\ntrigger: {on: later}\ncategory: support\ntemplate: a"),
        "steps[0].trigger.on",
        "'later'",
    ),
    "unknown category": (
        one_step("id: a\ntrigger: {on: start}\ncategory: promo\ntemplate: a"),
        "steps[0].category",
        "'promo'",
    ),
    "unknown channel": (
        one_step("id: a\ntrigger: {on: start}\ncategory: support\ntemplate: a\nchannels: [fax]"),
        "steps[0].channels[0]",
        "'fax'",
    ),
    "delay as a number": (
        one_step("id: a\ntrigger: {on: start, delay: 3}\ncategory: support\ntemplate: a"),
        "steps[0].trigger.delay",
        "duration",
    ),
    "version as a string": (
        plan_text().replace("version: 1", 'version: "1"'),
        "version",
        "integer",
    ),
    "steps not a list": (plan_text("{}\n").replace("steps:\n", "steps: "), "steps", "valid array"),
    "version zero": (plan_text().replace("version: 1", "version: 0"), "version", "start at 1"),
    "plan id not an identifier": (plan_text(plan_id="Default"), "id", "'Default'"),
    "plan id starting with a digit": (plan_text(plan_id="1st"), "id", "'1st'"),
    "empty description": (
        plan_text().replace("description: A plan for tests.", 'description: " "'),
        "description",
        "say what",
    ),
    "no steps": (plan_text("[]\n").replace("steps:\n", "steps: "), "steps", "at least one"),
    "duplicate step id": (
        plan_text(STEP_A + STEP_A),
        "steps[1].id",
        "duplicate step id 'a' (also steps[0])",
    ),
    "step id not an identifier": (
        one_step("id: Step A\ntrigger: {on: start}\ncategory: support\ntemplate: a"),
        "steps[0].id",
        "'Step A'",
    ),
    "event trigger without event": (
        one_step("id: a\ntrigger: {on: event}\ncategory: support\ntemplate: a"),
        "steps[0].trigger.event",
        "needs an event",
    ),
    "event trigger with a step": (
        plan_text(
            STEP_A
            + "  - {id: b, trigger: {on: event, event: shipped, step: a},"
            + " category: support, template: b}\n"
        ),
        "steps[1].trigger.step",
        "only step triggers",
    ),
    "step trigger without step": (
        one_step("id: a\ntrigger: {on: step}\ncategory: support\ntemplate: a"),
        "steps[0].trigger.step",
        "needs a step",
    ),
    "step trigger with an event": (
        plan_text(
            STEP_A
            + "  - {id: b, trigger: {on: step, step: a, event: shipped},"
            + " category: support, template: b}\n"
        ),
        "steps[1].trigger.event",
        "only event triggers",
    ),
    "start trigger with an event": (
        one_step("id: a\ntrigger: {on: start, event: shipped}\ncategory: support\ntemplate: a"),
        "steps[0].trigger.event",
        "only event triggers",
    ),
    "start trigger with a step": (
        plan_text(
            STEP_A + "  - {id: b, trigger: {on: start, step: a}, category: support, template: b}\n"
        ),
        "steps[1].trigger.step",
        "only step triggers",
    ),
    "step trigger naming a missing step": (
        plan_text(
            STEP_A + "  - {id: b, trigger: {on: step, step: z}, category: support, template: b}\n"
        ),
        "steps[1].trigger.step",
        "no step 'z'",
    ),
    "step triggered by itself": (
        one_step("id: a\ntrigger: {on: step, step: a}\ncategory: support\ntemplate: a"),
        "steps[0].trigger.step",
        "itself",
    ),
    "steps triggering each other": (
        plan_text(
            STEP_A
            + "  - {id: b, trigger: {on: step, step: d}, category: support, template: b}\n"
            + "  - {id: c, trigger: {on: step, step: b}, category: support, template: c}\n"
            + "  - {id: d, trigger: {on: step, step: c}, category: support, template: d}\n"
        ),
        "steps[1].trigger.step",
        "b -> c -> d -> b",
    ),
    "negative delay": (
        one_step("id: a\ntrigger: {on: start, delay: -PT1H}\ncategory: support\ntemplate: a"),
        "steps[0].trigger.delay",
        "negative",
    ),
    "hour out of range": (
        one_step('id: a\ntrigger: {on: start}\ncategory: support\ntemplate: a\nat: "24:00"'),
        "steps[0].at",
        "HH:MM",
    ),
    "time without leading zero": (
        one_step('id: a\ntrigger: {on: start}\ncategory: support\ntemplate: a\nat: "9:00"'),
        "steps[0].at",
        "'9:00'",
    ),
    "time as a word": (
        one_step("id: a\ntrigger: {on: start}\ncategory: support\ntemplate: a\nat: noon"),
        "steps[0].at",
        "HH:MM",
    ),
    "window end not a time": (
        one_step(
            "id: a\ntrigger: {on: start}\ncategory: support\ntemplate: a\n"
            'window: {start: "09:00", end: "20:60"}'
        ),
        "steps[0].window.end",
        "HH:MM",
    ),
    "empty quiet hours": (
        plan_text(head='quiet_hours: {start: "08:00", end: "08:00"}\n'),
        "quiet_hours",
        "empty",
    ),
    "template not an identifier": (
        one_step("id: a\ntrigger: {on: start}\ncategory: support\ntemplate: ../secret"),
        "steps[0].template",
        "'../secret'",
    ),
    "unknown template": (
        one_step("id: a\ntrigger: {on: start}\ncategory: support\ntemplate: nope"),
        "steps[0].template",
        "unknown template 'nope'",
    ),
    "no channels": (
        one_step("id: a\ntrigger: {on: start}\ncategory: support\ntemplate: a\nchannels: []"),
        "steps[0].channels",
        "at least one channel",
    ),
    "duplicate channel": (
        one_step(
            "id: a\ntrigger: {on: start}\ncategory: support\ntemplate: a\n"
            "channels: [email, sms, email]"
        ),
        "steps[0].channels[2]",
        "'email' is listed twice",
    ),
    "score above 10": (
        one_step(
            "id: a\ntrigger: {on: event, event: feedback}\ncategory: support\ntemplate: a\n"
            "when: {min_score: 11}"
        ),
        "steps[0].when.min_score",
        "0 to 10",
    ),
    "score below 0": (
        one_step(
            "id: a\ntrigger: {on: event, event: feedback}\ncategory: support\ntemplate: a\n"
            "when: {max_score: -1}"
        ),
        "steps[0].when.max_score",
        "0 to 10",
    ),
    "min score above max score": (
        one_step(
            "id: a\ntrigger: {on: event, event: feedback}\ncategory: support\ntemplate: a\n"
            "when: {min_score: 9, max_score: 6}"
        ),
        "steps[0].when",
        "min_score 9 is above max_score 6",
    ),
    "score on a step not triggered by feedback": (
        one_step(
            "id: a\ntrigger: {on: event, event: delivered}\ncategory: support\ntemplate: a\n"
            "when: {min_score: 9}"
        ),
        "steps[0].when.min_score",
        "feedback event",
    ),
    "score in applies_when": (
        plan_text(head="applies_when: {max_score: 6}\n"),
        "applies_when.max_score",
        "feedback event",
    ),
    "min order value above max": (
        plan_text(head="applies_when: {min_order_value_minor: 5000, max_order_value_minor: 100}\n"),
        "applies_when",
        "above the max",
    ),
    "negative order value": (
        plan_text(head="applies_when: {min_order_value_minor: -1}\n"),
        "applies_when.min_order_value_minor",
        "negative",
    ),
    "lower-case country": (
        plan_text(head="applies_when: {countries: [DE, at]}\n"),
        "applies_when.countries[1]",
        "'at'",
    ),
    "empty category": (
        plan_text(head="applies_when: {categories: [coffee, '']}\n"),
        "applies_when.categories[1]",
        "empty category",
    ),
    "stale_after zero": (
        one_step(
            "id: a\ntrigger: {on: start}\ncategory: marketing\ntemplate: a\nstale_after: PT0S"
        ),
        "steps[0].stale_after",
        "positive",
    ),
    "negative linger": (plan_text(head="linger: -P1D\n"), "linger", "negative"),
    "expire_after zero": (plan_text(head="expire_after: P0D\n"), "expire_after", "positive"),
    "replenishment lead time zero": (
        plan_text(tail="replenishment: {template: a, lead_time: P0D}\n"),
        "replenishment.lead_time",
        "positive",
    ),
    "replenishment lead time negative": (
        plan_text(tail="replenishment: {template: a, lead_time: -P5D}\n"),
        "replenishment.lead_time",
        "positive",
    ),
    "replenishment without reminders": (
        plan_text(tail="replenishment: {template: a, max_reminders: 0}\n"),
        "replenishment.max_reminders",
        "between 1 and 24",
    ),
    "replenishment with too many reminders": (
        plan_text(tail="replenishment: {template: a, max_reminders: 25}\n"),
        "replenishment.max_reminders",
        "got 25",
    ),
    "replenishment with an unknown template": (
        plan_text(tail="replenishment: {template: refill}\n"),
        "replenishment.template",
        "unknown template 'refill'",
    ),
    "replenishment with duplicate channels": (
        plan_text(tail="replenishment: {template: a, channels: [sms, sms]}\n"),
        "replenishment.channels[1]",
        "listed twice",
    ),
    "replenishment time not HH:MM": (
        plan_text(tail='replenishment: {template: a, at: "10"}\n'),
        "replenishment.at",
        "HH:MM",
    ),
    "explicit YAML type": (
        one_step(
            "id: a\ntrigger: {on: start}\ncategory: support\ntemplate: a\n"
            "channels: !!binary aGVsbG8="
        ),
        "steps[0].channels",
        "unsupported YAML value",
    ),
    "non-string key": (plan_text(head="3: three\n"), "", "keys must be names"),
    "duplicate key": (
        plan_text(head="priority: 1\npriority: 2\n"),
        "line 5, column 1",
        "'priority' appears more than once",
    ),
    "broken YAML": (
        plan_text() + "        - {id: b, template: b\n",
        "line 10, column 1",
        "invalid YAML: while parsing a flow mapping: expected ',' or '}'",
    ),
    "not a mapping": ("- id: test\n", "", "expected a mapping of plan fields, found list"),
    "empty file": ("# nothing here\n", "", "found nothing"),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_plan_names_file_and_path(tmp_path: Path, case: str) -> None:
    text, path, fragment = INVALID[case]
    file = write(tmp_path, "broken.yaml", text)
    with pytest.raises(PlanError) as caught:
        load_plan(file, known_templates={"a", "b", "c", "d", "hello"})
    error = caught.value
    message = str(error)
    assert error.file == str(file)
    assert message.startswith(f"{file}: ")
    assert error.path.startswith(path), message
    if path:
        assert f": {error.path}: " in message
    assert fragment in message


def test_valid_variants_of_the_test_plan_load(tmp_path: Path) -> None:
    # The fixtures above only break what each case says.
    assert load_plan(write(tmp_path, "ok.yaml", plan_text()), known_templates={"hello"})
    templates = {"a", "b", "c", "d"}
    assert load_plan(write(tmp_path, "two.yaml", plan_text(STEP_A)), known_templates=templates)


def test_unquoted_yaml_scalars_keep_their_meaning(tmp_path: Path) -> None:
    # YAML 1.1 would read `on` as True and 10:00 as the number 600.
    pinned = load_plan(
        write(
            tmp_path,
            "p.yaml",
            one_step("id: a\ntrigger: {on: start}\ncategory: support\ntemplate: a\nat: 10:00"),
        )
    )
    assert pinned.plan.steps[0].trigger.on is ON_START
    assert pinned.plan.steps[0].at == "10:00"


def test_template_names_are_not_checked_without_a_list(tmp_path: Path) -> None:
    pinned = load_plan(write(tmp_path, "p.yaml", plan_text()))
    assert pinned.plan.steps[0].template == "hello"


def test_every_problem_is_reported(tmp_path: Path) -> None:
    text = plan_text(
        STEP_A + "  - {id: b, trigger: {on: step, step: z}, category: support, template: b}\n",
        plan_id="Bad",
    ).replace("version: 1", "version: 0")
    file = write(tmp_path, "many.yaml", text)
    with pytest.raises(PlanError) as caught:
        load_plan(file)
    message = str(caught.value)
    assert message.startswith(f"{file}: 3 problems:\n")
    assert "\n  id: " in message
    assert "\n  version: " in message
    assert "\n  steps[1].trigger.step: no step 'z'" in message
    assert [path for path, _ in caught.value.problems] == ["id", "version", "steps[1].trigger.step"]


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(PlanError, match=r"missing\.yaml: cannot read the file"):
        load_plan(missing)


# --- the catalogue --------------------------------------------------------------------


def test_catalogue_reads_yaml_files_only(tmp_path: Path) -> None:
    write(tmp_path, "one.yaml", plan_text(plan_id="one"))
    write(tmp_path, "two.yml", plan_text(plan_id="two"))
    write(tmp_path, "README.md", "not a plan")
    write(tmp_path, "three.yaml.bak", "not: [a plan")
    plans = load_catalogue(tmp_path)
    assert sorted(plans) == ["one", "two"]
    assert plans["two"].source == "two.yml"


def test_catalogue_rejects_two_files_with_one_id(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", plan_text(plan_id="same"))
    write(tmp_path, "b.yaml", plan_text(plan_id="same"))
    with pytest.raises(PlanError) as caught:
        load_catalogue(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'b.yaml'}: id: ")
    assert "'same'" in message
    assert str(tmp_path / "a.yaml") in message


def test_catalogue_reports_the_broken_file(tmp_path: Path) -> None:
    write(tmp_path, "good.yaml", plan_text(plan_id="good"))
    write(tmp_path, "bad.yaml", plan_text(plan_id="bad", head="priority: high\n"))
    with pytest.raises(PlanError) as caught:
        load_catalogue(tmp_path)
    assert caught.value.file == str(tmp_path / "bad.yaml")
    assert caught.value.path == "priority"


def test_catalogue_checks_templates(tmp_path: Path) -> None:
    write(tmp_path, "p.yaml", plan_text())
    assert load_catalogue(tmp_path, known_templates={"hello"})
    with pytest.raises(PlanError, match=r"steps\[0\]\.template: unknown template 'hello'"):
        load_catalogue(tmp_path, known_templates={"bye"})


def test_empty_or_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="no plan files"):
        load_catalogue(tmp_path)
    with pytest.raises(PlanError, match="no such plan folder"):
        load_catalogue(tmp_path / "nowhere")


# --- choosing a plan ------------------------------------------------------------------


def order(
    *categories: str,
    previous_orders: int = 0,
    total_minor: int = 5000,
    country: str = "DE",
) -> Order:
    base = domain_order(order_id="ORD-PLAN-1")
    items = [
        LineItem(sku=f"SKU-{i}", name=f"Item {i}", quantity=1, unit_price_minor=1000, category=c)
        for i, c in enumerate(categories)
    ]
    return replace(
        base,
        items=items,
        total_minor=total_minor,
        customer=replace(base.customer, previous_orders=previous_orders),
        shipping_address=replace(base.shipping_address, country_code=country),
    )


def catalogue_of(folder: Path, **plans: str) -> dict[str, PinnedPlan]:
    """Plans from ``id=head`` pairs: each head holds applies_when/priority lines."""
    for plan_id, head in plans.items():
        write(folder, f"{plan_id}.yaml", plan_text(plan_id=plan_id, head=head))
    return load_catalogue(folder)


def test_coffee_order_gets_the_consumables_plan(catalogue: dict[str, PinnedPlan]) -> None:
    assert choose_plan(order("coffee"), catalogue).plan.id == "consumables"
    assert choose_plan(order("apparel", "pet_food"), catalogue).plan.id == "consumables"


def test_apparel_order_gets_the_default_plan(catalogue: dict[str, PinnedPlan]) -> None:
    assert choose_plan(order("apparel"), catalogue).plan.id == "default"
    assert choose_plan(order(), catalogue).plan.id == "default"  # no items at all
    assert choose_plan(order(""), catalogue).plan.id == "default"  # uncategorised


def test_highest_priority_wins(tmp_path: Path) -> None:
    plans = catalogue_of(
        tmp_path,
        low="priority: 1\n",
        high="priority: 5\napplies_when: {countries: [DE]}\n",
        negative="priority: -3\n",
    )
    assert choose_plan(order(country="DE"), plans).plan.id == "high"
    assert choose_plan(order(country="FR"), plans).plan.id == "low"


def test_equal_priorities_go_to_the_first_plan_id(tmp_path: Path) -> None:
    plans = catalogue_of(tmp_path, zulu="priority: 3\n", alpha="priority: 3\n", mike="")
    assert choose_plan(order(), plans).plan.id == "alpha"
    # The order of the mapping does not matter.
    reordered = dict(reversed(list(plans.items())))
    assert choose_plan(order(), reordered).plan.id == "alpha"


def test_segment_value_and_country_conditions(tmp_path: Path) -> None:
    plans = catalogue_of(
        tmp_path,
        default="",
        welcome="priority: 10\napplies_when: {segment: first_time}\n",
        vip="priority: 20\napplies_when: {segment: repeat, min_order_value_minor: 20000}\n",
        nordic="priority: 30\napplies_when: {countries: [SE, NO, DK]}\n",
    )
    assert plans["welcome"].plan.applies_when.segment is Segment.FIRST_TIME

    def chosen(placed: Order) -> str:
        return choose_plan(placed, plans).plan.id

    assert chosen(order(previous_orders=0)) == "welcome"
    assert chosen(order(previous_orders=3, total_minor=5000)) == "default"
    assert chosen(order(previous_orders=3, total_minor=20000)) == "vip"
    assert chosen(order(previous_orders=0, total_minor=20000)) == "welcome"
    assert chosen(order(previous_orders=3, total_minor=20000, country="SE")) == "nordic"
    assert chosen(order(previous_orders=0, country="NO")) == "nordic"


def test_no_matching_plan(tmp_path: Path) -> None:
    plans = catalogue_of(tmp_path, nordic="applies_when: {countries: [SE]}\n")
    with pytest.raises(PlanError, match=r"no plan applies to order ORD-PLAN-1 \(plans: nordic\)"):
        choose_plan(order(country="DE"), plans)
    with pytest.raises(PlanError, match="no plan applies"):
        choose_plan(order(), {})
