"""The ``supersede_replenishment`` activity: a new order of a consumable stops the
reminders that older journeys of the same customer would send for it."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from workflows import search_attributes as sa
from workflows.contracts import SUPERSEDE_REPLENISHMENT_ACTIVITY, SupersedeInput, SupersedeResult
from workflows.orders import OrderEvent
from workflows.vocabulary import EventType


class SupersedeActivities:
    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn(name=SUPERSEDE_REPLENISHMENT_ACTIVITY)
    async def supersede_replenishment(self, request: SupersedeInput) -> SupersedeResult:
        # Customer ids are validated to a quote-free character set at the API.
        query = (
            f'WorkflowType = "OrderJourney" AND ExecutionStatus = "Running" '
            f'AND {sa.CUSTOMER_ID.name} = "{request.customer_id}"'
        )
        notified: list[str] = []
        try:
            executions = [execution async for execution in self._client.list_workflows(query)]
        except RPCError as err:
            if err.status != RPCStatusCode.UNIMPLEMENTED:
                raise
            # A server without visibility (the time-skipping test server behind
            # `aftercare simulate`): there is nothing to find, so nothing to stop.
            activity.logger.warning("no visibility on this server; no journeys searched")
            return SupersedeResult(notified_journeys=notified)
        for execution in executions:
            if execution.id == request.journey_id:
                continue
            event = OrderEvent(
                # The same id on every retry: the older journey applies it once.
                event_id=f"superseded-by:{request.journey_id}",
                type=EventType.REORDERED,
                occurred_at=datetime.now(UTC),
                skus=list(request.skus),
            )
            try:
                await self._client.get_workflow_handle(execution.id).signal("record_event", event)
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
                continue  # it ended between the listing and the signal: nothing to stop
            notified.append(execution.id)
        return SupersedeResult(notified_journeys=notified)
