"""The stack every benchmark measures: started once, on free ports, like ``aftercare run``.

A dev server on a file database with the same SQLite pragmas as ``aftercare run``,
an aiosmtpd sink, an encrypting Temporal client, and the service's database
(:func:`bench_database`); :func:`serving_api` adds the gRPC API on top of it and
:func:`worker_process` the journey workers, as ``aftercare worker`` in a child
process (memory of its own), as deployed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from pydantic import SecretStr
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from clients import AftercareClient
from engine.access.api_keys import ApiKeyStore
from engine.access.scopes import ALL_SCOPES
from engine.devstack.mail_sink import MailSink
from engine.devstack.temporal_server import TemporalDevServer
from engine.platform.codec.runtime import converter_for, customer_keys_for
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.migrate import upgrade_database
from engine.platform.settings import Settings
from engine.platform.temporal.connection import connect
from engine.processes.api import serving_api as full_api
from engine.processes.dev_stack import with_dev_secrets
from tools.ports import free_port
from tools.throwaway_database import throwaway_database

# The machines this runs on have PostgreSQL here, trust auth (see ENVIRONMENT.md).
POSTGRES_ADMIN_DSN = os.environ.get(
    "AFTERCARE_BENCH_POSTGRES_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@dataclass(frozen=True)
class Stack:
    state_dir: Path
    server: TemporalDevServer
    sink: MailSink
    settings: Settings
    # As the service connects (``engine.platform.temporal.connection.connect``):
    # payloads sealed under each customer's data key, as journeys run in production.
    client: Client
    # Bare Temporal's: the same codec with the master keyring only, and no lookup
    # of a customer key per workflow, which the baseline has no use for.
    baseline_client: Client
    # An all-scopes key of the stack's API, for every client of it.
    api_key: str


async def _bench_api_key(settings: Settings) -> str:
    engine = create_engine(settings.resolved_database_url)
    try:
        created = await ApiKeyStore(create_session_factory(engine)).create(
            "bench", sorted(ALL_SCOPES)
        )
    finally:
        await engine.dispose()
    return created.token


@asynccontextmanager
async def bench_stack(overrides: Mapping[str, Any] | None = None) -> AsyncIterator[Stack]:
    """Dev server (file database, ``aftercare run``'s pragmas), mail sink and client.

    ``overrides`` are further settings (e.g. ``database_url``, ``plans_dir``).
    """
    with tempfile.TemporaryDirectory(prefix="aftercare-bench-") as tmp:
        state = Path(tmp)
        server = TemporalDevServer(port=free_port(), ui_port=None, db_file=state / "temporal.db")
        sink = MailSink("127.0.0.1", 0, None)
        await sink.start()
        try:
            await server.start()
            settings = Settings(
                _env_file=None,
                state_dir=state,
                temporal_address=server.address,
                smtp_port=sink.port,
                grpc_port=free_port(),
                **(overrides or {}),
            )
            settings = with_dev_secrets(settings)  # under the state dir, as `aftercare run`
            upgrade_database(settings.resolved_database_url)
            customer_keys = customer_keys_for(settings)
            try:
                yield Stack(
                    state_dir=state,
                    server=server,
                    sink=sink,
                    settings=settings,
                    # Through the service's own connect: the Temporal settings
                    # (TLS, API key) in ``overrides`` reach the stack's clients too.
                    client=await connect(
                        settings, data_converter=converter_for(settings, customer_keys)
                    ),
                    baseline_client=await connect(settings, data_converter=converter_for(settings)),
                    api_key=await _bench_api_key(settings),
                )
            finally:
                await customer_keys.aclose()
        finally:
            await server.stop()
            await sink.stop()


@asynccontextmanager
async def bench_database(choice: str) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """The service's database for the run: a throwaway PostgreSQL database (what
    production runs on: the worker and the API are separate processes writing at
    once) when one is reachable, else the embedded SQLite default. Yields its
    name for the table and the settings that select it."""
    if choice != "sqlite":
        try:
            async with throwaway_database(POSTGRES_ADMIN_DSN, "bench") as (_, url):
                yield "postgresql", {"database_url": url}
                return
        except psycopg.OperationalError:
            if choice == "postgresql":
                raise
    yield "sqlite", {}


def api_client(stack: Stack) -> AftercareClient:
    """A new client of the stack's gRPC API (close it, or use it with ``async with``)."""
    return AftercareClient(stack.settings.grpc_target, api_key=stack.api_key)


