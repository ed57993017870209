"""StartJourney picks the order's plan in the API, from the deployment's catalogue as the
worker loads it, and starts the journey with that plan pinned in its input: the
journey's first workflow task runs no local activity to choose it. An order no plan
covers is refused (FAILED_PRECONDITION naming ``order``) and nothing starts; a running
journey started under other plans still takes its events."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from aftercare.v1 import journey_pb2 as pb
from temporalio.api.enums.v1 import EventType as HistoryEventType
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from clients import NoPlanError
from engine.cli.samples import sample_order, sample_shipment
from engine.devstack.mail_sink import MailSink
from engine.journeys import parsing
from engine.journeys.directory import JourneyDirectory
from engine.journeys.plans import deployment_plans
from engine.platform.settings import Settings
from tests.support.ids import new_order_id
from tests.support.preferences import preferences_stack
from tests.support.waiting import eventually
from workflows.order_journey import OrderJourney
from workflows.orders import Order
from workflows.plans.catalogue import DEFAULT_PLAN_FOLDER, choose_plan
from workflows.search_attributes import JOURNEY_PLAN
from workflows.state import JourneyState
from workflows.vocabulary import EventType

COFFEE, T_SHIRTS = 0, 1  # sample_order variants: a consumables basket, and one without


def domain_order(order: pb.Order) -> Order:
    return parsing.valid_order(order, now=datetime.now(UTC))


@pytest.mark.parametrize("variant", [COFFEE, T_SHIRTS])
async def test_the_journey_runs_the_plan_the_api_chose(
    temporal_client: Client,
    database_url: str,
    tmp_path: Path,
    mail_sink: MailSink,
    variant: int,
) -> None:
    order = sample_order(new_order_id("PLAN"), variant)
    expected = choose_plan(domain_order(order), deployment_plans(Settings.model_construct()))
    async with preferences_stack(temporal_client, database_url, tmp_path, mail_sink) as stack:
        started = await stack.client.start_journey(order)
        handle = temporal_client.get_workflow_handle(started.journey_id)

        state: JourneyState = await eventually(
            lambda: handle.query(OrderJourney.state),
            lambda s: any(m.step == "order_confirmation" for m in s.sent),
        )

        assert (state.plan_id, state.plan_hash) == (expected.plan.id, expected.content_hash)
        history = (await handle.fetch_history()).events
        # No local activity chose it: its result would be a marker in the history (the
        # only markers there are the workflow.patched ones asked at the run's start:
        # the journey's loop and its reports of stage changes).
        markers = [
            event.marker_recorded_event_attributes.marker_name
            for event in history
            if event.HasField("marker_recorded_event_attributes")
        ]
        assert markers == ["core_patch", "core_patch"]
        sent = HistoryEventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        assert sent in [event.event_type for event in history]  # the confirmation
        # The journey still makes its plan searchable.
        attributes = (await handle.describe()).typed_search_attributes
        assert attributes.get(JOURNEY_PLAN) == expected.label
    assert expected.plan.id == ("consumables" if variant == COFFEE else "default")


async def test_an_order_no_plan_covers_is_refused_and_nothing_starts(
    temporal_client: Client, database_url: str, tmp_path: Path, mail_sink: MailSink
) -> None:
    plans = tmp_path / "plans"
    plans.mkdir()
    shutil.copy(DEFAULT_PLAN_FOLDER / "consumables.yaml", plans)  # coffee, tea, skincare...
    order = sample_order(new_order_id("NOPLAN"), T_SHIRTS)
    shipped = pb.OrderEvent(
        event_id="ship-1", type=pb.EVENT_TYPE_SHIPPED, shipment=sample_shipment(order.order_id)
    )
    async with preferences_stack(
        temporal_client, database_url, tmp_path, mail_sink, plans_dir=plans
    ) as stack:
        with pytest.raises(NoPlanError) as by_start:
            await stack.client.start_journey(order)
        # A carrier event bringing the order would start the journey too.
        with pytest.raises(NoPlanError) as by_event:
            await stack.client.record_event_with_order(order.order_id, shipped, order)
        for refused in (by_start.value, by_event.value):
            assert refused.code == grpc.StatusCode.FAILED_PRECONDITION
            assert refused.message.startswith("order: no plan applies to order")
            assert "consumables" in refused.message  # the plans it tried

        with pytest.raises(RPCError) as missing:
            await temporal_client.get_workflow_handle(f"order-{order.order_id}").describe()
        assert missing.value.status == RPCStatusCode.NOT_FOUND
        # The same API starts what its plans cover.
        assert (await stack.client.start_journey(sample_order(new_order_id("OK"), COFFEE))).created

        # A journey started under other plans (all the shipped ones) still takes its
        # events: only a missing journey is refused.
        earlier = sample_order(new_order_id("EARLIER"), T_SHIRTS)
        wider = JourneyDirectory(
            temporal_client,
            stack.settings.task_queue,
            plans=deployment_plans(Settings.model_construct()),
        )
        started = await wider.start(domain_order(earlier))
        shipped_earlier = pb.OrderEvent(
            event_id="ship-2",
            type=pb.EVENT_TYPE_SHIPPED,
            shipment=sample_shipment(earlier.order_id),
        )
        await stack.client.record_event_with_order(earlier.order_id, shipped_earlier, earlier)
        state: JourneyState = await eventually(
            lambda: temporal_client.get_workflow_handle(started.journey_id).query(
                OrderJourney.state
            ),
            lambda s: EventType.SHIPPED in s.events,
        )
        assert state.plan_id == "default"
