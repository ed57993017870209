"""Cheap workflow instances in Temporal's sandbox: bytecode on disk; and the
choice of running without the sandbox at all.

The sandbox re-imports a workflow's module for every new workflow instance, so
that no state leaks between instances (the journey's pure building blocks are
already shared: ``workflows.order_journey`` imports them through
``workflow.unsafe.imports_passed_through``). Without a .pyc on disk
(PYTHONDONTWRITEBYTECODE is common in containers and CI) each of those imports
compiles the module's source again; py-spy on ``make bench`` put that at 40% of
the cost of starting a workflow instance.

What is left of the sandbox's cost (a module import per new instance, an import
hook around every activation and every payload conversion) was a quarter of the
journey worker's CPU in ``make bench``. ``AFTERCARE_WORKFLOW_SANDBOX=false`` runs
journeys without it; the determinism it guards is still checked where it is
cheap: the recorded histories replay in the sandbox in ``make test``.
"""

from __future__ import annotations

import compileall
import inspect
from pathlib import Path

from temporalio.worker import UnsandboxedWorkflowRunner, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from engine.settings import Settings


def workflow_runner(settings: Settings) -> WorkflowRunner:
    """The sandbox (the SDK's default runner) unless the settings turn it off."""
    if settings.workflow_sandbox:
        return SandboxedWorkflowRunner()
    return UnsandboxedWorkflowRunner()


def write_bytecode_for(workflow_class: type) -> None:
    """Write the .pyc files of the folder holding ``workflow_class``'s module, once
    at worker start, so sandboxed imports read bytecode instead of compiling. On a
    read-only install this quietly does nothing."""
    write_bytecode_beside(inspect.getsourcefile(workflow_class))


def write_bytecode_beside(source: str | None) -> None:
    if source is not None:
        compileall.compile_dir(Path(source).parent, quiet=2, maxlevels=0)
