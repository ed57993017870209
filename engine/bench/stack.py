"""The stack every benchmark measures: started once, on free ports, like ``aftercare run``.

A dev server on a file database with the same SQLite pragmas as ``aftercare run``,
an aiosmtpd sink, an encrypting Temporal client; :func:`serving_journeys` adds the
journey workers and the gRPC API on top of it.
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client

from clients import AftercareClient
from engine.api.server import build_server
from engine.codec.runtime import converter_for
from engine.database.migrate import upgrade_database
from engine.devstack.mail_sink import MailSink
from engine.devstack.temporal_server import TemporalDevServer
from engine.journeys import JourneyDirectory
from engine.settings import Settings
from engine.worker import journey_worker


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Stack:
    state_dir: Path
    server: TemporalDevServer
    sink: MailSink
    settings: Settings
    client: Client


@asynccontextmanager
async def bench_stack() -> AsyncIterator[Stack]:
    """Dev server (file database, ``aftercare run``'s pragmas), mail sink and client."""
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
            )
            upgrade_database(settings.resolved_database_url)
            client = await Client.connect(server.address, data_converter=converter_for(settings))
            yield Stack(state_dir=state, server=server, sink=sink, settings=settings, client=client)
        finally:
            await server.stop()
            await sink.stop()


@asynccontextmanager
async def serving_journeys(stack: Stack) -> AsyncIterator[AftercareClient]:
    """The journey workers and the gRPC API, and a client of that API."""
    async with journey_worker(stack.client, stack.settings) as worker, worker:
        api_server = build_server(
            JourneyDirectory(stack.client, stack.settings.task_queue), stack.settings.grpc_target
        )
        await api_server.start()
        try:
            async with AftercareClient(stack.settings.grpc_target) as api:
                yield api
        finally:
            await api_server.stop(1)
