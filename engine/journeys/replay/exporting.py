"""Writing decoded, anonymised histories as JSON files that replay.

The format is Temporal's history JSON (``temporal workflow show --output json``,
``WorkflowHistory.to_json``), which ``aftercare replay --file`` and the test replayer
(``tests/workflows/test_replay.py``) read; the journey id is the file name.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from google.protobuf import json_format
from temporalio.api.history.v1 import History

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def export_path(directory: Path, workflow_id: str) -> Path:
    """Where ``workflow_id``'s history goes: a file name with only safe characters."""
    return directory / f"{_UNSAFE.sub('_', workflow_id)}.json"


async def write_history(directory: Path, workflow_id: str, history: History) -> Path:
    path = export_path(directory, workflow_id)
    text = json_format.MessageToJson(history, indent=2) + "\n"
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(path.write_text, text)
    return path
