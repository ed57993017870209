"""The build id a worker reports to Temporal: a hash of the code it runs.

Temporal records it on every workflow task a worker completes, so an operator can
tell which build handled a step (and reset journeys to before a bad build). Left to
itself, the SDK derives one by loading the bytecode of every module in the process,
ours and every library's; with no .pyc files on disk (PYTHONDONTWRITEBYTECODE, common
in containers and CI) that compiles them all again from source, several seconds of
CPU at every worker start: after a crash, a deploy or a scale-up, the seconds before
the worker takes its first task. Our build is our packages' files (code, plans,
templates) and the versions of the libraries it runs on, which uv.lock pins.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]
# What a worker runs: the journey's workflow code and plans, the activities and their
# templates, and the engine they use (settings, database, codec).
BUILD_PACKAGES = ("workflows", "activities", "engine")
# The libraries whose upgrade can change what a journey does or how it replays.
RUNTIME_LIBRARIES = ("temporalio", "pydantic", "jinja2", "sqlalchemy")


@cache
def worker_build_id() -> str:
    """This checkout's (or installation's) build id, computed once per process."""
    return build_id_of(PROJECT_ROOT)


def build_id_of(root: Path) -> str:
    """``aftercare-<first 16 hex of the hash>``: the same for the same files under
    ``root`` and the same library versions, on any machine."""
    digest = hashlib.sha256()
    for library in RUNTIME_LIBRARIES:
        digest.update(f"{library}=={_installed(library)}\n".encode())
    for path in _build_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return f"aftercare-{digest.hexdigest()[:16]}"


def _build_files(root: Path) -> list[Path]:
    return sorted(
        path
        for package in BUILD_PACKAGES
        for path in (root / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    )


def _installed(library: str) -> str:
    try:
        return version(library)
    except PackageNotFoundError:
        return "absent"
