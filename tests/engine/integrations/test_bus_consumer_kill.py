"""``aftercare consume`` SIGKILLed in the middle of a batch, then started again: every
order gets its journey and every event reaches it, nothing is applied twice (real
RabbitMQ, real dev server, real worker, real SMTP)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aftercare.v1 import journey_pb2 as pb

from engine.cli.samples import sample_order, sample_shipment
from engine.devstack.mail_sink import MailSink
from engine.devstack.temporal_server import TemporalDevServer
from engine.platform.database.migrate import upgrade_database
from engine.platform.settings import Settings
from engine.platform.temporal.connection import connect
from engine.processes.dev_stack import with_dev_secrets
from engine.processes.worker import journey_worker
from tests.engine.integrations.bus_support import BROKER_URL, Broker, broker_queue
from tests.support.databases import sqlite_url
from tests.support.waiting import eventually
from workflows.order_journey import OrderJourney

AFTERCARE = Path(sys.executable).parent / "aftercare"
# `make bus-kill` runs 200 (AFTERCARE_BUS_KILL_ORDERS); `make test` 20.
ORDERS = int(os.environ.get("AFTERCARE_BUS_KILL_ORDERS", "20"))


@asynccontextmanager
async def consumer_process(
    env: dict[str, str], log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    with log.open("ab") as output:  # read when the test fails
        process = await asyncio.create_subprocess_exec(
            str(AFTERCARE), "consume", env=env, stdout=output, stderr=output
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 30)


async def left_in(broker: Broker) -> int:
    return await broker.waiting()


async def test_a_consumer_killed_mid_batch_loses_nothing_and_repeats_nothing(
    temporal_server: TemporalDevServer, mail_sink: MailSink, tmp_path: Path
) -> None:
    database = sqlite_url(tmp_path)
    upgrade_database(database)
    settings = with_dev_secrets(
        Settings(
            _env_file=None,
            state_dir=tmp_path,
            temporal_address=temporal_server.address,
            task_queue=f"consume-{uuid.uuid4().hex[:8]}",
            database_url=database,
            smtp_port=mail_sink.port,
        )
    )
    assert settings.secret_key is not None
    assert settings.codec_keys is not None
    client = await connect(settings)  # the codec the consumer process uses too
    async with broker_queue("kill") as broker:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERCARE_")}
        env.update(
            AFTERCARE_TEMPORAL_ADDRESS=temporal_server.address,
            AFTERCARE_TASK_QUEUE=settings.task_queue,
            AFTERCARE_DATABASE_URL=database,
            AFTERCARE_STATE_DIR=str(tmp_path),
            AFTERCARE_SECRET_KEY=settings.secret_key.get_secret_value(),
            AFTERCARE_CODEC_KEYS=settings.codec_keys.get_secret_value(),
            AFTERCARE_BROKER_URL=BROKER_URL,
            AFTERCARE_BROKER_QUEUE=broker.queue,
            AFTERCARE_BROKER_PREFETCH="4",
            AFTERCARE_LOG_FORMAT="json",
        )
        prefix = f"KILL-{uuid.uuid4().hex[:6]}"
        order_ids = [f"{prefix}-{n}" for n in range(ORDERS)]
        for index, order_id in enumerate(order_ids):
            await broker.publish(pb.StartJourneyRequest(order=sample_order(order_id, index)))
            await broker.publish(
                pb.RecordEventRequest(
                    order_id=order_id,
                    event=pb.OrderEvent(
                        event_id=f"ship-{order_id}",
                        type=pb.EVENT_TYPE_SHIPPED,
                        shipment=sample_shipment(order_id),
                    ),
                )
            )
        total = 2 * ORDERS

        async with journey_worker(client, settings) as worker, worker:
            async with consumer_process(env, tmp_path / "consume.log") as first:
                # Some of the batch taken, most still on the broker: kill it. (The
                # generous wait is for the process's start on a loaded machine.)
                await eventually(
                    lambda: left_in(broker), lambda n: n <= total - 12, seconds=300, interval=0.02
                )
                first.kill()
                await first.wait()
            # The unacknowledged part of its batch is back on the broker.
            remaining = await eventually(
                lambda: left_in(broker), lambda n: n > 0, seconds=10, interval=0.1
            )
            assert 0 < remaining < total

            async with consumer_process(env, tmp_path / "consume.log"):
                await eventually(lambda: left_in(broker), lambda n: n == 0, seconds=300)

                def mine() -> Counter[tuple[str, str]]:
                    return Counter(
                        (m.message["X-Aftercare-Journey"], m.message["X-Aftercare-Step"])
                        for m in mail_sink.handler.received
                        if str(m.message["X-Aftercare-Journey"]).startswith(f"order-{prefix}-")
                    )

                sent = await eventually(
                    lambda: asyncio.sleep(0, result=mine()),
                    lambda found: len(found) == 2 * ORDERS,
                    seconds=180,
                    interval=0.5,
                )
            # Every journey: one confirmation, one shipping notice, the event taken once.
            assert set(sent.values()) == {1}
            for order_id in order_ids:
                handle = client.get_workflow_handle_for(OrderJourney.run, f"order-{order_id}")
                state = await handle.query(OrderJourney.state)
                assert state.seen_event_ids.count(f"ship-{order_id}") == 1
                assert [m.step for m in state.sent] == ["order_confirmation", "shipping_notice"]
                await handle.terminate("test over")
        assert await broker.dead_letters() == []