@asynccontextmanager
async def serving_api(stack: Stack) -> AsyncIterator[AftercareClient]:
    """The gRPC API as ``aftercare api`` serves it, and a client of it; workers run
    elsewhere (e.g. as processes). Every start does what it does in production:
    the erasure check, the customer's stored preferences, the owner's key."""
    async with full_api(stack.client, stack.settings, grace_seconds=1), api_client(stack) as api:
        yield api


async def wait_for_pollers(
    client: Client, task_queue: str, processes: Sequence[asyncio.subprocess.Process]
) -> None:
    """Until each of ``processes`` (worker processes) polls ``task_queue``: as many
    distinct pollers as processes, none of them having exited."""
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for process in processes:
            if process.returncode is not None:
                raise RuntimeError(f"a worker process exited with code {process.returncode}")
        answer = await client.workflow_service.describe_task_queue(request)
        if len({poller.identity for poller in answer.pollers}) >= len(processes):
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"fewer than {len(processes)} workers polled {task_queue} within 120 s")


def settings_environment(settings: Settings) -> dict[str, str]:
    """This process's environment without its own ``AFTERCARE_*`` variables, plus
    ``AFTERCARE_*`` for every setting given explicitly: a child process started
    with it (``aftercare worker``) runs on exactly these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERCARE_")}
    for name in sorted(settings.model_fields_set):
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
        elif isinstance(value, Path):
            text = str(value.resolve())  # the child runs in another folder
        elif isinstance(value, str):
            text = value
        else:  # numbers and booleans as JSON; pydantic-settings reads both back
            text = json.dumps(value, default=str)
        env[f"AFTERCARE_{name.upper()}"] = text
    return env


@asynccontextmanager
async def worker_process(
    settings: Settings, log_file: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``aftercare worker`` as a child process on ``settings`` (its own memory, its
    own pid to measure or kill), stopped with SIGTERM at the end."""
    async with child_process(settings, _worker_argv(), log_file) as process:
        yield process


def _worker_argv() -> list[str]:
    """``aftercare worker`` from this interpreter's environment."""
    return [str(Path(sys.executable).parent / "aftercare"), "worker"]


@asynccontextmanager
async def scaled_worker_processes(
    settings: Settings, state_dir: Path, count: int
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """``count`` identical ``aftercare worker`` processes (``docker compose up --scale
    worker=N``): the way a deployment gives its workers more than one core, each
    process being one Python interpreter."""
    logs = [state_dir / f"worker-{n}.log" for n in range(count)]
    async with child_processes(settings, _worker_argv(), logs) as processes:
        yield processes


@asynccontextmanager
async def child_processes(
    settings: Settings, argv: list[str], log_files: Sequence[Path]
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """``argv`` as one child process per log file (see ``child_process``), all
    stopped at the end."""
    async with AsyncExitStack() as running:
        yield [
            await running.enter_async_context(child_process(settings, argv, log))
            for log in log_files
        ]


@asynccontextmanager
async def child_process(
    settings: Settings, argv: list[str], log_file: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``argv`` as a child process on ``settings``, its output appended to
    ``log_file``, stopped with SIGTERM at the end (killed if it lingers)."""
    with log_file.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=settings_environment(settings),
            # Not the caller's folder: a developer's .env there must not leak in.
            cwd=settings.state_dir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 60)
            except TimeoutError:
                process.kill()
                await process.wait()
