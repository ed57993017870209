"""What the benchmarks run: the bare-Temporal baseline and journeys through the API,
one after another (latency) or many at once (throughput, in-flight calls bounded)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aftercare.v1 import journey_pb2 as pb
from temporalio.client import Client, WorkflowHandle

from clients import AftercareClient
from engine.cli.samples import sample_order, sample_shipment
from engine.devstack.mail_sink import MailSink
from tools.bench.baseline import BaselineWorkflow

# The first runs warm caches and connections; they are not counted.
WARMUP_RUNS = 5
MAIL_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Throughput:
    count: int
    concurrency_limit: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.count / self.seconds


@dataclass(frozen=True)
class JourneySamples:
    confirmation: list[float]
    shipping: list[float]


def bench_order(order_id: str, variant: int) -> pb.Order:
    """A sample order from a customer of its own: the samples share three customers,
    and a new consumables journey signals every running journey of its customer
    (supersede_replenishment), which would make the benchmark quadratic."""
    order = sample_order(order_id, variant)
    order.customer.id = f"cus-{order_id}"
    return order


def _run_id() -> str:
    return uuid.uuid4().hex[:6]


async def bounded(count: int, limit: int, call: Callable[[int], Awaitable[object]]) -> None:
    """``call(0..count-1)``, at most ``limit`` of them in flight at once."""
    gate = asyncio.Semaphore(limit)

    async def one(n: int) -> None:
        async with gate:
            await call(n)

    await asyncio.gather(*(one(n) for n in range(count)))


async def baseline_sequential(client: Client, queue: str, runs: int) -> list[float]:
    samples = []
    for n in range(runs + WARMUP_RUNS):
        started = time.perf_counter()
        await client.execute_workflow(
            BaselineWorkflow.run, "hi", id=f"{queue}-seq-{n}", task_queue=queue
        )
        if n >= WARMUP_RUNS:
            samples.append(time.perf_counter() - started)
    return samples


async def baseline_concurrent(client: Client, queue: str, count: int, limit: int) -> Throughput:
    """``count`` workflows started at once (``limit`` start calls in flight), like the
    journeys below: the time until every one has completed."""
    handles: list[WorkflowHandle[Any, Any]] = []

    async def one(n: int) -> None:
        handles.append(
            await client.start_workflow(
                BaselineWorkflow.run, "hi", id=f"{queue}-con-{n}", task_queue=queue
            )
        )

    started = time.perf_counter()
    await bounded(count, limit, one)
    # Bounded too: each wait is a long poll, and the server refuses more than a few
    # hundred at once ("namespace concurrent poller limit exceeded"). Waiting on the
    # early ones while later ones finish costs nothing: those then answer at once.
    await bounded(count, limit, lambda n: handles[n].result())
    return Throughput(count, limit, time.perf_counter() - started)


async def journeys_sequential(
    api: AftercareClient, sink: MailSink, runs: int, *, shipped: bool = True
) -> JourneySamples:
    """Per journey: StartJourney -> confirmation in the sink, then (if ``shipped``)
    RecordEvent(shipped) -> shipping email in the sink."""
    confirmation: list[float] = []
    shipping: list[float] = []
    prefix = _run_id()
    for n in range(runs + WARMUP_RUNS):
        order_id = f"BENCH-{prefix}-{n}"
        before = len(sink.handler.received)
        started = time.perf_counter()
        await api.start_journey(bench_order(order_id, n))
        await sink.handler.wait_for(before + 1, MAIL_TIMEOUT_SECONDS)
        confirmed = time.perf_counter()
        if shipped:
            event = pb.OrderEvent(event_id=f"{order_id}-shipped", type=pb.EVENT_TYPE_SHIPPED)
            event.shipment.CopyFrom(sample_shipment(order_id))
            await api.record_event(order_id, event)
            await sink.handler.wait_for(before + 2, MAIL_TIMEOUT_SECONDS)
        if n >= WARMUP_RUNS:
            confirmation.append(confirmed - started)
            if shipped:
                shipping.append(time.perf_counter() - confirmed)
    return JourneySamples(confirmation, shipping)


async def journeys_concurrent(
    api: AftercareClient, sink: MailSink, count: int, limit: int
) -> Throughput:
    """``count`` journeys started at once (``limit`` StartJourney calls in flight):
    the time until every confirmation email is in the sink."""
    prefix = _run_id()
    before = len(sink.handler.received)

    async def one(n: int) -> None:
        await api.start_journey(bench_order(f"BENCH-{prefix}-C{n}", n))

    started = time.perf_counter()
    await bounded(count, limit, one)
    # Generous: every confirmation must arrive, however slow the machine.
    await sink.handler.wait_for(before + count, MAIL_TIMEOUT_SECONDS + count)
    return Throughput(count, limit, time.perf_counter() - started)
