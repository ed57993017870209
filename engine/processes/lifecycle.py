"""What every long-running process shares: stopping on SIGINT or SIGTERM, and
waiting for a Temporal server that is still starting."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta

# In a deployment the Temporal server may still be starting when we do.
STARTUP_WAIT = timedelta(seconds=60)


def stop_event() -> asyncio.Event:
    """Set when the process is asked to stop (Ctrl-C, or SIGTERM from a supervisor)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
