"""``aftercare experiments stop`` and conversions through the real API: the winner is
recorded (with the key that chose it), bad names are refused naming the field, an
unknown experiment or arm is NOT_FOUND, a second stop ALREADY_EXISTS, a key without
journeys:admin is refused; StartJourney and a ``reordered`` event credit purchases."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aftercare.v1 import journey_pb2 as pb
from sqlalchemy import select
from temporalio.client import Client
from typer.testing import CliRunner

from engine.cli.app import app
from engine.cli.samples import sample_order
from engine.devstack.mail_sink import MailSink
from engine.messaging.experiment_decisions import ExperimentDecisions
from engine.messaging.ledger import Claim, MessageLedger
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.tables import Conversion
from tests.support.operations import OperationsStack, operations_stack, write_plan
from tests.support.waiting import eventually

runner = CliRunner()
EXPERIMENT_STEPS = """\
  - id: cross_sell
    trigger: {on: start, delay: P1D}
    category: marketing
    template: cross_sell
    experiment:
      id: cross-sell-copy
      holdout: 0.1
      variants: [{name: control}, {name: short, subject: "Picked for you"}]
"""


@pytest.fixture(scope="module")
async def stack(
    temporal_client: Client, mail_sink: MailSink, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[OperationsStack]:
    folder = tmp_path_factory.mktemp("experiments-cli")
    plans = folder / "plans"
    write_plan(plans, "abtest", steps=EXPERIMENT_STEPS)
    async with operations_stack(temporal_client, folder, mail_sink, plans_dir=plans) as running:
        yield running


async def aftercare(stack: OperationsStack, *args: str, key: str | None = None) -> tuple[int, str]:
    """Run ``aftercare experiments ...`` configured by the environment only (in a
    thread: the command runs its own event loop)."""
    env: dict[str, str | None] = {
        name: None for name in os.environ if name.startswith("AFTERCARE_")
    }
    env.update(
        AFTERCARE_GRPC_PORT=str(stack.settings.grpc_port),
        AFTERCARE_STATE_DIR=str(stack.settings.state_dir),
        AFTERCARE_API_KEY=key or stack.api_key,
    )
    result = await asyncio.to_thread(runner.invoke, app, ["experiments", *args], env=env)
    return result.exit_code, result.output


async def test_stop_records_the_winner_once(stack: OperationsStack) -> None:
    code, out = await aftercare(stack, "stop", "cross-sell-copy", "--winner", "short")
    assert code == 0, out
    assert "cross-sell-copy: stopped at" in out
    assert "every later send uses short" in out

    engine = create_engine(stack.settings.resolved_database_url)
    try:
        decision = await ExperimentDecisions(create_session_factory(engine)).get("cross-sell-copy")
    finally:
        await engine.dispose()
    assert decision is not None
    assert (decision.winner, decision.decided_by) == ("short", stack.api_key_id)

    code, out = await aftercare(stack, "stop", "cross-sell-copy", "--winner", "control")
    assert code == 1
    assert "ALREADY_EXISTS" in out


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (("no-such-experiment", "--winner", "b"), 1, "NOT_FOUND"),
        (("cross-sell-copy", "--winner", "nope"), 1, "NOT_FOUND"),
        (("Bad Name", "--winner", "b"), 2, "experiment:"),
        (("cross-sell-copy", "--winner", ""), 2, "winner:"),
    ],
)
async def test_bad_stops_are_refused(
    stack: OperationsStack, args: tuple[str, ...], code: int, said: str
) -> None:
    answer, out = await aftercare(stack, "stop", *args)
    assert answer == code, out
    assert said in out


async def test_a_key_without_journeys_admin_is_refused(stack: OperationsStack) -> None:
    code, out = await aftercare(
        stack, "stop", "cross-sell-copy", "--winner", "short", key=stack.unprivileged_key
    )
    assert code == 1
    assert "PERMISSION_DENIED" in out


async def test_start_journey_and_reorders_credit_the_customers_message(
    stack: OperationsStack,
) -> None:
    engine = create_engine(stack.settings.resolved_database_url)
    sessions = create_session_factory(engine)
    try:
        order = sample_order(f"CONV-{uuid.uuid4().hex[:8]}", 1)
        order.customer.id = f"cus-{uuid.uuid4().hex[:8]}"
        ledger = MessageLedger(sessions)
        claim = Claim(
            journey_id=f"order-EARLIER-{uuid.uuid4().hex[:6]}",
            step="cross_sell",
            iteration=0,
            channel="email",
            template="cross_sell",
            recipient="x@example.test",
            plan="abtest@v1",
            category="marketing",
            customer_id=order.customer.id,
        )
        message = (await ledger.claim(claim)).message_id
        await ledger.mark_sent(
            claim.key, provider_message_id="<a@b>", sent_at=datetime.now(UTC) - timedelta(hours=2)
        )

        await stack.client.start_journey(order)
        # The journey's own order as reordered (two of its SKUs' worth).
        event = pb.OrderEvent(
            event_id=f"re-{uuid.uuid4().hex[:6]}",
            type=pb.EVENT_TYPE_REORDERED,
            skus=[order.items[0].sku],
        )
        await stack.client.record_event_with_order(order.order_id, event, order)

        async def credited() -> list[tuple[str, int, int, str, str]]:
            # Attribution runs beside the calls, in the background.
            async with sessions() as session:
                rows = (await session.execute(select(Conversion).order_by(Conversion.id))).scalars()
                return [
                    (
                        row.order_id,
                        row.message_id,
                        row.revenue_minor,
                        row.currency,
                        row.attributed_by,
                    )
                    for row in rows
                    if row.customer_id == order.customer.id
                ]

        conversions = await eventually(credited, lambda found: len(found) == 2)
    finally:
        await engine.dispose()
    item = order.items[0]
    assert conversions == [
        (order.order_id, message, order.total_minor, order.currency, "delivery"),
        (
            f"reorder:{event.event_id}",
            message,
            item.unit_price_minor * item.quantity,
            order.currency,
            "delivery",
        ),
    ]
