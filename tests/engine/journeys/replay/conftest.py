"""Live journeys for the replay tests: a dev server of their own (so nothing else
running in the session is selected), a worker encrypting each journey under its
customer's key as production runs, and the settings a separate process needs."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from temporalio.client import Client

from engine.devstack.mail_sink import MailSink
from engine.devstack.temporal_server import TemporalDevServer
from engine.journeys.directory import JourneyDirectory
from engine.platform.codec.customer_keys import CustomerKeys
from engine.platform.codec.runtime import converter_for, customer_keys_for
from engine.platform.database.migrate import upgrade_database
from engine.platform.settings import Settings
from engine.processes.dev_stack import with_dev_secrets
from engine.processes.worker import journey_worker
from tests.support.databases import sqlite_url
from tests.support.net import free_port


@dataclass
class LiveStack:
    settings: Settings
    keys: CustomerKeys
    client: Client
    directory: JourneyDirectory

    def process_env(self) -> dict[str, str]:
        """The environment of an ``aftercare`` process of this deployment."""
        secret = self.settings.secret_key
        codec_keys = self.settings.codec_keys
        assert secret is not None
        assert codec_keys is not None
        return {
            **os.environ,
            "AFTERCARE_TEMPORAL_ADDRESS": self.settings.temporal_address,
            "AFTERCARE_DATABASE_URL": self.settings.resolved_database_url,
            "AFTERCARE_STATE_DIR": str(self.settings.state_dir),
            "AFTERCARE_CODEC_KEYS": codec_keys.get_secret_value(),
            "AFTERCARE_SECRET_KEY": secret.get_secret_value(),
            "AFTERCARE_LOG_LEVEL": "warning",
        }


@pytest.fixture(scope="module")
async def live_stack(
    mail_sink: MailSink, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveStack]:
    server = TemporalDevServer(port=free_port(), ui_port=None, db_file=None)
    await server.start()
    state_dir = tmp_path_factory.mktemp("replay-state")
    database = sqlite_url(state_dir)
    upgrade_database(database)
    settings = with_dev_secrets(
        Settings(
            _env_file=None,
            state_dir=state_dir,
            temporal_address=server.address,
            task_queue=f"replay-{uuid.uuid4().hex[:8]}",
            database_url=database,
            smtp_port=mail_sink.port,
        )
    )
    keys = customer_keys_for(settings)
    try:
        client = await Client.connect(server.address, data_converter=converter_for(settings, keys))
        async with journey_worker(client, settings) as worker, worker:
            yield LiveStack(settings, keys, client, JourneyDirectory(client, settings.task_queue))
    finally:
        await keys.aclose()
        await server.stop()
