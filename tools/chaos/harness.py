"""The stack a chaos scenario runs on, built like a deployment: the dev server on its
persistent database (tools.bench.stack), the journey worker as a separate process
(``aftercare worker``, so it can be SIGKILLed), the gRPC API, the HTTP app (which
takes the provider's delivery reports), the aiosmtpd sink and the Twilio fake, each
with the fault switches the scenarios pull.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from clients import AftercareClient
from engine.devstack.twilio_fake import TwilioFake, serve_twilio_fake
from engine.platform.http_server import serve_http
from engine.platform.settings import Settings
from engine.processes.dev_stack import DEV_TWILIO_SID, DEV_TWILIO_TOKEN, dev_twilio_settings
from engine.processes.http import http_app
from tools.bench.stack import Stack, bench_stack, serving_api, settings_environment
from tools.chaos.config import ChaosConfig
from tools.ports import free_port

CHAOS_PLANS_DIR = Path(__file__).resolve().parent / "plans"
AFTERCARE = Path(sys.executable).parent / "aftercare"
# The worker logs this once its pollers run (engine.processes.run_worker).
_READY_LINE = b"worker running"
# Above the default 10/s: the run is about faults, not about the provider's rate limit.
_SMS_RATE_PER_SECOND = 50.0
# How long after accepting a text the fake reports it sent, then delivered: about what
# Twilio takes, and far less than the 30 s before a killed send attempt is retried.
DELIVERY_REPORT_DELAY_SECONDS = 1.0


class WorkerCrashedError(RuntimeError):
    pass


class WorkerProcess:
    """One ``aftercare worker`` process at a time: started, SIGKILLed, started again.

    Its log lines (JSON) are appended to ``log_file``; a start returns once the
    worker says its pollers run.
    """

    def __init__(self, env: dict[str, str], log_file: Path, cwd: Path) -> None:
        self._env = env
        self._log_file = log_file
        self._cwd = cwd
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self.starts = 0
        self.kills = 0
        # When each SIGKILL was sent (wall clock, to compare with the providers' times).
        self.killed_at: list[datetime] = []
        # Set while the harness itself ends the process (kill, stop).
        self._ending = False
        # A scenario's restart and the watcher's (after a crash) never overlap.
        self._starting = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def exited(self) -> int | None:
        """The exit code if the current process ended (by itself or killed), else None."""
        return self._process.returncode if self._process else None

    @property
    def exited_by_itself(self) -> int | None:
        """The exit code if the process ended without being killed or stopped."""
        return None if self._ending else self.exited

    async def start(self, timeout_seconds: float = 120.0) -> None:
        async with self._starting:
            await self._start(timeout_seconds)

    async def restart_if_crashed(self) -> int | None:
        """Start a new process if the current one exited by itself; its exit code then."""
        async with self._starting:
            code = self.exited_by_itself
            if code is not None:
                await self._start(120.0)
            return code

    async def _start(self, timeout_seconds: float) -> None:
        self._log_file.parent.mkdir(parents=True, exist_ok=True)
        ready = asyncio.Event()
        process = await asyncio.create_subprocess_exec(
            str(AFTERCARE),
            "worker",
            env=self._env,
            cwd=self._cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        # Both at once (no await between): a watcher never sees the new state half set.
        self._process, self._ending = process, False
        self._reader = asyncio.create_task(self._copy_log(process, ready))
        self.starts += 1
        waiting = asyncio.create_task(ready.wait())
        ended = asyncio.create_task(process.wait())
        done, _ = await asyncio.wait(
            {waiting, ended}, timeout=timeout_seconds, return_when=asyncio.FIRST_COMPLETED
        )
        waiting.cancel()
        if ended not in done:
            ended.cancel()
        if not ready.is_set():
            await self.kill(count=False)
            raise WorkerCrashedError(
                f"the worker did not start within {timeout_seconds:.0f} s "
                f"(exit code {process.returncode}); see {self._log_file}"
            )

    async def _copy_log(self, process: asyncio.subprocess.Process, ready: asyncio.Event) -> None:
        assert process.stderr is not None
        with self._log_file.open("ab") as log:
            while line := await process.stderr.readline():
                log.write(line)
                if not ready.is_set() and _READY_LINE in line:
                    ready.set()
                    log.flush()

    async def kill(self, *, count: bool = True) -> int | None:
        """SIGKILL: no shutdown, no goodbye to Temporal, whatever it was sending."""
        process = self._process
        if process is None or process.returncode is not None:
            return None
        self._ending = True
        if count:
            self.killed_at.append(datetime.now(UTC))
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGKILL)
        await process.wait()
        await self._drain_log()
        if count:
            self.kills += 1
        return process.pid

    async def stop(self, timeout_seconds: float = 30.0) -> None:
        process = self._process
        if process is None:
            return
        self._ending = True
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout_seconds)
            except TimeoutError:
                await self.kill(count=False)
        await self._drain_log()

    async def _drain_log(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)
            self._reader = None


def worker_environment(settings: Settings) -> dict[str, str]:
    """The worker process runs on the stack's settings, logging JSON at INFO (the
    start waits for its "worker running" line)."""
    return {
        **settings_environment(settings),
        "AFTERCARE_LOG_LEVEL": "INFO",
        "AFTERCARE_LOG_FORMAT": "json",
    }


@dataclass
class ChaosRun:
    """One scenario's stack, and the record of what was done to it."""

    name: str
    config: ChaosConfig
    stack: Stack
    twilio: TwilioFake
    api: AftercareClient
    worker: WorkerProcess
    journey_prefix: str
    started: float = field(default_factory=time.monotonic)
    injected: list[tuple[float, str]] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return self.stack.settings

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    async def traffic(self) -> None:
        """Wait until journeys are sending (the first email is in the sink): a fault
        injected before that, on a slow machine, would hit nothing."""
        await self.stack.sink.handler.wait_for(1, self.config.settle_seconds)

    def note(self, what: str) -> None:
        """Record (and show at once) a fault injected or lifted, with its time."""
        at = self.elapsed()
        self.injected.append((at, what))
        print(f"  [{self.name} {at:6.1f}s] {what}", flush=True)


