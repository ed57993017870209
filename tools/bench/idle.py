"""Idle capacity and the wake storm: how many sleeping journeys one deployment
carries, and how fast it drains thousands of timers falling due at one instant.

    make bench-idle
    .venv/bin/python -m tools.bench.idle --journeys 20000 --storm 5000 [--large]

1. **Sleeping journeys.** ``--journeys`` default-plan journeys are started through
   the gRPC API (``--in-flight`` calls at a time); each sends its order confirmation
   and goes to sleep waiting for ``shipped`` (its next timer is days away). Reported:
   StartJourney calls accepted per second, journeys confirmed (and asleep) per
   second, and the resident memory of the worker process and of the Temporal dev
   server at a few points (e.g. after 5,000 and after 20,000 journeys). The worker
   runs as its own process (``aftercare worker``) so its memory is its own: it
   should stay bounded by its workflow cache (``max_cached_workflows``), not grow
   with the number of journeys, which live on the server.
2. **Wake storm.** ``--storm`` more journeys are started with the bench plan
   ``tools/bench/plans/wake_storm.yaml``: one step at a local time of day, moved to
   a whole minute by which all of them are asleep (starts paced to the worker), so
   every timer falls due at the same instant, as "at 08:00 local" does every
   morning for the orders of the day before. Reported: the time from that instant
   until the last email is in the sink, the drain rate, and the delay from due to
   arrival (p50, p95, p99).
3. Rates are also given as a ratio to the bare-Temporal baseline's completions per
   second (tools/bench/baseline.py) measured on the same stack in the same run.

Memory and CPU come from ``/proc`` (Linux).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import grpc
from aftercare.v1 import journey_pb2 as pb
from aiosmtpd.smtp import SMTP, Envelope, Session
from temporalio.client import Client

from activities.email.rendering import TEMPLATE_NAMES
from clients import AftercareClient, AftercareError
from engine.devstack.mail_sink import MailboxHandler, MailSink
from engine.journeys import parsing
from engine.journeys.directory import initial_search_attributes
from engine.platform.logging import configure_logging
from engine.platform.settings import Settings
from engine.processes.worker import journey_worker
from tools.bench.baseline_worker import baseline_worker
from tools.bench.procfs import cpu_seconds, rss_bytes, tree_rss_bytes
from tools.bench.stack import Stack, bench_stack, serving_api, wait_for_pollers, worker_process
from tools.bench.stats import LatencySummary
from tools.bench.workloads import Throughput, baseline_concurrent, bench_order, bounded
from workflows import search_attributes as sa
from workflows.ids import journey_id_for
from workflows.order_journey import OrderJourney
from workflows.orders import Order
from workflows.plans.catalogue import content_hash, load_plan
from workflows.plans.model import PinnedPlan
from workflows.state import JourneyInput

DEFAULT_JOURNEYS = 20_000
LARGE_JOURNEYS = 100_000
DEFAULT_STORM = 5_000
# Calls in flight: enough to keep the server busy. The server, not the client,
# sets the rate (about 20 starts/s on 2 shared cores); more in flight only queues
# calls longer, and at 100 the slowest pass the client's 10 s deadline.
DEFAULT_IN_FLIGHT = 20
DEFAULT_JSON = Path(".aftercare/bench-idle.json")
STORM_PLAN_FILE = Path(__file__).resolve().parent / "plans" / "wake_storm.yaml"
ASLEEP_PLAN_FILE = Path(__file__).resolve().parent / "plans" / "asleep.yaml"
# Started straight onto the server with the asleep plan, the server takes many
# more starts a second; more first tasks may wait at once.
ASLEEP_IN_FLIGHT = 100
SLEEPER_POLL_SECONDS = 5.0

CONFIRMATION_STEP = "order_confirmation"
STORM_STEP = "shipping_delay"
# The sample basket of apparel: its journeys run the default plan (coffee and
# skincare would choose the consumables plan).
DEFAULT_PLAN_VARIANT = 1
# Memory is read after this many journeys (those below the run's count), then at the end.
MEMORY_MARKS = (5_000, 20_000, 50_000)

# "Settled": the worker used under 5% of a core over the last three seconds.
QUIET_WINDOW_SECONDS = 3.0
QUIET_CPU_SHARE = 0.05
SETTLE_LIMIT_SECONDS = 600.0
# The storm's instant: this many times the time the pilot's rate predicts for the
# storm's journeys, plus a fixed margin (then up to the next minute).
STORM_LEAD_FACTOR = 1.5
STORM_LEAD_SECONDS = 30.0
# The pilot that times the storm: a tenth of it, at most this many journeys, due
# this long after (so never during the bench).
PILOT_JOURNEYS = 500
PILOT_DELAY = timedelta(hours=12)
# StartJourney calls that end in these are repeated (the call is idempotent).
RETRIED_CODES = frozenset(
    {
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
START_ATTEMPTS = 8
# Generous waits: every email must arrive, however slow the shared machine is.
MAIL_WAIT_BASE_SECONDS = 120.0
MAIL_WAIT_PER_MESSAGE_SECONDS = 1.0


# --- processes: settling -------------------------------------------------------------------


async def until_quiet(pid: int, limit_seconds: float = SETTLE_LIMIT_SECONDS) -> bool:
    """Wait until the process is nearly idle (False if it never got there)."""
    samples = [(time.monotonic(), cpu_seconds(pid))]
    deadline = samples[0][0] + limit_seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        now = (time.monotonic(), cpu_seconds(pid))
        samples.append(now)
        window = [s for s in samples if now[0] - s[0] <= QUIET_WINDOW_SECONDS + 0.5]
        first = window[0]
        if now[0] - first[0] >= QUIET_WINDOW_SECONDS and (now[1] - first[1]) < (
            QUIET_CPU_SHARE * (now[0] - first[0])
        ):
            return True
    return False


# --- the sink: arrivals per step, not the mails themselves ---------------------------------


@dataclass(frozen=True)
class Arrival:
    at: float  # wall clock, seconds since the epoch
    message_id: str


@dataclass
class ArrivalLog(MailboxHandler):
    """Counts the emails that arrive per step (``X-Aftercare-Step``) and keeps when
    each email of a ``watched`` step came, and nothing else: this bench sends tens
    of thousands, which a sink keeping every message would have to hold."""

    watched: frozenset[str] = frozenset({STORM_STEP})
    counts: Counter[str] = field(default_factory=Counter)
    arrivals: dict[str, list[Arrival]] = field(default_factory=dict)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        arrived = time.time()
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode()
        head = content.split(b"\r\n\r\n", 1)[0]
        headers = BytesHeaderParser(policy=compat32).parsebytes(head)
        step = str(headers.get("X-Aftercare-Step", ""))
        async with self._changed:
            self.counts[step] += 1
            if step in self.watched:
                arrival = Arrival(arrived, str(headers.get("Message-ID", "")))
                self.arrivals.setdefault(step, []).append(arrival)
            self._changed.notify_all()
        return "250 Message accepted for delivery"

    async def wait_for_step(self, step: str, count: int, seconds: float) -> None:
        """Until ``count`` emails of ``step`` have arrived; TimeoutError after ``seconds``."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: self.counts[step] >= count), seconds
            )


