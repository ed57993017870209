"""Journey operations against Temporal, in domain terms (no gRPC here).

The gRPC servicer and the CLI both go through :class:`JourneyDirectory`, so the
rules (one journey per order, idempotent start, ended journeys stay ended) live
in one place.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from temporalio.api.workflow.v1 import WorkflowExecutionInfo
from temporalio.api.workflowservice.v1 import ListWorkflowExecutionsRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.converter import decode_typed_search_attributes
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from engine.journeys.errors import (
    CustomerWasErased,
    JourneyAlreadyExists,
    JourneyEnded,
    JourneyNotFound,
    NoPlanApplies,
)
from engine.journeys.outbound_events import JourneyEventsOutbox
from engine.platform.codec.customer_codec import customer_keys_of
from engine.platform.database.erasure_marks import CustomerErased
from workflows import search_attributes as sa
from workflows.contracts import UndeliveredMessage
from workflows.ids import journey_id_for, order_id_from
from workflows.order_journey import OrderJourney
from workflows.orders import Order, OrderEvent
from workflows.overrides import CustomerOverrides
from workflows.plans.catalogue import PlanError, choose_plan
from workflows.plans.model import PinnedPlan
from workflows.state import JourneyInput, JourneyState
from workflows.vocabulary import EventType, Stage

# Signals to a journey that was not there yet but is running when looked up.
SIGNAL_ATTEMPTS = 3
# Carriers can report a parcel before the order system starts the journey; these
# events may start it when they bring the order along. Others need a journey.
EVENTS_THAT_MAY_START = frozenset(
    {EventType.SHIPPED, EventType.OUT_FOR_DELIVERY, EventType.DELIVERED}
)


class CustomerChoices(Protocol):
    """What a starting journey learns of its customer (implemented by
    ``engine.customers.journey_link.StoredChoices``)."""

    async def at_start(self, customer_id: str) -> CustomerOverrides | None:
        """The customer's stored choices, None when they made none. Raises
        CustomerWasErased for a customer whose data was erased: no journey may
        start for them, nor a data key be made for them again."""
        ...


@dataclass(frozen=True)
class StartedJourney:
    journey_id: str
    created: bool


@dataclass(frozen=True)
class JourneyView:
    state: JourneyState
    status: WorkflowExecutionStatus


@dataclass(frozen=True)
class JourneySummary:
    journey_id: str
    order_id: str
    customer_id: str
    stage: Stage | None
    status: WorkflowExecutionStatus
    started_at: datetime
    closed_at: datetime | None


@dataclass(frozen=True)
class JourneyPage:
    journeys: list[JourneySummary]
    next_page_token: bytes


def _visibility_literal(value: str) -> str:
    # Callers validate ids to a safe character set; escaping stays as a second guard.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class JourneyDirectory:
    def __init__(
        self,
        client: Client,
        task_queue: str,
        customers: CustomerChoices | None = None,
        plans: Mapping[str, PinnedPlan] | None = None,
        outbox: JourneyEventsOutbox | None = None,
    ) -> None:
        self._client = client
        # Without it, no journey events go to subscribers from here.
        self._outbox = outbox
        self._task_queue = task_queue
        # With a customer-key codec each journey is encrypted under its customer's
        # data key (crypto-shredding): the owner is recorded before its first payload.
        self._customer_keys = customer_keys_of(client)
        # Without it, journeys start with the order's own settings and no erasure check.
        self._customers = customers
        # The deployment's plans (engine.journeys.plans.deployment_plans): a journey
        # starts with its plan chosen and pinned in its input, so its first workflow
        # task runs no local activity to choose it. Without, the journey chooses.
        self._plans = plans

    async def start(self, order: Order) -> StartedJourney:
        journey_id = journey_id_for(order.order_id)
        plan = self._plan_for(order)
        try:
            await self._start_workflow(order, plan, conflict=WorkflowIDConflictPolicy.FAIL)
        except WorkflowAlreadyStartedError:
            status = await self._status(order.order_id)
            if status == WorkflowExecutionStatus.RUNNING:
                return StartedJourney(journey_id=journey_id, created=False)
            raise JourneyAlreadyExists(order.order_id) from None
        return StartedJourney(journey_id=journey_id, created=True)

    async def record_event(
        self, order_id: str, event: OrderEvent, order: Order | None = None
    ) -> str:
        """Deliver ``event``; with ``order`` and a delivery event, start the journey
        first if it does not exist yet (signal-with-start: one atomic step)."""
        if order is not None and event.type in EVENTS_THAT_MAY_START:
            journey_id = await self._signal_with_start(order, event)
        else:
            journey_id = await self._signal(order_id, event)
        if self._outbox is not None:
            await self._outbox.event_taken(journey_id, event)
        return journey_id

    async def _signal(self, order_id: str, event: OrderEvent) -> str:
        handle = self._handle(order_id)
        for _ in range(SIGNAL_ATTEMPTS):
            try:
                await handle.signal(OrderJourney.record_event, event)
                return handle.id
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
            # Either no journey, or one that has ended: tell the caller which. One
            # found running was started between the signal and the describe (an
            # event racing its order's StartJourney): signal it again.
            status = await self._status(order_id)
            if status != WorkflowExecutionStatus.RUNNING:
                raise JourneyEnded(order_id, status)
        raise JourneyEnded(order_id, WorkflowExecutionStatus.RUNNING)

    async def _signal_with_start(self, order: Order, event: OrderEvent) -> str:
        try:
            # Checked, not carried: most carrier events find the journey running, so
            # the plan's bytes would go for nothing. A journey this starts chooses
            # the same plan in its first workflow task.
            self._plan_for(order)
        except NoPlanApplies as no_plan:
            # A journey started under other plans still takes its events; only a
            # missing one is refused, as nothing could start it.
            try:
                return await self._signal(order.order_id, event)
            except JourneyNotFound:
                raise no_plan from None
        try:
            # A running journey just receives the signal.
            await self._start_workflow(
                order, None, conflict=WorkflowIDConflictPolicy.USE_EXISTING, signal=event
            )
        except WorkflowAlreadyStartedError:
            raise JourneyEnded(order.order_id, await self._status(order.order_id)) from None
        return journey_id_for(order.order_id)

    async def _start_workflow(
        self,
        order: Order,
        plan: PinnedPlan | None,
        *,
        conflict: WorkflowIDConflictPolicy,
        signal: OrderEvent | None = None,
    ) -> None:
        """Start the order's journey (with ``signal`` as its first signal): the
        customer's erasure check and stored choices, the owner of its data key, then
        the workflow. Raises WorkflowAlreadyStartedError as Temporal does."""
        journey_id = journey_id_for(order.order_id)
        overrides = await self._customers.at_start(order.customer.id) if self._customers else None
        has_other_journeys = await self._register_owner(journey_id, order)
        journey = JourneyInput(
            order=order,
            plan=plan,
            overrides=overrides,
            customer_has_other_journeys=has_other_journeys,
        )
        if self._outbox is not None:
            # Before the start, so it precedes the journey's own events; a start that
            # then fails is retried by its caller (the event, once recorded, stays one).
            await self._outbox.started(order, plan.label if plan else None)
        await self._client.start_workflow(
            OrderJourney.run,
            journey,
            id=journey_id,
            task_queue=self._task_queue,
            # A closed journey's id is never reused: the order id is the key.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=conflict,
            start_signal="record_event" if signal is not None else None,
            start_signal_args=[signal] if signal is not None else [],
            search_attributes=initial_search_attributes(order),
            static_summary=_summary_text(order),
        )

    async def get(self, order_id: str) -> JourneyView:
        handle = self._handle(order_id)
        try:
            description, state = await asyncio.gather(
                handle.describe(), handle.query(OrderJourney.state)
            )
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise JourneyNotFound(order_id) from None
            raise
        status = description.status or WorkflowExecutionStatus.RUNNING
        return JourneyView(state=state, status=status)

    async def cancel(self, order_id: str, reason: str) -> str:
        status = await self._status(order_id)
        if status != WorkflowExecutionStatus.RUNNING:
            raise JourneyEnded(order_id, status)
        handle = self._handle(order_id)
        await handle.cancel(reason=reason or "cancelled through the API")
        return handle.id

    async def terminate(self, order_id: str, reason: str) -> str:
        """End the order's journey at once: unlike a cancel, the workflow runs no more
        code, so it is closed when this returns (erasure needs that before it can
        destroy the customer's key). JourneyEnded if it had already ended."""
        status = await self._status(order_id)
        if status != WorkflowExecutionStatus.RUNNING:
            raise JourneyEnded(order_id, status)
        handle = self._handle(order_id)
        try:
            await handle.terminate(reason=reason)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            # It closed between the describe and the terminate.
            raise JourneyEnded(order_id, await self._status(order_id)) from None
        return handle.id

    async def list(
        self,
        *,
        customer_id: str = "",
        stage: Stage | None = None,
        page_size: int = 100,
        page_token: bytes = b"",
    ) -> JourneyPage:
        clauses = [f"WorkflowType = {_visibility_literal(OrderJourney.__name__)}"]
        if customer_id:
            clauses.append(f"{sa.CUSTOMER_ID.name} = {_visibility_literal(customer_id)}")
        if stage is not None:
            clauses.append(f"{sa.JOURNEY_STAGE.name} = {_visibility_literal(stage.value)}")
        request = ListWorkflowExecutionsRequest(
            namespace=self._client.namespace,
            page_size=page_size,
            next_page_token=page_token,
            query=" AND ".join(clauses),
        )
        # A page token comes from the caller and may be garbage, which Temporal answers
        # with UNKNOWN; the client retries that answer for about ten seconds, as long
        # as an API call may take. So a call with a token is not retried: a bad token
        # is refused at once (and a server hiccup while paging is the caller's to retry).
        response = await self._client.workflow_service.list_workflow_executions(
            request, retry=not page_token
        )
        return JourneyPage(
            journeys=[_summary(info) for info in response.executions],
            next_page_token=response.next_page_token,
        )

    async def signal_preferences(self, customer_id: str, overrides: CustomerOverrides) -> int:
        """Tell every running journey of the customer their current choices (the
        ``preferences_changed`` signal; no personal data). Returns how many journeys
        were signalled."""
        signalled = 0
        for summary in await self.customer_journeys(customer_id, running_only=True):
            handle = self._client.get_workflow_handle_for(OrderJourney.run, summary.journey_id)
            try:
                await handle.signal(OrderJourney.preferences_changed, overrides)
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
                continue  # it ended since the listing: nothing left to tell
            signalled += 1
        return signalled

    async def report_undelivered(self, journey_id: str, report: UndeliveredMessage) -> None:
        """Tell the journey that a text it sent was not delivered (it decides whether
        the step's next channel goes); a journey that has ended is left alone."""
        handle = self._client.get_workflow_handle_for(OrderJourney.run, journey_id)
        try:
            await handle.signal(OrderJourney.message_undelivered, report)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise

    async def customer_journeys(
        self, customer_id: str, *, running_only: bool = False
    ) -> builtins.list[JourneySummary]:
        """Every journey of the customer that visibility knows, newest first."""
        clauses = [
            f"WorkflowType = {_visibility_literal(OrderJourney.__name__)}",
            f"{sa.CUSTOMER_ID.name} = {_visibility_literal(customer_id)}",
        ]
        if running_only:
            clauses.append("ExecutionStatus = 'Running'")
        return [
            _summary(execution.raw_info)
            async for execution in self._client.list_workflows(" AND ".join(clauses))
        ]

    def _plan_for(self, order: Order) -> PinnedPlan | None:
        """The plan the journey pins (None: it chooses in its first workflow task).
        Chosen before anything is written, so an order no plan covers changes nothing."""
        if self._plans is None:
            return None
        try:
            return choose_plan(order, self._plans)
        except PlanError as err:
            raise NoPlanApplies(str(err)) from None

    async def _register_owner(self, journey_id: str, order: Order) -> bool:
        """Whether the customer has other journeys (True when there is no registry
        to ask: the journey then searches for them itself)."""
        if self._customer_keys is None:
            return True
        try:
            return await self._customer_keys.register_journey(journey_id, order.customer.id)
        except CustomerErased:
            # Erased between the choices read and the registration (a racing erasure).
            raise CustomerWasErased("order.customer.id") from None

    def _handle(self, order_id: str) -> WorkflowHandle[OrderJourney, JourneyState]:
        return self._client.get_workflow_handle_for(OrderJourney.run, journey_id_for(order_id))

    async def status(self, order_id: str) -> WorkflowExecutionStatus:
        """The status of the order's journey; JourneyNotFound if it has none."""
        return await self._status(order_id)

    async def _status(self, order_id: str) -> WorkflowExecutionStatus:
        try:
            description = await self._handle(order_id).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise JourneyNotFound(order_id) from None
            raise
        return description.status or WorkflowExecutionStatus.RUNNING


def initial_search_attributes(order: Order) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(sa.ORDER_ID, order.order_id),
            SearchAttributePair(sa.CUSTOMER_ID, order.customer.id),
            SearchAttributePair(sa.JOURNEY_STAGE, Stage.ORDERED.value),
        ]
    )


def _summary_text(order: Order) -> str:
    # Shown in the Temporal UI's list: ids and counts only, no personal data.
    return f"Order {order.order_id} · {order.item_count} item(s)"


def _summary(info: WorkflowExecutionInfo) -> JourneySummary:
    attributes = decode_typed_search_attributes(info.search_attributes)
    stage = attributes.get(sa.JOURNEY_STAGE)
    return JourneySummary(
        journey_id=info.execution.workflow_id,
        order_id=attributes.get(sa.ORDER_ID) or order_id_from(info.execution.workflow_id),
        customer_id=attributes.get(sa.CUSTOMER_ID) or "",
        stage=Stage(stage) if stage and stage in Stage._value2member_map_ else None,
        status=WorkflowExecutionStatus(info.status)
        if info.status
        else WorkflowExecutionStatus.RUNNING,
        started_at=info.start_time.ToDatetime(tzinfo=UTC),
        closed_at=info.close_time.ToDatetime(tzinfo=UTC) if info.HasField("close_time") else None,
    )
