"""When Temporal refuses a batch operation (it runs as many as it allows at once):
a bulk operation is RESOURCE_EXHAUSTED, and lifting a pause still reaches the held
journeys, signalled one by one. A dev server of its own that allows none at all
makes every batch operation refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aftercare.v1 import operations_pb2 as pb
from temporalio.client import Client

from clients import TooManyBulkOperationsError
from engine.devstack.mail_sink import MailSink
from engine.devstack.temporal_server import MAX_BATCH_OPERATIONS_SETTING, TemporalDevServer
from engine.platform.codec.aes_gcm import data_converter
from engine.platform.codec.keys import generate_keyring
from tests.support.net import free_port
from tests.support.operations import operations_stack
from tests.support.orders import domain_order
from tests.support.waiting import eventually
from workflows.contracts import PAUSE_JOURNEY_SIGNAL, SENDING_RESUMED_SIGNAL


@pytest.fixture
async def refusing_temporal() -> AsyncIterator[Client]:
    server = TemporalDevServer(
        port=free_port(),
        ui_port=None,
        db_file=None,
        # Given after the default, so it wins.
        extra_args=["--dynamic-config-value", f"{MAX_BATCH_OPERATIONS_SETTING}=0"],
    )
    await server.start()
    try:
        yield await Client.connect(
            server.address, data_converter=data_converter(generate_keyring())
        )
    finally:
        await server.stop()


async def signals_of(temporal: Client, journey_id: str) -> list[str]:
    history = await temporal.get_workflow_handle(journey_id).fetch_history()
    return [
        event.workflow_execution_signaled_event_attributes.signal_name
        for event in history.events
        if event.HasField("workflow_execution_signaled_event_attributes")
    ]


async def test_a_refused_batch_is_resource_exhausted_and_resume_signals_one_by_one(
    refusing_temporal: Client, mail_sink: MailSink, tmp_path: Path
) -> None:
    async with operations_stack(refusing_temporal, tmp_path, mail_sink, with_worker=True) as ops:
        order = domain_order()
        journey = await ops.directory.start(order)
        await refusing_temporal.get_workflow_handle(journey.journey_id).signal(PAUSE_JOURNEY_SIGNAL)
        mine = pb.JourneyFilter(customer_id=order.customer.id, paused=True)
        await eventually(lambda: ops.client.count_journeys(mine), lambda a: a.count == 1)

        with pytest.raises(TooManyBulkOperationsError, match="wait for one to finish"):
            await ops.client.start_bulk_operation(pb.BULK_ACTION_RESUME, mine, reason="busy")

        pause = await ops.client.pause_sending(
            pb.PAUSE_SCOPE_KIND_CATEGORY, "marketing", reason="freeze"
        )
        resumed = await ops.client.resume_sending(pause.pause_id)
        assert resumed.pause.HasField("resumed_at")
        assert resumed.job_id == ""  # no batch: the journeys are signalled one by one
        await eventually(
            lambda: signals_of(refusing_temporal, journey.journey_id),
            lambda names: SENDING_RESUMED_SIGNAL in names,
        )
