"""Files only their owner may read (secrets, keys, tokens), made once and race-free."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def create_once(path: Path, content: str) -> None:
    """Write ``content`` to ``path`` unless it exists, readable by the owner only.

    The complete file is written under a temporary name (mkstemp makes it 0600) and
    linked into place: link fails when the file exists, so when two processes start
    at once one wins, the other uses it, and nobody reads a half-written file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".private-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(content + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o600)
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)


def read_or_create(path: Path, make: Callable[[], str]) -> str:
    """The stripped content of ``path``, made with ``make()`` on first use."""
    if not path.exists():
        create_once(path, make())
    content = path.read_text(encoding="utf-8").strip()
    if not content:
        raise RuntimeError(f"{path} is empty: delete it to have a new one made")
    return content
