"""Cheap workflow instances in Temporal's sandbox: bytecode on disk; and the
choice of running without the sandbox at all.

The sandbox re-imports a workflow's module for every new workflow instance, so
that no state leaks between instances (the journey's pure building blocks are
already shared: ``workflows.order_journey`` imports them through
``workflow.unsafe.imports_passed_through``). Without a .pyc on disk
(PYTHONDONTWRITEBYTECODE is common in containers and CI) each of those imports
compiles the module's source again, most of the cost of starting an instance.

The SDK's sandbox also runs every activation, and every question about a payload's
serialization context (several per activation), as ``exec`` of a short source
string, compiling it again each time and applying its import hooks around it.
``PrecompiledSandboxRunner`` is the same sandbox with those strings compiled once,
and the context questions (SDK code that reads the instance's pending commands; no
workflow code runs in it) asked directly.

What is left of the sandbox's cost (a module import per new instance, an import
hook around every activation and every payload conversion) is still a large share
of the journey worker's CPU (docs/performance.md). ``AFTERCARE_WORKFLOW_SANDBOX=false``
runs journeys without it; the determinism it guards is still checked where it is
cheap: the recorded histories replay in the sandbox in ``make test``.
"""

from __future__ import annotations

import compileall
import inspect
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import CodeType
from typing import Any

# The sandbox's instance class is private, as are the types its methods take: the
# SDK is pinned to one version in uv.lock, and tests/engine/test_sandbox.py compares
# what this answers with the stock sandbox.
from temporalio.converter import SerializationContext
from temporalio.converter._extstore import StorageDriverStoreContext
from temporalio.worker import (
    UnsandboxedWorkflowRunner,
    WorkflowInstance,
    WorkflowInstanceDetails,
    WorkflowRunner,
)
from temporalio.worker._command_aware_visitor import CommandInfo
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox._in_sandbox import InSandbox
from temporalio.worker.workflow_sandbox._runner import _Instance as SandboxInstance

from engine.platform.settings import Settings


def workflow_runner(settings: Settings) -> WorkflowRunner:
    """The sandbox unless the settings turn it off."""
    if settings.workflow_sandbox:
        return PrecompiledSandboxRunner()
    return UnsandboxedWorkflowRunner()


@dataclass(frozen=True)
class PrecompiledSandboxRunner(SandboxedWorkflowRunner):
    """The SDK's sandbox, same restrictions and same isolation, whose instances
    compile each of the SDK's code strings once per process instead of per call."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return PrecompiledSandboxInstance(det, self.runner_class, self.restrictions)


class PrecompiledSandboxInstance(SandboxInstance):
    def get_serialization_context(
        self, command_info: CommandInfo | None
    ) -> SerializationContext | None:
        return self._inside().get_serialization_context(command_info)

    def get_external_store_context(
        self, command_info: CommandInfo | None
    ) -> StorageDriverStoreContext:
        return self._inside().get_external_store_context(command_info)

    def _inside(self) -> InSandbox:
        """The SDK's object inside the sandbox that runs this workflow instance."""
        inside = self.globals_and_locals["__temporal_in_sandbox"]
        assert isinstance(inside, InSandbox)
        return inside

    def _run_code(self, code: str | CodeType, **extra_globals: Any) -> None:
        if isinstance(code, str):
            code = compiled_sandbox_code(code)
        # exec, which the SDK's _run_code hands the code to, takes a code object as
        # readily as a string, and runs it in the same globals.
        super()._run_code(code, **extra_globals)  # type: ignore[arg-type]


@lru_cache(maxsize=256)
def compiled_sandbox_code(source: str) -> CodeType:
    """A handful of distinct strings: an activation, the two context questions, and
    an instance's imports per workflow class."""
    return compile(source, "<workflow sandbox>", "exec")


def write_bytecode_for(workflow_class: type) -> None:
    """Write the .pyc files of the folder holding ``workflow_class``'s module, once
    at worker start, so sandboxed imports read bytecode instead of compiling. On a
    read-only install this quietly does nothing."""
    write_bytecode_beside(inspect.getsourcefile(workflow_class))


def write_bytecode_beside(source: str | None) -> None:
    if source is not None:
        compileall.compile_dir(Path(source).parent, quiet=2, maxlevels=0)
