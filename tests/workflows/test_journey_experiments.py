"""Experiments in virtual time, with the real workflow, activities, SMTP sink, ledger
and HTTP app: each customer gets their arm (the holdout nothing but a ledger row), the
arm is pinned and the same across a customer's journeys, a tracked link's click is
recorded with step, variant and channel, and stopping the experiment with a winner
changes what sleeping journeys send next.

The tests share one database and travel forward in virtual time, so they keep the
order they are written in; the winner is decided in the last one.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select

from engine.devstack.mail_sink import MailSink
from engine.devstack.twilio_fake import new_account_sid, serve_twilio_fake
from engine.messaging.experiment_decisions import ExperimentDecisions
from engine.messaging.ledger import MessageLedger
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.tables import EngagementEvent, Message, MessageStatus
from engine.platform.http_server import serve_http
from engine.processes.http import http_app
from tests.support.orders import domain_order
from tests.support.virtual_time import VirtualJourneys, resolved, text_of, virtual_journeys
from workflows.experiments import assign
from workflows.ids import journey_id_for
from workflows.plans.catalogue import load_plan
from workflows.plans.model import Experiment
from workflows.state import StepOutcome

DAY = timedelta(days=1)
EXPERIMENT = "thanks-subject"
CHANNEL_EXPERIMENT = "nudge-channel"
TWILIO_TOKEN = "experiments-twilio-token"
SUBJECT_B = "A little thank-you from us"
PLAN = f"""
id: abtest
version: 1
description: Thanks with a subject line test and a holdout.
priority: 100
quiet_hours: null
steps:
  - id: order_confirmation
    trigger: {{on: start}}
    category: transactional
    template: order_confirmation
  - id: thanks
    trigger: {{on: start, delay: P1D}}
    category: relationship
    template: thank_you
    experiment:
      id: {EXPERIMENT}
      holdout: 0.2
      variants:
        - {{name: control, weight: 1}}
        - {{name: b, weight: 1, subject: "{SUBJECT_B}"}}
  - id: nudge
    trigger: {{on: start, delay: P3D}}
    category: relationship
    template: delivered
    channels: [email, sms]
    experiment:
      id: {CHANNEL_EXPERIMENT}
      variants:
        - {{name: control, weight: 1}}
        - {{name: text, weight: 1, channels: [sms, email]}}
