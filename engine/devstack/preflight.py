"""Checks before the dev stack starts: one instance at a time, every port free."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import IO


class PreflightError(RuntimeError):
    pass


@dataclass(frozen=True)
class PortNeed:
    name: str
    host: str
    port: int
    variable: str  # the setting that moves it, named when the port is taken


def check_ports(needs: list[PortNeed]) -> None:
    taken = [need for need in needs if not _is_free(need.host, need.port)]
    if taken:
        lines = "\n".join(
            f"  - {need.name}: {need.host}:{need.port} is already in use ({need.variable})"
            for need in taken
        )
        raise PreflightError(
            "cannot start: a port is taken\n"
            f"{lines}\n"
            "Stop whatever uses it (another `aftercare run`?) or choose another port with "
            "the setting named beside it."
        )


def _is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR so a port in TIME_WAIT from our own last run counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            if err.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


class InstanceLock:
    """An exclusive lock on a file in the state folder, held while the stack runs.

    A second ``aftercare run`` on the same folder stops before touching any
    database, so starting twice cannot corrupt anything.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise PreflightError(
                f"cannot start: the dev stack is already running from {self.path.parent} "
                f"(pid {holder}). Stop it with Ctrl-C first."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
