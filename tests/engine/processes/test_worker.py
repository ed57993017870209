"""The service's workers as ``aftercare worker`` builds them: one for journeys, one per
channel for the sends, and the journey worker's tuning."""

from __future__ import annotations

import uuid
from pathlib import Path

from temporalio.client import Client

from engine.platform.database.migrate import upgrade_database
from engine.platform.settings import Settings
from engine.platform.temporal.build_id import worker_build_id
from engine.processes.dev_stack import with_dev_secrets
from engine.processes.worker import EXTERNAL_STORAGE_CONCURRENCY, journey_worker
from tests.support.databases import sqlite_url
from workflows.contracts import channel_task_queue
from workflows.vocabulary import Channel


async def test_the_journey_worker_walks_payloads_in_line_and_each_channel_has_a_queue(
    temporal_client: Client, tmp_path: Path
) -> None:
    database = sqlite_url(tmp_path)
    upgrade_database(database)
    settings = Settings(
        _env_file=None,
        state_dir=tmp_path,
        task_queue=f"worker-{uuid.uuid4().hex[:8]}",
        database_url=database,
    )
    settings = with_dev_secrets(settings)  # kept under the state dir, as `aftercare run` does
    async with journey_worker(temporal_client, settings) as group:
        configs = [worker.config() for worker in group.workers]

    journeys = [config for config in configs if config.get("workflows")]
    assert [config["task_queue"] for config in journeys] == [settings.task_queue]
    assert EXTERNAL_STORAGE_CONCURRENCY == 1
    assert journeys[0]["max_workflow_task_external_storage_concurrency"] == 1
    sends = sorted(config["task_queue"] for config in configs if not config.get("workflows"))
    assert sends == sorted(channel_task_queue(settings.task_queue, c) for c in Channel)
    # Every worker reports our build id, not the SDK's hash of every loaded module.
    assert {config.get("build_id") for config in configs} == {worker_build_id()}
