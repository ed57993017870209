"""A throwaway stack for journeys in virtual time: the time-skipping test server, the
real worker, a database and mail sink in a temporary folder. Nothing reaches a
customer; everything is gone when the context ends (``aftercare simulate``, ``plans
check``)."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from engine.devstack.mail_sink import MailSink
from engine.platform.database.migrate import upgrade_database
from engine.platform.settings import Settings
from engine.processes.dev_stack import with_dev_secrets
from engine.processes.worker import journey_worker
from engine.simulation.time_skipping import start_time_skipping


@dataclass(frozen=True)
class SandboxStack:
    env: WorkflowEnvironment
    task_queue: str


@asynccontextmanager
async def sandbox_stack(label: str, plans_dir: Path | None = None) -> AsyncIterator[SandboxStack]:
    """The server and a running worker on the journeys' task queue ``label-...``."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        database = f"sqlite+aiosqlite:///{folder / f'{label}.db'}"
        upgrade_database(database)
        sink = MailSink("127.0.0.1", 0, None)
        await sink.start()
        env = await start_time_skipping()
        try:
            settings = Settings(
                _env_file=None,
                state_dir=folder,
                task_queue=f"{label}-{uuid.uuid4().hex[:8]}",
                database_url=database,
                smtp_port=sink.port,
                plans_dir=plans_dir,
            )
            settings = with_dev_secrets(settings)  # made for this throwaway folder alone
            async with journey_worker(env.client, settings) as worker, worker:
                yield SandboxStack(env, settings.task_queue)
        finally:
            await env.shutdown()
            await sink.stop()
