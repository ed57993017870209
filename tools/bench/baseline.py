"""The bare-Temporal baseline: a trivial workflow running one trivial activity.

Every journey figure is divided by this one, measured on the same server and
machine in the same run, because absolute times on shared machines drift.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="baseline_echo")
async def baseline_echo(text: str) -> str:
    return text


@workflow.defn(name="BaselineWorkflow")
class BaselineWorkflow:
    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(
            baseline_echo, text, start_to_close_timeout=timedelta(seconds=30)
        )
