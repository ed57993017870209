"""The whole benchmark on one stack, every figure beside the bare-Temporal baseline
measured in the same run, and as a ratio to it.

    make bench
    .venv/bin/python -m tools.bench --runs 100 --concurrency 2000

Latency: sequential StartJourney -> confirmation email and RecordEvent(shipped) ->
shipping email. Throughput: ``--concurrency`` journeys started at once (``--in-flight``
calls at a time) until every confirmation is in the sink. Cost: history events,
activities, timers, signals, upserts and payload bytes per recorded journey path.
Send path: ``send_message`` called directly, without Temporal, emails and SMS. Idle capacity:
``--idle-journeys`` sleeping journeys (20,000; 100,000 with ``--large``; 0 skips it)
with worker and server memory, then a wake storm of ``--storm`` timers due at one
instant (tools/bench/idle.py). ``--workflow-sandbox off`` runs both workers without
the SDK sandbox. The table is also written as JSON (``--json``, default
.aftercare/bench.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.platform.logging import configure_logging
from tools.bench.baseline_worker import baseline_worker
from tools.bench.cost import HistoryCost, recorded_costs, workflow_cost
from tools.bench.cpu import CpuPerWorkflow, per_workflow, read_cpu, stack_roles
from tools.bench.idle import IdleCapacity, idle_capacity, journeys_from
from tools.bench.idle import add_arguments as add_idle_arguments
from tools.bench.send_path import SendPath, send_path
from tools.bench.stack import (
    POSTGRES_ADMIN_DSN,
    bench_database,
    bench_stack,
    scaled_worker_processes,
    serving_api,
)
from tools.bench.stats import LatencySummary
from tools.bench.workloads import (
    Throughput,
    baseline_concurrent,
    baseline_sequential,
    journeys_concurrent,
    journeys_sequential,
)

DEFAULT_JSON = Path(".aftercare/bench.json")


@dataclass(frozen=True)
class Machine:
    nproc: int
    cpu_model: str
    python: str

    @classmethod
    def this_one(cls) -> Machine:
        model = platform.processor() or "unknown"
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        return cls(
            nproc=len(os.sched_getaffinity(0)),
            cpu_model=model,
            python=f"{platform.python_implementation()} {platform.python_version()}",
        )


@dataclass(frozen=True)
class BenchReport:
    machine: Machine
    flags: dict[str, int | str]
    baseline_latency: LatencySummary
    baseline_throughput: Throughput
    baseline_cpu: CpuPerWorkflow
    baseline_cost: HistoryCost
    confirmation: LatencySummary
    shipping: LatencySummary
    journey_throughput: Throughput
    journey_cpu: CpuPerWorkflow
    send_path: SendPath
    costs: dict[str, HistoryCost]
    idle: IdleCapacity | None = None  # None when skipped (--idle-journeys 0)

    def as_json(self) -> dict[str, Any]:
        def rate(t: Throughput) -> dict[str, Any]:
            return {**asdict(t), "per_second": t.per_second}

        base = self.baseline_throughput.per_second
        return {
            "machine": asdict(self.machine),
            "flags": self.flags,
            "baseline": {
                "sequential": asdict(self.baseline_latency),
                "concurrent": rate(self.baseline_throughput),
                "cost": asdict(self.baseline_cost),
            },
            "event_to_inbox": {
                "start_to_confirmation": asdict(self.confirmation),
                "shipped_to_shipping_email": asdict(self.shipping),
                "ratio_p50": self.confirmation.p50_ms / self.baseline_latency.p50_ms,
                "ratio_p99": self.confirmation.p99_ms / self.baseline_latency.p99_ms,
                "shipping_ratio_p50": self.shipping.p50_ms / self.baseline_latency.p50_ms,
                "shipping_ratio_p99": self.shipping.p99_ms / self.baseline_latency.p99_ms,
            },
            "throughput": {
                **rate(self.journey_throughput),
                "ratio": self.journey_throughput.per_second / base,
                "cpu_ms_per_workflow": {
                    "journeys": self.journey_cpu.milliseconds,
                    "baseline": self.baseline_cpu.milliseconds,
                },
            },
            "send_path": {
                "emails": {
                    **rate(self.send_path.emails),
                    "ratio": self.send_path.emails.per_second / base,
                },
                "sms": {**rate(self.send_path.sms), "ratio": self.send_path.sms.per_second / base},
            },
            "cost_per_journey": {path: asdict(cost) for path, cost in self.costs.items()},
            "idle_capacity": self.idle.as_json(self.baseline_throughput) if self.idle else None,
        }

    def table(self) -> str:
        m = self.machine
        lines = [
            f"machine: {m.nproc} CPUs ({m.cpu_model}), {m.python}",
            "flags: " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in self.flags.items()),
            "",
            f"{'figure':<52}{'aftercare':>11}{'baseline':>11}{'ratio':>8}",
        ]

        def row(name: str, ours: float, base: float, unit: str = "") -> None:
            # No ratio to a figure that shows as 0.0 (the baseline uses no PostgreSQL).
            ratio = f"{ours / base:>7.2f}x" if round(base, 1) else f"{'-':>8}"
            lines.append(f"{name:<52}{ours:>11.1f}{base:>11.1f}{ratio}{unit}")

        b = self.baseline_latency
        for label, ours in (
            ("StartJourney -> confirmation email", self.confirmation),
            ("RecordEvent(shipped) -> shipping email", self.shipping),
        ):
            row(f"{label}, p50 ms", ours.p50_ms, b.p50_ms)
            row(f"{label}, p95 ms", ours.p95_ms, b.p95_ms)
            row(f"{label}, p99 ms", ours.p99_ms, b.p99_ms)
        t, bt = self.journey_throughput, self.baseline_throughput
        row(
            f"journeys confirmed/s ({t.count} at once, {t.concurrency_limit} in flight)",
            t.per_second,
            bt.per_second,
        )
        ours_cpu, base_cpu = self.journey_cpu.milliseconds, self.baseline_cpu.milliseconds
        for role in ours_cpu:
            row(f"  CPU ms per workflow meanwhile, {role}", ours_cpu[role], base_cpu[role])
        row(
            "  CPU ms per workflow meanwhile, all of the above",
            self.journey_cpu.total_ms,
            self.baseline_cpu.total_ms,
        )
        for name, sent in (("emails", self.send_path.emails), ("SMS", self.send_path.sms)):
            row(
                f"send_message direct, {name}/s ({sent.count}, {sent.concurrency_limit} in flight)",
                sent.per_second,
                bt.per_second,
            )
        lines.append(
            f"(baseline: bare workflow+activity, sequential {b.count} runs; "
            f"{bt.count} at once, {bt.concurrency_limit} in flight: {bt.seconds:.1f} s)"
        )
        lines += ["", "cost per journey (tests/histories; runs of one journey added)"]
        header = (
            "runs",
            "events",
            "activ",
            "timers",
            "signals",
            "upserts",
            "wf tasks",
            "payload B",
        )
        lines.append(f"{'path':<28}" + "".join(f"{h:>10}" for h in header) + f"{'events x':>10}")
        for path, c in [("baseline (bare, this run)", self.baseline_cost), *self.costs.items()]:
            figures = (
                c.runs,
                c.events,
                c.activities,
                c.timers,
                c.signals,
                c.upserts,
                c.workflow_tasks,
                c.payload_bytes,
            )
            lines.append(
                f"{path:<28}"
                + "".join(f"{v:>10}" for v in figures)
                + f"{c.events / self.baseline_cost.events:>9.1f}x"
            )
        lines.append(
            "(recorded histories hold plain JSON payloads; the baseline's are encrypted, "
            "as everything on this stack is)"
        )
        if self.idle is not None:
            lines += ["", *self.idle.table(self.baseline_throughput)]
        return "\n".join(lines)


def _progress(message: str, since: float) -> None:
    print(f"[{time.perf_counter() - since:6.1f} s] {message}", file=sys.stderr, flush=True)


async def measure(
    runs: int,
    concurrency: int,
    in_flight: int,
    sends: int,
    send_in_flight: int,
    idle_journeys: int = 0,
    storm: int = 0,
    database: str = "auto",
    sandbox: bool = True,
    worker_processes: int = 1,
) -> BenchReport:
    t0 = time.perf_counter()
    flags: dict[str, int | str] = {
        "runs": runs,
        "concurrency": concurrency,
        "in_flight": in_flight,
        "sends": sends,
        "send_in_flight": send_in_flight,
    }
    flags |= {"idle_journeys": idle_journeys, "storm": storm}
    flags["workflow_sandbox"] = "on" if sandbox else "off"
    flags["worker_processes"] = worker_processes
    async with (
        bench_database(database) as (database_name, database_settings),
        # Both workers (journeys and baseline) read it from the stack's settings.
        bench_stack({**database_settings, "workflow_sandbox": sandbox}) as stack,
    ):
        flags["database"] = database_name
        _progress("stack up; baseline, sequential", t0)
        client = stack.baseline_client
        # Both sides run their worker as a process of its own, as deployed: the
        # load (client, API, mail sink) is driven from this one.
        server_pid = stack.server.pid
        assert server_pid is not None  # started by bench_stack
        postgres = database_name == "postgresql"
        async with baseline_worker(stack, worker_processes) as baseline_side:
            queue = baseline_side.queue
            baseline_latency = LatencySummary.of(await baseline_sequential(client, queue, runs))
            _progress("baseline, concurrent", t0)
            roles = stack_roles(server_pid, baseline_side.pids, postgres=postgres)
            before = read_cpu(roles)
            baseline_rate = await baseline_concurrent(client, queue, concurrency, in_flight)
            baseline_cpu = per_workflow(roles, before, concurrency)
            baseline_cost = await workflow_cost(client, f"{queue}-seq-0")
        async with (
            scaled_worker_processes(stack.settings, stack.state_dir, worker_processes) as workers,
            serving_api(stack) as api,
        ):
            _progress("journeys, sequential", t0)
            samples = await journeys_sequential(api, stack.sink, runs)
            _progress("journeys, concurrent", t0)
            roles = stack_roles(server_pid, [w.pid for w in workers], postgres=postgres)
            before = read_cpu(roles)
            journey_rate = await journeys_concurrent(api, stack.sink, concurrency, in_flight)
            journey_cpu = per_workflow(roles, before, concurrency)
        _progress("send path", t0)
        sends_rate = await send_path(stack.settings, stack.sink, sends, send_in_flight)
        idle = None
        if idle_journeys:
            # Last: its journeys stay asleep on the server, and it runs its own worker.
            # Its own (lower) calls in flight: tens of thousands of starts at 100 in
            # flight queue past the client's 10 s deadline on 2 cores.
            idle = await idle_capacity(
                stack,
                idle_journeys,
                storm,
                progress=lambda message: _progress(message, t0),
            )
    _progress("done", t0)
    return BenchReport(
        machine=Machine.this_one(),
        flags=flags,
        baseline_latency=baseline_latency,
        baseline_throughput=baseline_rate,
        baseline_cpu=baseline_cpu,
        baseline_cost=baseline_cost,
        confirmation=LatencySummary.of(samples.confirmation),
        shipping=LatencySummary.of(samples.shipping),
        journey_throughput=journey_rate,
        journey_cpu=journey_cpu,
        send_path=sends_rate,
        costs=recorded_costs(),
        idle=idle,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=300,
        help="sequential runs (default 300: about 5 minutes on 2 cores)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=2000, help="workflows/journeys at once (default 2000)"
    )
    parser.add_argument(
        "--in-flight", type=int, default=100, help="client calls in flight at most (default 100)"
    )
    parser.add_argument(
        "--sends", type=int, default=1000, help="direct sends per channel (default 1000)"
    )
    parser.add_argument(
        "--send-in-flight",
        type=int,
        default=50,
        help="direct sends in flight at once (default 50)",
    )
    add_idle_arguments(parser, "--idle-journeys")
    parser.add_argument(
        "--database",
        choices=("auto", "postgresql", "sqlite"),
        default="auto",
        help=f"the service's database (default auto: PostgreSQL at {POSTGRES_ADMIN_DSN} if up)",
    )
    parser.add_argument(
        "--workflow-sandbox",
        choices=("on", "off"),
        default="on",
        help="run both workers' workflows in the SDK sandbox (default on, as deployed)",
    )
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=1,
        help="identical worker processes on each side, ours and the baseline's (default 1)",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"default {DEFAULT_JSON}")
    args = parser.parse_args()
    configure_logging("WARNING")
    report = asyncio.run(
        measure(
            args.runs,
            args.concurrency,
            args.in_flight,
            args.sends,
            args.send_in_flight,
            journeys_from(args),
            args.storm,
            args.database,
            sandbox=args.workflow_sandbox == "on",
            worker_processes=args.worker_processes,
        )
    )
    print(report.table())
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report.as_json(), indent=2) + "\n")
    print(f"\nfigures written to {args.json}")


if __name__ == "__main__":
    main()
