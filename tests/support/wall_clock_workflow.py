"""A workflow that tries to read the wall clock: the sandbox must refuse it. Kept in
a module of its own with few imports, because the sandbox imports the module of
every workflow it runs afresh."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow
from temporalio.worker.workflow_sandbox import RestrictedWorkflowAccessError


@workflow.defn
class ReadsTheWallClock:
    @workflow.run
    async def run(self) -> str:
        try:
            datetime.now()
        except RestrictedWorkflowAccessError:
            return "refused"
        return "allowed"
