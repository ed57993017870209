"""StartJourney -> confirmation email in the sink, sequentially, against the baseline:
the latency part of ``make bench`` alone, on the same stack.

    make bench-latency            # 300 runs each
    .venv/bin/python -m tools.bench.latency --runs 50

Starts its own stack as ``make bench`` does (dev server on a file database, each
side's worker as a process of its own, the gRPC API, aiosmtpd sink, PostgreSQL
when reachable), all on free ports.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.platform.logging import configure_logging
from tools.bench.baseline_worker import baseline_worker
from tools.bench.stack import bench_database, bench_stack, serving_api, worker_process
from tools.bench.stats import LatencySummary
from tools.bench.workloads import baseline_sequential, journeys_sequential


async def measure(runs: int, database: str = "auto") -> LatencyReport:
    async with (
        bench_database(database) as (name, database_settings),
        bench_stack(database_settings) as stack,
    ):
        async with baseline_worker(stack) as baseline_side:
            baseline = LatencySummary.of(
                await baseline_sequential(stack.baseline_client, baseline_side.queue, runs)
            )
        async with (
            worker_process(stack.settings, stack.state_dir / "worker.log"),
            serving_api(stack) as api,
        ):
            samples = await journeys_sequential(api, stack.sink, runs, shipped=False)
    return LatencyReport(
        runs=runs,
        database=name,
        baseline=baseline,
        journey=LatencySummary.of(samples.confirmation),
    )


@dataclass(frozen=True)
class LatencyReport:
    runs: int
    database: str
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
            f"p99 {self.journey.p99_ms / self.baseline.p99_ms:.2f}x "
            f"({self.runs} runs, {self.database})"
        )
        return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--database", choices=("auto", "postgresql", "sqlite"), default="auto")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    configure_logging("WARNING")
    report = asyncio.run(measure(args.runs, args.database))
    print(report.table())
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2))


if __name__ == "__main__":
    main()
