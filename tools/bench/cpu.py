"""Where a throughput figure's CPU goes: the CPU time each process of the stack
spends per workflow during one phase, read from ``/proc`` before and after it.

On a small machine every process competes for the same cores, so a rate is set by
the sum of these, not by the busiest one alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from tools.bench.procfs import cpu_seconds, pids_named

# What the bench itself runs in: the load, and for journeys the API and mail sink.
BENCH_PROCESS = "bench process"
WORKER_PROCESSES = "worker processes"
POSTGRES = "PostgreSQL backends"


@dataclass(frozen=True)
class CpuPerWorkflow:
    """Milliseconds of CPU per workflow, by process role."""

    milliseconds: dict[str, float]

    @property
    def total_ms(self) -> float:
        return sum(self.milliseconds.values())


# A role's processes, looked up when read (PostgreSQL starts backends on demand).
Roles = Mapping[str, Callable[[], Sequence[int]]]


def stack_roles(server_pid: int, worker_pids: Sequence[int], *, postgres: bool) -> Roles:
    """The stack's processes: dev server, worker processes, this process, and (when
    the service runs on it) every PostgreSQL backend of the machine."""
    workers = list(worker_pids)
    roles: dict[str, Callable[[], Sequence[int]]] = {
        "Temporal dev server": lambda: [server_pid],
        WORKER_PROCESSES: lambda: workers,
        BENCH_PROCESS: lambda: [os.getpid()],
    }
    if postgres:
        roles[POSTGRES] = lambda: pids_named("postgres")
    return roles


def read_cpu(roles: Roles) -> dict[tuple[str, int], float]:
    """CPU seconds used so far by every process of every role."""
    used: dict[tuple[str, int], float] = {}
    for role, pids in roles.items():
        for pid in pids():
            try:
                used[(role, pid)] = cpu_seconds(pid)
            except OSError:
                continue  # ended meanwhile
    return used


def per_workflow(
    roles: Roles, before: Mapping[tuple[str, int], float], count: int
) -> CpuPerWorkflow:
    """CPU used since ``before``, per workflow, by role. A process started since
    counts from zero; one that ended since is lost (a backend that closed its
    connection), which can only make its role look cheaper."""
    after = read_cpu(roles)
    spent = dict.fromkeys(roles, 0.0)
    for (role, pid), seconds in after.items():
        spent[role] += seconds - before.get((role, pid), 0.0)
    return CpuPerWorkflow({role: 1000 * seconds / count for role, seconds in spent.items()})
