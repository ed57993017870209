"""``push`` in plans: validated like the other channels, held by quiet hours like them,
and left out of a step for a customer who refused its category by push."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.journey_state import journey_state, utc
from tests.support.orders import domain_order
from workflows.overrides import CustomerOverrides, channels_for, refusal_reason
from workflows.plans.catalogue import PlanError, load_plan
from workflows.plans.model import Category, Plan, Step, TimeWindow, Trigger, TriggerKind
from workflows.scheduler import build_agenda
from workflows.vocabulary import Channel

PLAN = """
id: push_plan
version: 1
description: Push first.
steps:
  - id: order_confirmation
    trigger: {on: start}
    category: transactional
    template: order_confirmation
    channels: [CHANNELS]
"""


def test_a_plan_may_list_push_with_fallback(tmp_path: Path) -> None:
    path = tmp_path / "push.yaml"
    path.write_text(PLAN.replace("CHANNELS", "push, sms, email"))
    pinned = load_plan(path)
    assert pinned.plan.steps[0].channels == (Channel.PUSH, Channel.SMS, Channel.EMAIL)


@pytest.mark.parametrize(
    ("channels", "where"),
    [("push, push", "steps[0].channels[1]"), ("pushh", "steps[0].channels")],
)
def test_a_wrong_push_listing_is_refused_naming_its_place(
    tmp_path: Path, channels: str, where: str
) -> None:
    path = tmp_path / "push.yaml"
    path.write_text(PLAN.replace("CHANNELS", channels))
    with pytest.raises(PlanError) as raised:
        load_plan(path)
    assert raised.value.path is not None
    assert raised.value.path.startswith(where)


def test_quiet_hours_hold_a_push_like_any_channel() -> None:
    def plan_on(channels: tuple[Channel, ...]) -> Plan:
        step = Step(
            id="tips",
            trigger=Trigger(on=TriggerKind.START),
            template="product_education",
            category=Category.RELATIONSHIP,
            channels=channels,
        )
        return Plan(
            id="p",
            version=1,
            description="d",
            steps=(step,),
            quiet_hours=TimeWindow("21:00", "08:00"),
        )

    night = utc(2025, 6, 2, 0, 30)  # 02:30 in Berlin
    order = domain_order(timezone="Europe/Berlin")
    by_push = build_agenda(plan_on((Channel.PUSH,)), order, journey_state(night)).sends[0]
    by_email = build_agenda(plan_on((Channel.EMAIL,)), order, journey_state(night)).sends[0]
    assert by_push.due_at == utc(2025, 6, 2, 6)  # 08:00 local
    assert by_push.due_at == by_email.due_at


def test_a_customer_who_refused_marketing_by_push_gets_the_other_channels() -> None:
    refused = CustomerOverrides(refused={Channel.PUSH: [Category.MARKETING]})
    channels = (Channel.PUSH, Channel.EMAIL)
    assert channels_for(Category.MARKETING, channels, refused) == (Channel.EMAIL,)
    assert channels_for(Category.TRANSACTIONAL, channels, refused) == channels
    assert "push" in refusal_reason(Category.MARKETING, (Channel.PUSH,), refused)