@asynccontextmanager
async def chaos_run(
    name: str, config: ChaosConfig, *, database_url: str | None = None
) -> AsyncIterator[ChaosRun]:
    """A fresh stack for one scenario; a worker process is running when it is entered."""
    run_id = uuid.uuid4().hex[:6]
    overrides: dict[str, object] = {
        "task_queue": f"chaos-{name}-{run_id}",
        "plans_dir": CHAOS_PLANS_DIR,
        "sms_rate_per_second": _SMS_RATE_PER_SECOND,
    }
    if database_url is not None:
        overrides["database_url"] = database_url
    # The HTTP app receives the fake's delivery reports, as in a deployment: a
    # report records a text the worker was killed before recording, which is what
    # keeps a retry from sending it again (README, "Exactly-once sending").
    http_port = free_port()
    overrides["public_base_url"] = f"http://127.0.0.1:{http_port}"
    async with serve_twilio_fake(
        "127.0.0.1",
        0,
        DEV_TWILIO_SID,
        DEV_TWILIO_TOKEN,
        callback_delay_seconds=DELIVERY_REPORT_DELAY_SECONDS,
    ) as twilio:
        overrides.update(dev_twilio_settings(twilio.base_url))
        async with (
            bench_stack(overrides) as stack,
            http_app(stack.settings) as app,
            serve_http(app, "127.0.0.1", http_port),
        ):
            log_file = config.log_dir.resolve() / f"{name}-{run_id}-worker.log"
            worker = WorkerProcess(worker_environment(stack.settings), log_file, stack.state_dir)
            await worker.start()
            try:
                async with serving_api(stack) as api:
                    yield ChaosRun(
                        name=name,
                        config=config,
                        stack=stack,
                        twilio=twilio,
                        api=api,
                        worker=worker,
                        journey_prefix=f"CHAOS-{run_id}",
                    )
            finally:
                await worker.stop()


async def until(condition: Callable[[], bool], seconds: float, interval: float = 0.1) -> bool:
    """Wait until ``condition()`` holds or ``seconds`` pass; whether it holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(interval)
    return True
