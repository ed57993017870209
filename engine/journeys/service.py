"""JourneyService: the gRPC face of :class:`engine.journeys.JourneyDirectory`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import grpc
from aftercare.v1 import journey_pb2 as pb
from aftercare.v1 import journey_pb2_grpc as pb_grpc
from temporalio.service import RPCError, RPCStatusCode

from engine.journeys import parsing as requests
from engine.journeys import replies as responses
from engine.journeys.directory import JourneyDirectory
from engine.journeys.errors import CustomerWasErased, JourneyError, NoPlanApplies
from engine.platform.logging import get_logger
from engine.platform.rpc.answers import Refusal, answer
from engine.platform.rpc.status import customer_erased, journey_error_code, no_plan
from engine.platform.rpc.violations import Violations

log = get_logger(__name__)

Reply = TypeVar("Reply")

MAX_PAGE_SIZE = 1000
_BAD_TOKEN_ANSWERS = frozenset({RPCStatusCode.UNKNOWN, RPCStatusCode.INVALID_ARGUMENT})
DEFAULT_PAGE_SIZE = 100


def _refusal(error: Exception) -> Refusal | None:
    if isinstance(error, CustomerWasErased):
        return customer_erased(error)
    if isinstance(error, NoPlanApplies):
        return no_plan(error)
    if isinstance(error, JourneyError):
        return journey_error_code(error), str(error)
    return None


async def _answer(
    context: grpc.aio.ServicerContext, method: str, work: Callable[[], Awaitable[Reply]]
) -> Reply:
    return await answer(
        context,
        method,
        work,
        refuse=_refusal,
        unavailable=lambda err: f"journey store unavailable: {err}",
    )


class JourneyServicer(pb_grpc.JourneyServiceServicer):
    def __init__(self, directory: JourneyDirectory) -> None:
        self._directory = directory

    async def StartJourney(
        self, request: pb.StartJourneyRequest, context: grpc.aio.ServicerContext
    ) -> pb.StartJourneyResponse:
        async def work() -> pb.StartJourneyResponse:
            v = Violations()
            if not request.HasField("order"):
                v.add("order", "is required")
                v.raise_if_any()
            order = requests.order(v, request.order, now=datetime.now(UTC))
            v.raise_if_any()
            started = await self._directory.start(order)
            log.info("journey start", order_id=order.order_id, created=started.created)
            return pb.StartJourneyResponse(journey_id=started.journey_id, created=started.created)

        return await _answer(context, "StartJourney", work)

    async def RecordEvent(
        self, request: pb.RecordEventRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecordEventResponse:
        async def work() -> pb.RecordEventResponse:
            v = Violations()
            order_id = requests.order_id(v, "order_id", request.order_id)
            if not request.HasField("event"):
                v.add("event", "is required")
                v.raise_if_any()
            now = datetime.now(UTC)
            event = requests.event(v, request.event, now=now)
            order = None
            if request.HasField("order"):
                order = requests.order(v, request.order, now=now)
                if request.order.order_id != request.order_id:
                    v.add("order.order_id", "must equal order_id")
            v.raise_if_any()
            journey_id = await self._directory.record_event(order_id, event, order)
            log.info("event recorded", order_id=order_id, type=event.type, id=event.event_id)
            return pb.RecordEventResponse(journey_id=journey_id)

        return await _answer(context, "RecordEvent", work)

    async def GetJourney(
        self, request: pb.GetJourneyRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetJourneyResponse:
        async def work() -> pb.GetJourneyResponse:
            v = Violations()
            order_id = requests.order_id(v, "order_id", request.order_id)
            v.raise_if_any()
            view = await self._directory.get(order_id)
            return pb.GetJourneyResponse(journey=responses.journey(view))

        return await _answer(context, "GetJourney", work)

    async def CancelJourney(
        self, request: pb.CancelJourneyRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelJourneyResponse:
        async def work() -> pb.CancelJourneyResponse:
            v = Violations()
            order_id = requests.order_id(v, "order_id", request.order_id)
            reason = v.text("reason", request.reason, required=False, max_length=500)
            v.raise_if_any()
            journey_id = await self._directory.cancel(order_id, reason)
            log.info("journey cancelled", order_id=order_id)
            return pb.CancelJourneyResponse(journey_id=journey_id)

        return await _answer(context, "CancelJourney", work)

    async def ListJourneys(
        self, request: pb.ListJourneysRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListJourneysResponse:
        async def work() -> pb.ListJourneysResponse:
            v = Violations()
            customer_id = (
                v.identifier("customer_id", request.customer_id) if request.customer_id else ""
            )
            stage = None
            if request.stage != pb.JOURNEY_STAGE_UNSPECIFIED:
                stage = requests.STAGES.get(request.stage)
                if stage is None:
                    v.add("stage", f"must be a known journey stage, got {request.stage}")
            if not 0 <= request.page_size <= MAX_PAGE_SIZE:
                v.add("page_size", f"must be between 0 and {MAX_PAGE_SIZE}")
            if len(request.page_token) > 4096:
                v.add("page_token", "is not a token this server issued")
            v.raise_if_any()
            try:
                page = await self._directory.list(
                    customer_id=customer_id,
                    stage=stage,
                    page_size=request.page_size or DEFAULT_PAGE_SIZE,
                    page_token=request.page_token,
                )
            except RPCError as err:
                # Temporal cannot read a token it did not issue (it answers UNKNOWN
                # or INVALID_ARGUMENT): that is the caller's mistake, not an outage.
                if request.page_token and err.status in _BAD_TOKEN_ANSWERS:
                    v.add("page_token", "is not a token this server issued")
                    v.raise_if_any()
                raise
            return pb.ListJourneysResponse(
                journeys=[responses.summary(item) for item in page.journeys],
                next_page_token=page.next_page_token,
            )

        return await _answer(context, "ListJourneys", work)