def _mail_wait(count: int) -> float:
    return MAIL_WAIT_BASE_SECONDS + MAIL_WAIT_PER_MESSAGE_SECONDS * count


# --- the report -------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryPoint:
    journeys: int  # sleeping journeys started by this bench so far
    worker_rss_mb: float
    server_rss_mb: float
    settled: bool  # the worker had gone quiet when measured


@dataclass(frozen=True)
class WakeStorm:
    count: int
    due_at: datetime  # the one instant every storm journey's timer falls due
    start_seconds: float  # starting all of them (Temporal client, in flight bounded)
    lead_seconds: float  # from the moment all were asleep to the due instant
    asleep_before_due: int  # journeys whose first task (plan pinned, timer set) ran before it
    arrived: int  # storm emails in the sink
    distinct: int  # distinct Message-IDs among them (one per journey: exactly once)
    early: int  # arrived before the due instant (should be none)
    drain_seconds: float  # due instant -> last email in the sink
    delay: LatencySummary  # due instant -> arrival, per email

    @property
    def per_second(self) -> float:
        return self.arrived / self.drain_seconds if self.drain_seconds > 0 else math.inf


@dataclass(frozen=True)
class IdleCapacity:
    # Order ids: <order_prefix>-<n> sleeping, <order_prefix>-S<n> in the storm,
    # <order_prefix>-P<n> the pilot that timed it.
    order_prefix: str
    journeys: int
    in_flight: int
    cache_size: int | None  # the journey worker's max_cached_workflows
    start_seconds: float  # all StartJourney calls, stages added
    confirmed_seconds: float  # first start -> last confirmation in the sink, stages added
    confirmed: int  # order confirmations in the sink: one per journey
    start_retries: int  # StartJourney calls repeated after a deadline or UNAVAILABLE
    memory: tuple[MemoryPoint, ...]  # the first at 0 journeys
    storm: WakeStorm
    # The machine's load average over the last 15 minutes when done: on a shared
    # machine it says how much of it this run had.
    load_average: float = 0.0
    # Started asleep on tools/bench/plans/asleep.yaml (nothing sent) rather than
    # through StartJourney on the default plan (order confirmation first).
    asleep_from_start: bool = False

    @property
    def start_rate(self) -> float:
        return self.journeys / self.start_seconds

    @property
    def confirmed_rate(self) -> float:
        return self.journeys / self.confirmed_seconds

    def as_json(self, baseline: Throughput) -> dict[str, Any]:
        base = baseline.per_second
        storm = self.storm
        return {
            "journeys": self.journeys,
            "asleep_from_start": self.asleep_from_start,
            "in_flight": self.in_flight,
            "worker_max_cached_workflows": self.cache_size,
            "start_seconds": self.start_seconds,
            "start_per_second": self.start_rate,
            "start_ratio": self.start_rate / base,
            "confirmations_in_sink": self.confirmed,
            "start_retries": self.start_retries,
            "confirmed_seconds": self.confirmed_seconds,
            "confirmed_per_second": self.confirmed_rate,
            "confirmed_ratio": self.confirmed_rate / base,
            "memory": [asdict(point) for point in self.memory],
            "wake_storm": {
                **asdict(storm),
                "due_at": storm.due_at.isoformat(),
                "per_second": storm.per_second,
                "ratio": storm.per_second / base,
            },
            "baseline_per_second": base,
            "load_average_15min": self.load_average,
        }

    def table(self, baseline: Throughput) -> list[str]:
        base = baseline.per_second
        cache = "default" if self.cache_size is None else f"{self.cache_size:,}"
        kind = (
            "journeys started asleep (tools/bench/plans/asleep.yaml)"
            if self.asleep_from_start
            else "sleeping default-plan journeys"
        )
        lines = [
            f"idle capacity: {self.journeys:,} {kind} (worker process, workflow cache {cache})",
            f"{'figure':<52}{'aftercare':>11}{'baseline':>11}{'ratio':>8}",
        ]

        def rate(name: str, ours: float) -> None:
            lines.append(f"{name:<52}{ours:>11.1f}{base:>11.1f}{ours / base:>7.2f}x")

        def plain(name: str, ours: float, digits: int = 1) -> None:
            lines.append(f"{name:<52}{ours:>11.{digits}f}")

        retried = f", {self.start_retries} retried" if self.start_retries else ""
        if self.asleep_from_start:
            rate(f"journeys started and asleep/s ({self.in_flight} in flight)", self.start_rate)
        else:
            rate(f"StartJourney accepted/s ({self.in_flight} in flight{retried})", self.start_rate)
            rate("journeys confirmed and asleep/s", self.confirmed_rate)
        for point in self.memory:
            note = "" if point.settled else " (still busy)"
            plain(f"worker RSS MB, {point.journeys:,} journeys{note}", point.worker_rss_mb)
            plain(f"dev server RSS MB, {point.journeys:,} journeys{note}", point.server_rss_mb)
        if len(self.memory) >= 3:
            # Past the cache's worth of journeys, growth per journey is what matters.
            first, last = self.memory[1], self.memory[-1]
            added = last.journeys - first.journeys
            if added > 0:
                for who, before, after in (
                    ("worker", first.worker_rss_mb, last.worker_rss_mb),
                    ("dev server", first.server_rss_mb, last.server_rss_mb),
                ):
                    plain(
                        f"{who} KB per journey, {first.journeys:,} -> {last.journeys:,}",
                        (after - before) * 1024 / added,
                        2,
                    )
        storm = self.storm
        lines.append(
            f"wake storm: {storm.count:,} journeys due at {storm.due_at:%H:%M:%S} UTC "
            f"({storm.asleep_before_due:,} asleep {storm.lead_seconds:.0f} s before it, "
            f"started in {storm.start_seconds:.0f} s)"
        )
        plain("storm: due -> last email in the sink, s", storm.drain_seconds)
        rate("storm: drain, emails/s", storm.per_second)
        for name, value in (
            ("p50", storm.delay.p50_ms),
            ("p95", storm.delay.p95_ms),
            ("p99", storm.delay.p99_ms),
        ):
            plain(f"storm: due -> in the sink, {name} ms", value, 0)
        lines.append(
            f"(storm emails arrived {storm.arrived:,} of {storm.count:,}, "
            f"{storm.distinct:,} distinct, {storm.early} before due; baseline: bare "
            f"workflow+activity completions/s, {baseline.count} at once)"
        )
        lines.append(f"(machine load average, last 15 minutes: {self.load_average:.1f})")
        return lines


