"""What both channels render a message from: the journey's request, turned into a context."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from activities.channels.base import message_context, referral_code
from activities.rendering.context import MessageContext
from tests.activities.email.samples import NEW_ADDRESS, RUN_OUT_AT, SHIPMENT, make_order
from workflows.contracts import SendMessageInput
from workflows.orders import Feedback
from workflows.vocabulary import Channel

LINKS = {"unsubscribe": "https://care.test/u/token"}


def request(**changes: Any) -> SendMessageInput:
    base = SendMessageInput(
        journey_id="journey-1",
        step="replenishment",
        template="replenishment_reminder",
        category="marketing",
        channel=Channel.SMS,
        order=make_order(),
    )
    return replace(base, **changes)


def test_the_request_becomes_the_context_of_its_message() -> None:
    feedback = Feedback(score=9, comment="Great")
    sent = request(
        shipment=SHIPMENT,
        focus_sku="ES-1",
        feedback=feedback,
        skus=["SH-1", "ES-1"],
        new_address=NEW_ADDRESS,
        run_out_at=RUN_OUT_AT,
    )
    assert message_context(sent, LINKS) == MessageContext(
        order=sent.order,
        shipment=SHIPMENT,
        links=LINKS,
        focus_item=sent.order.items[1],
        feedback=feedback,
        skus=("SH-1", "ES-1"),
        new_address=NEW_ADDRESS,
        run_out_at=RUN_OUT_AT,
        referral_code=referral_code("c-1"),
    )


def test_a_focus_sku_not_in_the_order_leaves_the_choice_to_the_templates() -> None:
    assert message_context(request(focus_sku="NOPE"), {}).focus_item is None
    assert message_context(request(), {}).focus_item is None


def test_the_referral_code_is_stable_per_customer_and_carries_no_personal_data() -> None:
    code = referral_code("c-1")
    assert code == referral_code("c-1")
    assert code != referral_code("c-2")
    assert code.startswith("REF-")
    digest = code.removeprefix("REF-")
    assert len(digest) == 8
    assert digest == digest.upper()
    int(digest, 16)  # a hash, not the customer id