"""


@pytest.fixture(scope="module")
def plans_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("plans")
    (folder / "abtest.yaml").write_text(PLAN, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def experiment(plans_dir: Path) -> Experiment:
    found = load_plan(plans_dir / "abtest.yaml").plan.step("thanks").experiment
    assert found is not None
    return found


@pytest.fixture(scope="module")
async def journeys(
    mail_sink: MailSink, tmp_path_factory: pytest.TempPathFactory, plans_dir: Path
) -> AsyncIterator[VirtualJourneys]:
    sid = new_account_sid()
    # Decisions are read for every send (no cache), so a winner reaches the next one.
    async with (
        serve_twilio_fake("127.0.0.1", 0, sid, TWILIO_TOKEN) as twilio,
        virtual_journeys(
            tmp_path_factory.mktemp("experiments"),
            mail_sink,
            plans_dir=plans_dir,
            pause_cache_seconds=0,
            shop_url="https://shop.example",
            public_base_url="https://links.shop.example",
            twilio_account_sid=sid,
            twilio_auth_token=TWILIO_TOKEN,
            twilio_from_number="+15005550006",
            twilio_api_base_url=twilio.base_url,
        ) as running,
    ):
        yield running


@pytest.fixture(scope="module")
async def ledger(journeys: VirtualJourneys) -> AsyncIterator[MessageLedger]:
    engine = create_engine(journeys.settings.resolved_database_url)
    yield MessageLedger(create_session_factory(engine))
    await engine.dispose()


def customer_in(arm: str, experiment: Experiment, tag: str) -> str:
    """A customer id the experiment assigns to ``arm``."""
    return next(
        customer
        for customer in (f"cus-{tag}-{n}" for n in range(1000))
        if assign(customer, experiment) == arm
    )


async def thanks_row(ledger: MessageLedger, order_id: str) -> Message:
    async with ledger.sessions() as session:
        row = await session.scalar(
            select(Message).where(
                Message.journey_id == journey_id_for(order_id), Message.step == "thanks"
            )
        )
    assert row is not None
    return row


async def test_each_arm_gets_its_message_and_the_holdout_none(
    journeys: VirtualJourneys, ledger: MessageLedger, experiment: Experiment
) -> None:
    orders = {
        arm: domain_order(customer_id=customer_in(arm, experiment, "arms"))
        for arm in ("control", "b", "holdout")
    }
    handles = {arm: await journeys.start(order) for arm, order in orders.items()}
    await journeys.wait(handles["control"], DAY + timedelta(minutes=1))
    states = {arm: await journeys.until(h, resolved("thanks")) for arm, h in handles.items()}

    subjects = {
        arm: [
            str(mail.message["Subject"])
            for mail in journeys.mails(journey_id_for(order.order_id))
            if mail.message["X-Aftercare-Step"] == "thanks"
        ]
        for arm, order in orders.items()
    }
    assert subjects["b"] == [SUBJECT_B]
    assert len(subjects["control"]) == 1
    assert subjects["control"] != [SUBJECT_B]
    assert subjects["holdout"] == []

    for arm, state in states.items():
        assert state.experiments == {EXPERIMENT: arm}
        assert any(
            f"experiment {EXPERIMENT}: thanks assigned {arm}" in e.detail for e in state.timeline
        )
    assert states["holdout"].steps["thanks"].outcome == StepOutcome.SKIPPED
    assert "holdout" in states["holdout"].steps["thanks"].detail
    assert states["b"].steps["thanks"].outcome == StepOutcome.SENT

    for arm, order in orders.items():
        row = await thanks_row(ledger, order.order_id)
        assert (row.plan, row.category, row.customer_id) == (
            "abtest@v1",
            "relationship",
            order.customer.id,
        )
        assert (row.experiment, row.variant) == (EXPERIMENT, arm)
        expected = MessageStatus.SKIPPED if arm == "holdout" else MessageStatus.SENT
        assert row.status == expected
    held = await thanks_row(ledger, orders["holdout"].order_id)
    assert (held.error or "").startswith("holdout")


async def test_the_arm_is_the_same_in_a_customers_next_journey(
    journeys: VirtualJourneys, experiment: Experiment
) -> None:
    customer = customer_in("b", experiment, "repeat")
    first = await journeys.start(domain_order(customer_id=customer))
    second = await journeys.start(domain_order(customer_id=customer))
    await journeys.wait(first, DAY + timedelta(minutes=1))
    arms = [
        (await journeys.until(handle, resolved("thanks"))).experiments for handle in (first, second)
    ]
    assert arms == [{EXPERIMENT: "b"}, {EXPERIMENT: "b"}]


async def test_a_click_on_a_tracked_link_is_recorded_with_step_variant_and_channel(
    journeys: VirtualJourneys, ledger: MessageLedger, experiment: Experiment
) -> None:
    order = domain_order(customer_id=customer_in("b", experiment, "click"))
    handle = await journeys.start(order)
    await journeys.wait(handle, DAY + timedelta(minutes=1))
    await journeys.until(handle, resolved("thanks"))
    mail = next(
        m
        for m in journeys.mails(journey_id_for(order.order_id))
        if m.message["X-Aftercare-Step"] == "thanks"
    )
    links = re.findall(r"https://links\.shop\.example/c/[A-Za-z0-9_.\-]+", text_of(mail))
    assert links, text_of(mail)

    async with (
        http_app(journeys.settings) as app,
        serve_http(app, "127.0.0.1", 0) as server,
        httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=10) as http,
    ):
        answer = await http.get(
            urlsplit(links[0]).path, headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"}
        )
    assert answer.status_code == 302
    assert answer.headers["location"].startswith("https://shop.example/")

    async with ledger.sessions() as session:
        rows = (
            await session.execute(
                select(Message.step, Message.variant, Message.channel, EngagementEvent.kind)
                .join(Message, Message.id == EngagementEvent.message_id)
                .where(Message.journey_id == journey_id_for(order.order_id))
            )
        ).all()
    assert [tuple(row) for row in rows] == [("thanks", "b", "email", "clicked")]


async def test_a_variant_may_send_on_other_channels(
    journeys: VirtualJourneys, ledger: MessageLedger, plans_dir: Path
) -> None:
    experiment = load_plan(plans_dir / "abtest.yaml").plan.step("nudge").experiment
    assert experiment is not None
    orders = {
        arm: domain_order(
            customer_id=customer_in(arm, experiment, "channel"), phone="+4915123456789"
        )
        for arm in ("control", "text")
    }
    handles = {arm: await journeys.start(order) for arm, order in orders.items()}
    await journeys.wait(handles["control"], 3 * DAY + timedelta(minutes=1))

    sent_on = {}
    for arm, order in orders.items():
        state = await journeys.until(handles[arm], resolved("nudge"))
        assert state.experiments[CHANNEL_EXPERIMENT] == arm
        async with ledger.sessions() as session:
            sent_on[arm] = (
                await session.execute(
                    select(Message.channel, Message.variant).where(
                        Message.journey_id == journey_id_for(order.order_id),
                        Message.step == "nudge",
                    )
                )
            ).all()
    # The step's first channel for control; the variant's (a text) for the other arm.
    assert [tuple(row) for row in sent_on["control"]] == [("email", "control")]
    assert [tuple(row) for row in sent_on["text"]] == [("sms", "text")]


async def test_a_winner_reaches_journeys_already_asleep(
    journeys: VirtualJourneys, ledger: MessageLedger, experiment: Experiment
) -> None:
    orders = {
        arm: domain_order(customer_id=customer_in(arm, experiment, "winner"))
        for arm in ("control", "holdout")
    }
    handles = {arm: await journeys.start(order) for arm, order in orders.items()}
    for handle in handles.values():
        await journeys.settle(handle)  # confirmed; asleep until the thanks are due

    await ExperimentDecisions(ledger.sessions).decide(EXPERIMENT, "b", decided_by="test")
    await journeys.wait(handles["control"], DAY + timedelta(minutes=1))

    for arm, order in orders.items():
        state = await journeys.until(handles[arm], resolved("thanks"))
        assert state.steps["thanks"].outcome == StepOutcome.SENT
        assert state.experiments == {EXPERIMENT: arm}  # assigned as before; sent the winner
        subjects = [
            str(mail.message["Subject"])
            for mail in journeys.mails(journey_id_for(order.order_id))
            if mail.message["X-Aftercare-Step"] == "thanks"
        ]
        assert subjects == [SUBJECT_B]
        row = await thanks_row(ledger, order.order_id)
        assert (row.variant, row.status) == ("b", MessageStatus.SENT)