# --- the workload -----------------------------------------------------------------------


async def _start_with_retries(api: AftercareClient, order: pb.Order, retries: Counter[str]) -> None:
    """StartJourney, repeated (it is idempotent) when the call's deadline passes or
    the service is briefly unavailable, as a backend service would: on a loaded
    machine some of a hundred calls in flight take longer than the client's 10 s."""
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            await api.start_journey(order)
            return
        except AftercareError as err:
            if err.code not in RETRIED_CODES or attempt == START_ATTEMPTS:
                raise
            retries[err.code.name] += 1
            await asyncio.sleep(attempt)


def memory_marks(journeys: int) -> list[int]:
    """Where memory is read: the standard marks below ``journeys`` (or its half,
    for a small run), then ``journeys`` itself."""
    marks = [mark for mark in MEMORY_MARKS if mark < journeys] or [journeys // 2]
    return [mark for mark in marks if mark > 0] + [journeys]


async def worker_cache_size(client: Client, settings: Settings) -> int | None:
    """The workflow cache the journey worker is built with (engine/processes/worker.py decides)."""
    async with journey_worker(client, settings) as group:
        for worker in group.workers:
            if worker.config().get("workflows"):
                size = worker.config().get("max_cached_workflows")
                return int(size) if size is not None else None
    return None


def storm_due(now: datetime, needed_seconds: float) -> datetime:
    """The first whole minute (times of day count minutes) at least
    ``needed_seconds`` after ``now``."""
    earliest = now + timedelta(seconds=needed_seconds)
    minute = earliest.replace(second=0, microsecond=0)
    return minute if minute >= earliest else minute + timedelta(minutes=1)


def storm_plan(due: datetime, timezone: str, source: Path = STORM_PLAN_FILE) -> PinnedPlan:
    """The wake-storm plan, validated like any plan file, with its timed step moved
    to ``due``'s wall time in ``timezone`` (and pinned with the hash of that)."""
    pinned = load_plan(source, known_templates=TEMPLATE_NAMES)
    clock = due.astimezone(ZoneInfo(timezone)).strftime("%H:%M")
    steps = tuple(
        dataclasses.replace(step, at=clock) if step.id == STORM_STEP else step
        for step in pinned.plan.steps
    )
    if not any(step.id == STORM_STEP for step in steps):
        raise ValueError(f"{source}: no step {STORM_STEP!r} to time the storm with")
    plan = dataclasses.replace(pinned.plan, steps=steps)
    return PinnedPlan(plan=plan, content_hash=content_hash(plan), source=pinned.source)


def _domain_order(order_id: str) -> Order:
    return parsing.valid_order(bench_order(order_id, DEFAULT_PLAN_VARIANT), now=datetime.now(UTC))


async def _count_pinned(client: Client, label: str) -> int:
    counted = await client.count_workflows(f'{sa.JOURNEY_PLAN.name} = "{label}"')
    return counted.count


async def _start_sleepers(
    client: Client, settings: Settings, orders: Sequence[Order], pinned: PinnedPlan, in_flight: int
) -> None:
    """Start a journey on ``pinned`` for each of ``orders`` (``in_flight`` calls at a
    time) and wait until the server counts all of them and those before asleep.

    Unlike the storm's starts these are not paced to the worker: a backlog of first
    tasks only delays when a journey falls asleep, and its first message is a month
    away. Counting while starting would cost more than it tells: the count scans
    every journey on the plan, tens of thousands of rows."""

    async def start(n: int) -> None:
        order = orders[n]
        await client.start_workflow(
            OrderJourney.run,
            JourneyInput(order=order, plan=pinned),
            id=journey_id_for(order.order_id),
            task_queue=settings.task_queue,
            search_attributes=initial_search_attributes(order),
        )

    await bounded(len(orders), in_flight, start)


async def _wait_until_asleep(client: Client, label: str, count: int) -> None:
    """Until ``count`` journeys on the plan ``label`` ran their first task (the plan
    label is set by it), polling the server's count every few seconds."""
    while True:
        if await _count_pinned(client, label) >= count:
            return
        await asyncio.sleep(SLEEPER_POLL_SECONDS)


class StormMissed(RuntimeError):
    """Some storm journeys were still not asleep at the due instant: their first
    task ran after it, so they are due tomorrow, and the storm cannot be measured."""


async def _start_asleep(
    client: Client,
    settings: Settings,
    orders: Sequence[Order],
    pinned: PinnedPlan,
    in_flight: int,
    due: datetime | None = None,
    earlier: int = 0,
) -> float:
    """Start a journey on ``pinned`` for each of ``orders`` and return the seconds
    until every one is asleep (its first task run: plan pinned, timer set).

    Paced: no more than ``in_flight`` journeys wait for their first task at a time.
    The server accepts starts far faster than the worker runs them, and a backlog of
    thousands would still be queued at the storm's instant. Raises StormMissed if
    ``due`` passes before all are asleep (their `at` would fall on the next day).
    ``earlier``: journeys started before on a plan of the same label (the pilot's),
    which the server's count includes."""

    async def start(order: Order) -> None:
        await client.start_workflow(
            OrderJourney.run,
            JourneyInput(order=order, plan=pinned),
            id=journey_id_for(order.order_id),
            task_queue=settings.task_queue,
            search_attributes=initial_search_attributes(order),
        )

    async def count_asleep() -> int:
        if due is not None and datetime.now(UTC) >= due:
            asleep = await _count_pinned(client, pinned.label) - earlier
            raise StormMissed(
                f"wake storm: only {asleep:,} of {len(orders):,} journeys were asleep at "
                f"their due instant {due:%H:%M:%S} UTC (the worker ran their first tasks "
                f"slower than the pilot's); run again on a quieter machine"
            )
        await asyncio.sleep(0.5)
        return await _count_pinned(client, pinned.label) - earlier

    began = time.perf_counter()
    asleep = 0
    for first in range(0, len(orders), in_flight):
        batch = orders[first : first + in_flight]
        await asyncio.gather(*(start(order) for order in batch))
        while first + len(batch) - asleep > in_flight:
            asleep = await count_asleep()
    while asleep < len(orders):
        asleep = await count_asleep()
    return time.perf_counter() - began


async def wake_storm(
    client: Client,
    settings: Settings,
    log: ArrivalLog,
    *,
    prefix: str,
    count: int,
    in_flight: int,
    progress: Callable[[str], None] = lambda message: None,
) -> WakeStorm:
    """Start ``count`` journeys on the storm plan, all due at one instant, and wait
    until every one of their emails is in the sink.

    Every journey must be asleep before the instant, or its `at` would fall on the
    next day. The instant is therefore chosen from a pilot run just before: a tenth
    as many journeys (at most ``PILOT_JOURNEYS``) on the same plan, due half a day
    later, started the same way on the same, loaded stack; the storm gets
    ``STORM_LEAD_FACTOR`` times the time their rate predicts, plus a margin. The
    pilot's journeys stay asleep until after the bench is over.
    """
    timezone = _domain_order(f"{prefix}-P0").customer.timezone
    pilot = [
        _domain_order(f"{prefix}-P{n}")
        for n in range(max(in_flight, min(count // 10, PILOT_JOURNEYS)))
    ]
    pilot_plan = storm_plan(datetime.now(UTC) + PILOT_DELAY, timezone)
    pilot_seconds = await _start_asleep(client, settings, pilot, pilot_plan, in_flight)
    pilot_rate = len(pilot) / pilot_seconds
    progress(f"wake storm: pilot of {len(pilot):,} journeys asleep at {pilot_rate:.1f}/s")

    orders = [_domain_order(f"{prefix}-S{n}") for n in range(count)]
    needed = STORM_LEAD_FACTOR * count / pilot_rate + STORM_LEAD_SECONDS
    due = storm_due(datetime.now(UTC), needed)
    pinned = storm_plan(due, timezone)
    progress(f"wake storm: {count:,} journeys to start, all due at {due:%H:%M:%S} UTC")
    start_seconds = await _start_asleep(
        client, settings, orders, pinned, in_flight, due, earlier=len(pilot)
    )
    asleep = count
    lead = (due - datetime.now(UTC)).total_seconds()
    progress(
        f"wake storm: {count:,} started in {start_seconds:.0f} s and asleep "
        f"{lead:.0f} s before they are due"
    )

    await log.wait_for_step(STORM_STEP, count, lead + _mail_wait(count))
    arrivals = log.arrivals.get(STORM_STEP, [])
    due_ts = due.timestamp()
    delays = [arrival.at - due_ts for arrival in arrivals]
    return WakeStorm(
        count=count,
        due_at=due,
        start_seconds=start_seconds,
        lead_seconds=lead,
        asleep_before_due=asleep,
        arrived=len(arrivals),
        distinct=len({arrival.message_id for arrival in arrivals}),
        early=sum(1 for delay in delays if delay < 0),
        drain_seconds=max(delays),
        delay=LatencySummary.of([max(delay, 0.0) for delay in delays]),
    )


async def idle_capacity(
    stack: Stack,
    journeys: int,
    storm: int,
    *,
    in_flight: int = DEFAULT_IN_FLIGHT,
    marks: Sequence[int] | None = None,
    progress: Callable[[str], None] | None = None,
    asleep_from_start: bool = False,
) -> IdleCapacity:
    """The whole idle bench on ``stack``, with the journey worker as a child process
    (any worker of the stack's task queue must be stopped before).

    ``asleep_from_start``: start the sleeping journeys on the server directly with
    tools/bench/plans/asleep.yaml (nothing sent) instead of through StartJourney on
    the default plan, to reach large counts in a fraction of the time."""
    if journeys < 1:
        raise ValueError(f"journeys: at least 1, got {journeys}")
    if storm < 2:
        raise ValueError(f"storm: at least 2 (percentiles need two), got {storm}")
    if in_flight < 1:
        raise ValueError(f"in_flight: at least 1, got {in_flight}")
    marks = list(marks) if marks is not None else memory_marks(journeys)
    if marks != sorted(set(marks)) or marks[-1] != journeys or marks[0] < 1:
        raise ValueError(f"marks: rising counts from 1 that end at journeys, got {marks}")
    say = progress or (lambda message: None)

    client, settings = stack.client, stack.settings
    server_pid = stack.server.pid
    if server_pid is None:
        raise RuntimeError("the stack's dev server is not running")
    cache_size = await worker_cache_size(client, settings)
    log = ArrivalLog(folder=None)
    sink = MailSink("127.0.0.1", 0, None)
    sink.handler = log
    await sink.start()
    try:
        # The worker mails this bench's own sink (model_copy marks it as given).
        worker_settings = settings.model_copy(update={"smtp_port": sink.port})
        async with (
            worker_process(worker_settings, stack.state_dir / "idle-worker.log") as worker,
            serving_api(stack) as api,
        ):
            await wait_for_pollers(client, settings.task_queue, [worker])
            settled = await until_quiet(worker.pid)

            def reading(count: int, quiet: bool) -> MemoryPoint:
                return MemoryPoint(
                    journeys=count,
                    worker_rss_mb=rss_bytes(worker.pid) / 2**20,
                    server_rss_mb=tree_rss_bytes(server_pid) / 2**20,
                    settled=quiet,
                )

            memory = [reading(0, settled)]
            asleep_plan = load_plan(ASLEEP_PLAN_FILE, known_templates=TEMPLATE_NAMES)
            prefix = f"IDLE-{uuid.uuid4().hex[:6]}"
            start_seconds = confirmed_seconds = 0.0
            done = 0
            retries: Counter[str] = Counter()
            for mark in marks:
                say(f"idle: starting journeys {done:,} -> {mark:,}")

                async def start(n: int, first: int = done) -> None:
                    order = bench_order(f"{prefix}-{first + n}", DEFAULT_PLAN_VARIANT)
                    await _start_with_retries(api, order, retries)

                began = time.perf_counter()
                if asleep_from_start:
                    sleepers = [_domain_order(f"{prefix}-{n}") for n in range(done, mark)]
                    await _start_sleepers(client, settings, sleepers, asleep_plan, in_flight)
                    start_seconds += time.perf_counter() - began
                    await _wait_until_asleep(client, asleep_plan.label, mark)
                else:
                    await bounded(mark - done, in_flight, start)
                    start_seconds += time.perf_counter() - began
                    await log.wait_for_step(CONFIRMATION_STEP, mark, _mail_wait(mark - done))
                confirmed_seconds += time.perf_counter() - began
                say(f"idle: {mark:,} asleep; settling")
                quiet = await until_quiet(worker.pid)
                point = reading(mark, quiet)
                memory.append(point)
                say(
                    f"idle: {mark:,} journeys, {start_seconds:.0f} s of starts, "
                    f"{confirmed_seconds:.0f} s to confirm: worker RSS "
                    f"{point.worker_rss_mb:.0f} MB, dev server RSS {point.server_rss_mb:.0f} MB"
                    + ("" if quiet else " (worker still busy)")
                )
                done = mark

            storm_report = await wake_storm(
                client,
                settings,
                log,
                prefix=prefix,
                count=storm,
                in_flight=in_flight,
                progress=say,
            )
    finally:
        await sink.stop()
    return IdleCapacity(
        order_prefix=prefix,
        journeys=journeys,
        in_flight=in_flight,
        cache_size=cache_size,
        start_seconds=start_seconds,
        confirmed_seconds=confirmed_seconds,
        confirmed=log.counts[CONFIRMATION_STEP],
        start_retries=sum(retries.values()),
        memory=tuple(memory),
        storm=storm_report,
        load_average=os.getloadavg()[2],
        asleep_from_start=asleep_from_start,
    )


# --- alone: python -m tools.bench.idle -------------------------------------------------


def _progress(since: float) -> Callable[[str], None]:
    def say(message: str) -> None:
        print(f"[{time.perf_counter() - since:7.1f} s] {message}", file=sys.stderr, flush=True)

    return say


async def measure(
    journeys: int, storm: int, in_flight: int, baseline_count: int, asleep_from_start: bool
) -> tuple[Throughput, IdleCapacity]:
    say = _progress(time.perf_counter())
    # A long run stopped with SIGTERM still stops its worker and dev server.
    this = asyncio.current_task()
    if this is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, this.cancel)
    async with bench_stack() as stack:
        say(f"stack up; baseline, {baseline_count} at once")
        async with baseline_worker(stack) as baseline_side:
            baseline = await baseline_concurrent(
                stack.baseline_client, baseline_side.queue, baseline_count, in_flight
            )
        idle = await idle_capacity(
            stack,
            journeys,
            storm,
            in_flight=in_flight,
            progress=say,
            asleep_from_start=asleep_from_start,
        )
    say("done")
    return baseline, idle


def _at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser, journeys_flag: str) -> None:
    """The idle bench's flags: ``journeys_flag`` (``--journeys`` alone,
    ``--idle-journeys`` in ``make bench``), ``--storm`` and ``--large``."""
    parser.add_argument(
        journeys_flag,
        dest="idle_journeys",
        type=_at_least(0 if journeys_flag != "--journeys" else 1),
        default=None,
        help=f"sleeping journeys (default {DEFAULT_JOURNEYS:,}; {LARGE_JOURNEYS:,} with --large)"
        + ("; 0 skips the idle bench" if journeys_flag != "--journeys" else ""),
    )
    parser.add_argument(
        "--storm",
        type=_at_least(2),
        default=DEFAULT_STORM,
        help=f"journeys due at one instant in the wake storm (default {DEFAULT_STORM:,})",
    )
    parser.add_argument(
        "--large", action="store_true", help=f"{LARGE_JOURNEYS:,} sleeping journeys"
    )


def journeys_from(args: argparse.Namespace) -> int:
    """The journey count the flags ask for (given, else by ``--large``)."""
    given: int | None = args.idle_journeys
    if given is not None:
        return given
    return LARGE_JOURNEYS if args.large else DEFAULT_JOURNEYS


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench.idle",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser, "--journeys")
    parser.add_argument(
        "--in-flight",
        type=_at_least(1),
        default=None,
        help=f"client calls in flight at most (default {DEFAULT_IN_FLIGHT}; "
        f"{ASLEEP_IN_FLIGHT} with --asleep-from-start)",
    )
    parser.add_argument(
        "--asleep-from-start",
        action="store_true",
        help="start the sleeping journeys asleep on tools/bench/plans/asleep.yaml "
        "(nothing sent) instead of through StartJourney on the default plan",
    )
    parser.add_argument(
        "--baseline",
        type=_at_least(2),
        default=500,
        help="bare-Temporal workflows at once for the baseline rate (default 500)",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"default {DEFAULT_JSON}")
    args = parser.parse_args()
    configure_logging("WARNING")
    journeys = journeys_from(args)
    in_flight = args.in_flight or (
        ASLEEP_IN_FLIGHT if args.asleep_from_start else DEFAULT_IN_FLIGHT
    )
    baseline, idle = asyncio.run(
        measure(journeys, args.storm, in_flight, args.baseline, args.asleep_from_start)
    )
    print("\n".join(idle.table(baseline)))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(idle.as_json(baseline), indent=2) + "\n")
    print(f"\nfigures written to {args.json}")


if __name__ == "__main__":
    main()
