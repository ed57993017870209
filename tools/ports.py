"""Free TCP ports for the servers that benches, chaos runs and tests start.

A port the kernel hands out for ``bind(0)`` lies in the ephemeral range, which every
outgoing connection on the machine draws from too: between choosing it and the
server binding it, a client's connection (to PostgreSQL, Temporal, a scrape) can take
it, and the server fails to start. Ports are therefore drawn at random from below the
ephemeral range, where the kernel never picks, and probed before they are handed out.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# Above the registered ports most services use; below Linux's default ephemeral range.
LOWEST = 20_000
DEFAULT_EPHEMERAL_START = 32_768
ATTEMPTS = 200


def _ephemeral_start() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_EPHEMERAL_START


def _bindable(port: int, host: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, outside the ephemeral range when there is room."""
    highest = _ephemeral_start() - 1
    if highest > LOWEST:
        for _ in range(ATTEMPTS):
            port = random.randint(LOWEST, highest)
            if _bindable(port, host):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        chosen: int = probe.getsockname()[1]
        return chosen
