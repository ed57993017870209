"""The build id our workers report: a hash of our packages' files and the runtime
libraries' versions, computed without compiling every loaded module (the SDK's
default), and recorded on the workflow tasks of a journey."""

from __future__ import annotations

import shutil
from pathlib import Path

from temporalio.api.enums.v1 import EventType

from engine.cli.samples import sample_order
from engine.platform.temporal.build_id import (
    BUILD_PACKAGES,
    PROJECT_ROOT,
    build_id_of,
    worker_build_id,
)
from tests.conftest import Service
from tests.support.ids import new_order_id


def copy_of_the_build(destination: Path) -> Path:
    for package in BUILD_PACKAGES:
        shutil.copytree(
            PROJECT_ROOT / package,
            destination / package,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    return destination


def test_the_same_files_give_the_same_id_anywhere(tmp_path: Path) -> None:
    copy = copy_of_the_build(tmp_path / "elsewhere")
    assert worker_build_id().startswith("aftercare-")
    assert build_id_of(copy) == worker_build_id()
    # Bytecode is not the build: it depends on the interpreter and on the environment.
    cache = copy / "workflows" / "__pycache__"
    cache.mkdir()
    (cache / "order_journey.cpython-311.pyc").write_bytes(b"\x00" * 16)
    assert build_id_of(copy) == worker_build_id()


def test_a_changed_plan_or_template_or_line_of_code_is_another_build(tmp_path: Path) -> None:
    copy = copy_of_the_build(tmp_path / "changed")
    seen = {build_id_of(copy)}
    for changed in (
        copy / "workflows" / "plans" / "default.yaml",
        next((copy / "activities").rglob("*.j2")),
        copy / "workflows" / "order_journey.py",
    ):
        changed.write_bytes(changed.read_bytes() + b"\n")
        seen.add(build_id_of(copy))
    assert len(seen) == 4


async def test_every_workflow_task_of_a_journey_names_the_build(service: Service) -> None:
    started = await service.client.start_journey(sample_order(new_order_id("BUILD")))
    await service.mails_for(started.journey_id, 1)  # the confirmation

    handle = service.temporal.get_workflow_handle(started.journey_id)
    history = await handle.fetch_history()
    completed = [
        event.workflow_task_completed_event_attributes
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    ]
    assert completed
    assert {task.worker_version.build_id for task in completed} == {worker_build_id()}
