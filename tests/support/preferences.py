"""The preferences API on real parts: the Temporal dev server, a journey worker,
the gRPC server with PreferencesService, a SQLite or PostgreSQL database, the
mail sink."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client

from clients import AftercareClient
from engine.access.api_keys import ApiKeyStore
from engine.access.scopes import ALL_SCOPES
from engine.devstack.mail_sink import MailSink
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.settings import Settings
from engine.processes.api import ApiParts, serving_api
from engine.processes.dev_stack import with_dev_secrets
from engine.processes.worker import journey_worker
from tests.support.net import free_port


@dataclass
class PreferencesStack:
    settings: Settings
    client: AftercareClient
    parts: ApiParts
    temporal: Client


@asynccontextmanager
async def preferences_stack(
    temporal: Client,
    database_url: str,
    state_dir: Path,
    sink: MailSink,
    *,
    with_worker: bool = True,
    plans_dir: Path | None = None,
    **more_settings: Any,
) -> AsyncIterator[PreferencesStack]:
    settings = Settings(
        _env_file=None,
        state_dir=state_dir,
        temporal_address="unused:0",
        task_queue=f"prefs-{uuid.uuid4().hex[:8]}",
        database_url=database_url,
        smtp_port=sink.port,
        grpc_port=free_port(),
        plans_dir=plans_dir,
        **more_settings,
    )
    settings = with_dev_secrets(settings)  # kept under the state dir, as `aftercare run` does
    engine = create_engine(database_url)
    try:
        api_key = await ApiKeyStore(create_session_factory(engine)).create("tests", ALL_SCOPES)
    finally:
        await engine.dispose()
    async with (
        serving_api(temporal, settings, grace_seconds=1) as api,
        AftercareClient(settings.grpc_target, api_key=api_key.token) as client,
    ):
        stack = PreferencesStack(settings, client, api.parts, temporal)
        if with_worker:
            async with journey_worker(temporal, settings) as worker, worker:
                yield stack
        else:
            yield stack
