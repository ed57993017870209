"""StartJourney -> confirmation email in the sink, sequentially, against the baseline.

    make bench-latency            # 300 runs each
    .venv/bin/python -m engine.bench.latency --runs 50

Starts its own stack like ``aftercare run`` (dev server on a file database with
the same pragmas, worker, gRPC API, aiosmtpd sink), all on free ports.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

from clients import AftercareClient
from engine.api.server import build_server
from engine.bench.baseline import BaselineWorkflow, baseline_echo
from engine.bench.stats import LatencySummary
from engine.codec.runtime import converter_for
from engine.database.migrate import upgrade_database
from engine.devstack.mail_sink import MailSink
from engine.devstack.temporal_server import TemporalDevServer
from engine.journeys import JourneyDirectory
from engine.logging import configure_logging
from engine.samples import sample_order
from engine.settings import Settings
from engine.worker import journey_worker


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _baseline(client: Client, runs: int) -> list[float]:
    queue = f"baseline-{uuid.uuid4().hex[:6]}"
    samples = []
    async with Worker(
        client, task_queue=queue, workflows=[BaselineWorkflow], activities=[baseline_echo]
    ):
        for n in range(runs + 5):
            started = time.perf_counter()
            await client.execute_workflow(
                BaselineWorkflow.run, "hi", id=f"baseline-{queue}-{n}", task_queue=queue
            )
            if n >= 5:  # the first runs warm caches and connections
                samples.append(time.perf_counter() - started)
    return samples


async def _journeys(api: AftercareClient, sink: MailSink, runs: int) -> list[float]:
    samples = []
    prefix = uuid.uuid4().hex[:6]
    for n in range(runs + 5):
        order_id = f"BENCH-{prefix}-{n}"
        before = len(sink.handler.received)
        started = time.perf_counter()
        await api.start_journey(sample_order(order_id, n))
        await sink.handler.wait_for(before + 1, seconds=60)
        if n >= 5:
            samples.append(time.perf_counter() - started)
    return samples


async def measure(runs: int) -> LatencyReport:
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        server = TemporalDevServer(port=_free_port(), ui_port=None, db_file=state / "temporal.db")
        sink = MailSink("127.0.0.1", 0, None)
        await sink.start()
        await server.start()
        try:
            settings = Settings(
                _env_file=None,
                state_dir=state,
                temporal_address=server.address,
                smtp_port=sink.port,
                grpc_port=_free_port(),
            )
            upgrade_database(settings.resolved_database_url)
            client = await Client.connect(server.address, data_converter=converter_for(settings))
            baseline = LatencySummary.of(await _baseline(client, runs))
            async with journey_worker(client, settings) as worker, worker:
                api_server = build_server(
                    JourneyDirectory(client, settings.task_queue), settings.grpc_target
                )
                await api_server.start()
                async with AftercareClient(settings.grpc_target) as api:
                    journey = LatencySummary.of(await _journeys(api, sink, runs))
                await api_server.stop(1)
        finally:
            await server.stop()
            await sink.stop()
    return LatencyReport(runs=runs, baseline=baseline, journey=journey)


@dataclass(frozen=True)
class LatencyReport:
    runs: int
    baseline: LatencySummary
    journey: LatencySummary

    def table(self) -> str:
        rows = [f"{'figure':<40}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}"]
        for name, row in (
            ("bare Temporal workflow+activity", self.baseline),
            ("StartJourney -> email", self.journey),
        ):
            rows.append(f"{name:<40}{row.p50_ms:>10.1f}{row.p95_ms:>10.1f}{row.p99_ms:>10.1f}")
        rows.append(
            f"ratio p50 {self.journey.p50_ms / self.baseline.p50_ms:.2f}x, "
            f"p99 {self.journey.p99_ms / self.baseline.p99_ms:.2f}x ({self.runs} runs)"
        )
        return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    configure_logging("WARNING")
    report = asyncio.run(measure(args.runs))
    print(report.table())
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2))


if __name__ == "__main__":
    main()
