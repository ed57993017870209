"""Cheap workflow instances in Temporal's sandbox: bytecode on disk.

The sandbox re-imports a workflow's module for every new workflow instance, so
that no state leaks between instances (the journey's pure building blocks are
already shared: ``workflows.order_journey`` imports them through
``workflow.unsafe.imports_passed_through``). Without a .pyc on disk
(PYTHONDONTWRITEBYTECODE is common in containers and CI) each of those imports
compiles the module's source again; py-spy on ``make bench`` put that at 40% of
the cost of starting a workflow instance.
"""

from __future__ import annotations

import compileall
import inspect
from pathlib import Path


def write_bytecode_for(workflow_class: type) -> None:
    """Write the .pyc files of the folder holding ``workflow_class``'s module, once
    at worker start, so sandboxed imports read bytecode instead of compiling. On a
    read-only install this quietly does nothing."""
    write_bytecode_beside(inspect.getsourcefile(workflow_class))


def write_bytecode_beside(source: str | None) -> None:
    if source is not None:
        compileall.compile_dir(Path(source).parent, quiet=2, maxlevels=0)
