"""Long-running processes for production deployments: a worker, or the API alone."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta

from engine.platform.http_server import serve_http
from engine.platform.logging import get_logger
from engine.platform.settings import Settings
from engine.platform.temporal.connection import connect
from engine.processes.api_parts import serving_api
from engine.processes.http import http_app
from engine.processes.worker import journey_worker

log = get_logger(__name__)

# In a deployment the Temporal server may still be starting when we do.
_STARTUP_WAIT = timedelta(seconds=60)


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def run_worker(settings: Settings) -> None:
    stop = _stop_event()
    client = await connect(settings, wait=_STARTUP_WAIT)
    async with journey_worker(client, settings) as worker, worker:
        log.info("worker running", task_queue=settings.task_queue)
        await stop.wait()
        log.info("worker stopping")


async def run_http(settings: Settings) -> None:
    stop = _stop_event()
    async with http_app(settings) as app, serve_http(app, settings.http_host, settings.http_port):
        log.info("http app listening", host=settings.http_host, port=settings.http_port)
        await stop.wait()


async def run_api(settings: Settings) -> None:
    stop = _stop_event()
    client = await connect(settings, wait=_STARTUP_WAIT)
    # By default erasure destroys keys in the store behind connect()'s codec.
    async with serving_api(client, settings):
        log.info(
            "api listening",
            address=settings.grpc_target,
            tls=settings.grpc_tls_cert is not None,
            mutual_tls=settings.grpc_tls_client_ca is not None,
        )
        await stop.wait()
