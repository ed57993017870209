"""The bench's CPU accounting per process role, on real processes: a child that
burns a known amount of CPU is charged to its role, per workflow; a process that
ends meanwhile is no error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tools.bench.cpu import BENCH_PROCESS, WORKER_PROCESSES, per_workflow, read_cpu, stack_roles
from tools.bench.procfs import pids_named

# Burns this much CPU (its own process time, not wall time), then waits for stdin.
BURN_SECONDS = 0.4
BURNER = f"""
import sys, time
start = time.process_time()
while time.process_time() - start < {BURN_SECONDS}:
    pass
print("burnt", flush=True)
sys.stdin.read()
"""
# The same burn, started only when told "go", so what is read before excludes it.
GATED_BURNER = f"""
import sys, time
print("ready", flush=True)
sys.stdin.readline()
start = time.process_time()
while time.process_time() - start < {BURN_SECONDS}:
    pass
print("burnt", flush=True)
sys.stdin.read()
"""


def test_a_role_is_charged_the_cpu_its_process_used_per_workflow() -> None:
    with (
        subprocess.Popen(
            [sys.executable, "-c", "import sys; sys.stdin.read()"],
            stdin=subprocess.PIPE,
        ) as idle,
        subprocess.Popen(
            [sys.executable, "-c", BURNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        ) as burner,
    ):
        roles = stack_roles(idle.pid, [burner.pid], postgres=False)
        assert set(roles) == {"Temporal dev server", WORKER_PROCESSES, BENCH_PROCESS}
        # Read right away: the burner has hardly started (its interpreter starting).
        before = read_cpu(roles)
        assert burner.stdout is not None
        assert burner.stdout.readline() == b"burnt\n"
        spent = per_workflow(roles, before, count=4)
        # At least the burnt 0.4 s over 4 workflows, give or take one clock tick.
        assert spent.milliseconds[WORKER_PROCESSES] >= 1000 * BURN_SECONDS / 4 - 10
        assert spent.milliseconds["Temporal dev server"] < spent.milliseconds[WORKER_PROCESSES]
        assert spent.total_ms == sum(spent.milliseconds.values())
        for child in (idle, burner):
            assert child.stdin is not None
            child.stdin.close()


def test_every_worker_process_is_charged_to_the_worker_role() -> None:
    with (
        subprocess.Popen(
            [sys.executable, "-c", GATED_BURNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        ) as first,
        subprocess.Popen(
            [sys.executable, "-c", GATED_BURNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        ) as second,
    ):
        burners = (first, second)
        for burner in burners:
            assert burner.stdout is not None
            assert burner.stdout.readline() == b"ready\n"
        roles = stack_roles(os.getpid(), [first.pid, second.pid], postgres=False)
        before = read_cpu(roles)
        assert {pid for role, pid in before if role == WORKER_PROCESSES} == {
            first.pid,
            second.pid,
        }
        for burner in burners:
            assert burner.stdin is not None
            assert burner.stdout is not None
            burner.stdin.write(b"go\n")
            burner.stdin.flush()
            assert burner.stdout.readline() == b"burnt\n"
        spent = per_workflow(roles, before, count=1)
        # Both burners' 0.4 s, give or take a clock tick each.
        assert spent.milliseconds[WORKER_PROCESSES] >= 2 * 1000 * BURN_SECONDS - 20
        for burner in burners:
            assert burner.stdin is not None
            burner.stdin.close()


def test_a_process_that_ended_meanwhile_counts_nothing_more() -> None:
    with subprocess.Popen([sys.executable, "-c", "pass"]) as short:
        roles = stack_roles(os.getpid(), [short.pid], postgres=False)
        before = read_cpu(roles)
        assert any(role == WORKER_PROCESSES for role, _ in before)
        short.wait()  # reaped: gone from /proc
    spent = per_workflow(roles, before, count=1)
    assert spent.milliseconds[WORKER_PROCESSES] == 0.0


def test_processes_are_found_by_their_command_name() -> None:
    own_name = Path("/proc/self/comm").read_text().strip()
    assert os.getpid() in pids_named(own_name)
    assert pids_named("no-such-command-here") == []
