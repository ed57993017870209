"""The whole service in the test's process, each part serving its own /metrics.

Wired as ``aftercare run`` wires it (engine.processes.dev_stack): a worker, the API,
the HTTP app and the codec server, each with its own Temporal client and runtime, so
each serves ``http://127.0.0.1:<free port>/metrics`` with ``process=<part>`` on every
series, exactly what four deployed processes export. On the session's Temporal dev
server and mail sink (tests/conftest.py), a fresh SQLite database, and the local
Twilio fake for SMS and WhatsApp::

    async with metrics_stack(temporal_server.address, mail_sink, tmp_path) as stack:
        await stack.client.start_journey(sample_order(order_id))
        text = await stack.scrape(Process.WORKER)
        # a Prometheus server: scrape stack.targets() (process -> host:port)
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client

from clients import AftercareClient
from engine.devstack.mail_sink import MailSink
from engine.devstack.twilio_fake import serve_twilio_fake
from engine.platform.codec.runtime import converter_for, customer_keys_for
from engine.platform.database.migrate import upgrade_database
from engine.platform.http_server import serve_http
from engine.platform.settings import Settings
from engine.platform.telemetry.runtime import (
    Process,
    instruments_for,
    metrics_address,
    metrics_url,
)
from engine.platform.temporal.connection import connect
from engine.processes.api import serving_api
from engine.processes.codec import codec_app
from engine.processes.dev_stack import (
    DEV_TWILIO_SID,
    DEV_TWILIO_TOKEN,
    dev_twilio_settings,
    with_dev_secrets,
)
from engine.processes.http import http_app
from engine.processes.worker import journey_worker
from tests.support.api_keys import all_scopes_key
from tests.support.databases import sqlite_url
from tests.support.net import free_port


@dataclass
class MetricsStack:
    settings: Settings
    # Calls the API with ``api_key`` (all scopes).
    client: AftercareClient
    api_key: str
    # The worker's Temporal client (its runtime serves the worker's metrics).
    temporal: Client
    sink: MailSink
    http_url: str
    codec_url: str

    def metrics_url(self, process: Process) -> str:
        url = metrics_url(self.settings, process)
        assert url is not None
        return url

    def targets(self) -> dict[str, str]:
        """host:port of each part's /metrics, by process name: a Prometheus
        ``static_configs`` list (the series carry ``process`` themselves)."""
        return {
            process.value: address
            for process in Process
            if (address := metrics_address(self.settings, process)) is not None
        }

    async def scrape(self, process: Process) -> str:
        """The text ``process``'s /metrics serves now."""
        return await asyncio.to_thread(_get, self.metrics_url(process))


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        text: str = answer.read().decode()
        return text


def metrics_settings(
    temporal_address: str, smtp_port: int, state_dir: Path, **overrides: object
) -> Settings:
    """Settings for a stack on free ports, metrics on for every part, its database
    migrated and its secrets under ``state_dir`` (as ``aftercare run`` keeps them)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    database = sqlite_url(state_dir)
    upgrade_database(database)
    http_port = free_port()
    values: dict[str, object] = {
        "state_dir": state_dir,
        "temporal_address": temporal_address,
        "task_queue": f"metrics-{uuid.uuid4().hex[:8]}",
        "database_url": database,
        "smtp_port": smtp_port,
        "grpc_port": free_port(),
        "http_port": http_port,
        "public_base_url": f"http://127.0.0.1:{http_port}",
        "codec_port": free_port(),
        "api_metrics_port": free_port(),
        "worker_metrics_port": free_port(),
        "http_metrics_port": free_port(),
        "codec_metrics_port": free_port(),
    }
    values.update(overrides)
    return with_dev_secrets(Settings(_env_file=None, **values))  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def metrics_stack(
    temporal_address: str, sink: MailSink, state_dir: Path, **overrides: object
) -> AsyncIterator[MetricsStack]:
    """Start every part (``overrides``: any other settings); stopped when the block
    ends. Each part's /metrics is served from the start."""
    settings = metrics_settings(temporal_address, sink.port, state_dir, **overrides)
    api_key = await all_scopes_key(settings.resolved_database_url)
    async with contextlib.AsyncExitStack() as parts:
        fake = await parts.enter_async_context(
            serve_twilio_fake("127.0.0.1", 0, DEV_TWILIO_SID, DEV_TWILIO_TOKEN)
        )
        settings = settings.model_copy(update=dev_twilio_settings(fake.base_url))
        # One customer key store for every part, as the dev stack shares it.
        keys = customer_keys_for(settings)
        parts.push_async_callback(keys.aclose)
        codec = await parts.enter_async_context(
            serve_http(codec_app(settings, keys), settings.codec_host, settings.codec_port)
        )

        async def client_for(process: Process) -> Client:
            counted = instruments_for(settings, process)
            converter = converter_for(settings, keys, instruments=counted)
            return await connect(settings, data_converter=converter, process=process)

        worker_client = await client_for(Process.WORKER)
        worker = await parts.enter_async_context(journey_worker(worker_client, settings))
        await parts.enter_async_context(worker)
        await parts.enter_async_context(serving_api(await client_for(Process.API), settings))
        app = await parts.enter_async_context(http_app(settings))
        http = await parts.enter_async_context(
            serve_http(app, settings.http_host, settings.http_port)
        )
        client = await parts.enter_async_context(
            AftercareClient(settings.grpc_target, api_key=api_key)
        )
        yield MetricsStack(
            settings=settings,
            client=client,
            api_key=api_key,
            temporal=worker_client,
            sink=sink,
            http_url=http.url,
            codec_url=codec.url,
        )
