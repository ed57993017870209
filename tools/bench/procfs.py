"""Memory and CPU time of processes, read from ``/proc`` (Linux): what the
benchmarks report per process of the stack."""

from __future__ import annotations

import os
from pathlib import Path


def _stat_fields(pid: int) -> list[str]:
    """``/proc/PID/stat`` from field 3 on: the command name (field 2) is in
    parentheses and may hold spaces."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def rss_bytes(pid: int) -> int:
    """Resident set size of one process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0  # a zombie has no memory left


def _all_pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def children(pid: int) -> list[int]:
    found = []
    for candidate in _all_pids():
        try:
            parent = int(_stat_fields(candidate)[1])
        except OSError:
            continue  # gone meanwhile
        if parent == pid:
            found.append(candidate)
    return found


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants (the dev server may
    run helpers of its own)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            total += rss_bytes(current)
        except OSError:
            continue
        todo.extend(children(current))
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = _stat_fields(pid)
    # utime and stime are fields 14 and 15 of stat; here counted from field 3.
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def pids_named(name: str) -> list[int]:
    """Processes whose command name is ``name`` (e.g. every PostgreSQL backend)."""
    found = []
    for candidate in _all_pids():
        try:
            if Path(f"/proc/{candidate}/comm").read_text().strip() == name:
                found.append(candidate)
        except OSError:
            continue  # gone meanwhile
    return found
