"""Starting and stopping a subscription's WebhookDispatch workflow."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from workflows.webhook_contracts import (
    WEBHOOK_TRANSPORT,
    WebhookDispatchInput,
    dispatch_workflow_id,
)
from workflows.webhook_dispatch import WebhookDispatch


class Dispatchers:
    def __init__(self, client: Client, task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue

    async def start(
        self, subscription_id: str, cursor: int, *, transport: str = WEBHOOK_TRANSPORT
    ) -> None:
        """Start delivering the events after outbox id ``cursor`` (by webhook, or to
        the broker); a running dispatcher of the subscription stays as it is."""
        await self._client.start_workflow(
            WebhookDispatch.run,
            WebhookDispatchInput(
                subscription_id=subscription_id, cursor=cursor, transport=transport
            ),
            id=dispatch_workflow_id(subscription_id),
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"journey events to subscription {subscription_id}",
        )

    async def stop(self, subscription_id: str) -> None:
        """Cancel the dispatcher (it also ends by itself once it sees the removal)."""
        handle = self._client.get_workflow_handle(dispatch_workflow_id(subscription_id))
        try:
            await handle.cancel()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
