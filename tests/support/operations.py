"""The operations API on real parts, and small plans for tests of pauses and bulk
operations: the full API server (OperationsService included), optionally the
journey worker, a SQLite database, a key with every scope and one without
journeys:admin."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client

from clients import AftercareClient
from engine.access.api_keys import parse_key
from engine.access.scopes import ALL_SCOPES, Scope
from engine.devstack.mail_sink import MailSink
from engine.journeys.directory import JourneyDirectory
from engine.platform.database.migrate import upgrade_database
from engine.platform.settings import Settings
from engine.processes.api import serving_api
from engine.processes.dev_stack import with_dev_secrets
from engine.processes.worker import journey_worker
from tests.support.api_keys import create_key
from tests.support.databases import sqlite_url
from tests.support.net import free_port

# A cross-sell a day after the start, and nothing else: no quiet hours and no
# frequency caps, so that the step is due at a known instant and only a pause can
# hold it.
CROSS_SELL_AFTER_A_DAY = """\
  - id: cross_sell
    trigger: {on: start, delay: P1D}
    category: marketing
    template: cross_sell
    stale_after: P7D
"""


def write_plan(
    folder: Path,
    plan_id: str,
    *,
    categories: tuple[str, ...] = (),
    steps: str = CROSS_SELL_AFTER_A_DAY,
) -> None:
    """A plan file in ``folder``; with ``categories``, it applies to orders with an
    item of one of them (and wins over a plan without conditions)."""
    applies = f"applies_when: {{categories: [{', '.join(categories)}]}}\n" if categories else ""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{plan_id}.yaml").write_text(
        f"id: {plan_id}\n"
        "version: 1\n"
        "description: A plan of the operations tests.\n"
        f"{applies}"
        f"priority: {10 if categories else 0}\n"
        "quiet_hours: null\n"
        "frequency_caps: {}\n"
        "steps:\n"
        f"{steps}"
    )


def new_plan_id(prefix: str) -> str:
    """A plan id of this test alone: journeys of other tests never match its filter."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class OperationsStack:
    settings: Settings
    temporal: Client
    directory: JourneyDirectory
    # Sends ``api_key``, a key with every scope (its public id: ``api_key_id``).
    client: AftercareClient
    api_key: str
    api_key_id: str
    # A key with every scope but journeys:admin.
    unprivileged_key: str


@asynccontextmanager
async def operations_stack(
    temporal: Client,
    folder: Path,
    sink: MailSink,
    *,
    plans_dir: Path | None = None,
    with_worker: bool = False,
) -> AsyncIterator[OperationsStack]:
    database_url = sqlite_url(folder)
    upgrade_database(database_url)
    settings = with_dev_secrets(
        Settings(
            _env_file=None,
            state_dir=folder,
            temporal_address="unused:0",
            task_queue=f"ops-{uuid.uuid4().hex[:8]}",
            database_url=database_url,
            smtp_port=sink.port,
            grpc_port=free_port(),
            plans_dir=plans_dir,
        )
    )
    admin_key = await create_key(database_url, sorted(ALL_SCOPES), name="ops")
    unprivileged = await create_key(
        database_url, sorted(ALL_SCOPES - {Scope.JOURNEYS_ADMIN}), name="no-admin"
    )
    async with (
        serving_api(temporal, settings, grace_seconds=1) as api,
        AftercareClient(settings.grpc_target, api_key=admin_key, timeout_seconds=30) as client,
    ):
        stack = OperationsStack(
            settings=settings,
            temporal=temporal,
            directory=api.parts.directory,
            client=client,
            api_key=admin_key,
            api_key_id=parse_key(admin_key)[0],
            unprivileged_key=unprivileged,
        )
        if with_worker:
            async with journey_worker(temporal, settings) as worker, worker:
                yield stack
        else:
            yield stack
