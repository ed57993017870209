"""StartJourney -> confirmation email in the sink, sequentially, against the baseline.

    make bench-latency            # 300 runs each
    .venv/bin/python -m engine.bench.latency --runs 50

Starts its own stack like ``aftercare run`` (dev server on a file database with
the same pragmas, worker, gRPC API, aiosmtpd sink), all on free ports. The full
benchmark (throughput, cost, send path too) is ``make bench`` (engine.bench).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.bench.stack import bench_stack, serving_journeys
from engine.bench.stats import LatencySummary
from engine.bench.workloads import baseline_queue, baseline_sequential, journeys_sequential
from engine.logging import configure_logging


async def measure(runs: int) -> LatencyReport:
    async with bench_stack() as stack:
        async with baseline_queue(stack.baseline_client) as queue:
            baseline = LatencySummary.of(
                await baseline_sequential(stack.baseline_client, queue, runs)
            )
        async with serving_journeys(stack) as api:
            samples = await journeys_sequential(api, stack.sink, runs, shipped=False)
    return LatencyReport(
        runs=runs, baseline=baseline, journey=LatencySummary.of(samples.confirmation)
    )


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
