"""Free TCP ports for the servers that benches, chaos runs and tests start.

A port the kernel hands out for ``bind(0)`` lies in the ephemeral range, which every
outgoing connection on the machine draws from too: between choosing it and the
server binding it, a client's connection (to PostgreSQL, Temporal, a scrape) can take
it, and the server fails to start. Ports are therefore drawn at random from below the
ephemeral range, where the kernel never picks, and probed before they are handed out.

The draw uses the system's randomness, not the ``random`` module's state: the test
runner reseeds that alike in every test and every worker process, which would hand
the same ports to each. A process never hands out a port twice: one given to a server
that has not bound it yet would still probe free.
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

_draw = random.SystemRandom()
_handed_out: set[int] = set()


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
            port = _draw.randint(LOWEST, highest)
            if port not in _handed_out and _bindable(port, host):
                _handed_out.add(port)
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        chosen: int = probe.getsockname()[1]
        return chosen
