"""JourneyService: the gRPC face of :class:`engine.journeys.directory.JourneyDirectory`."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from aftercare.v1 import journey_pb2 as pb
from aftercare.v1 import journey_pb2_grpc as pb_grpc
from aftercare.v1.failures import CUSTOMER_ERASED, NO_PLAN
from temporalio.service import RPCError, RPCStatusCode

from engine.insights.attribution import ConversionAttribution
from engine.journeys import parsing, replies
from engine.journeys.directory import JourneyDirectory
from engine.journeys.errors import (
    CustomerWasErased,
    JourneyAlreadyExists,
    JourneyEnded,
    JourneyError,
    JourneyNotFound,
    NoPlanApplies,
)
from engine.platform.logging import get_logger
from engine.platform.rpc.answers import Refusal, answered
from engine.platform.rpc.status import precondition_failed
from workflows.ids import journey_id_for
from workflows.vocabulary import EventType

log = get_logger(__name__)

# What Temporal answers a page token it did not issue.
_BAD_TOKEN_ANSWERS = frozenset({RPCStatusCode.UNKNOWN, RPCStatusCode.INVALID_ARGUMENT})


def _refusal(error: Exception) -> Refusal | None:
    if isinstance(error, CustomerWasErased | NoPlanApplies):
        # Retrying cannot help: the details say which precondition and which field.
        kind = CUSTOMER_ERASED if isinstance(error, CustomerWasErased) else NO_PLAN
        return precondition_failed(kind, error.field, str(error))
    if isinstance(error, JourneyNotFound):
        return grpc.StatusCode.NOT_FOUND, str(error)
    if isinstance(error, JourneyAlreadyExists):
        return grpc.StatusCode.ALREADY_EXISTS, str(error)
    if isinstance(error, JourneyEnded):
        return grpc.StatusCode.FAILED_PRECONDITION, str(error)
    if isinstance(error, JourneyError):
        return grpc.StatusCode.INTERNAL, str(error)
    return None


_answered = answered(refuse=_refusal, unavailable=lambda err: f"journey store unavailable: {err}")


class JourneyServicer(pb_grpc.JourneyServiceServicer):
    def __init__(
        self, directory: JourneyDirectory, conversions: ConversionAttribution | None = None
    ) -> None:
        self._directory = directory
        # None: purchases are not attributed to messages (no database at hand).
        self._conversions = conversions

    @_answered
    async def StartJourney(
        self, request: pb.StartJourneyRequest, context: grpc.aio.ServicerContext
    ) -> pb.StartJourneyResponse:
        order = parsing.start_request(request, now=datetime.now(UTC))
        started = await self._directory.start(order)
        log.info("journey start", order_id=order.order_id, created=started.created)
        if started.created and self._conversions is not None:
            # In the background: the journey has started whatever this says.
            self._conversions.later(self._conversions.order_placed(order))
        return pb.StartJourneyResponse(journey_id=started.journey_id, created=started.created)

    @_answered
    async def RecordEvent(
        self, request: pb.RecordEventRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecordEventResponse:
        wanted = parsing.event_request(request, now=datetime.now(UTC))
        journey_id = await self._directory.record_event(wanted.order_id, wanted.event, wanted.order)
        if wanted.event.type == EventType.REORDERED and self._conversions is not None:
            self._conversions.later(
                self._conversions.reordered(
                    journey_id_for(wanted.order_id), wanted.event, wanted.order
                )
            )
        log.info(
            "event recorded",
            order_id=wanted.order_id,
            type=wanted.event.type,
            id=wanted.event.event_id,
        )
        return pb.RecordEventResponse(journey_id=journey_id)

    @_answered
    async def GetJourney(
        self, request: pb.GetJourneyRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetJourneyResponse:
        view = await self._directory.get(parsing.order_id_request(request.order_id))
        return pb.GetJourneyResponse(journey=replies.journey(view))

    @_answered
    async def CancelJourney(
        self, request: pb.CancelJourneyRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelJourneyResponse:
        order_id, reason = parsing.cancel_request(request)
        journey_id = await self._directory.cancel(order_id, reason)
        log.info("journey cancelled", order_id=order_id)
        return pb.CancelJourneyResponse(journey_id=journey_id)

    @_answered
    async def ListJourneys(
        self, request: pb.ListJourneysRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListJourneysResponse:
        wanted = parsing.list_request(request)
        try:
            page = await self._directory.list(
                customer_id=wanted.customer_id,
                stage=wanted.stage,
                page_size=wanted.page_size,
                page_token=wanted.page_token,
            )
        except RPCError as err:
            # Temporal cannot read a token it did not issue: that is the caller's
            # mistake, not an outage.
            if wanted.page_token and err.status in _BAD_TOKEN_ANSWERS:
                raise parsing.bad_page_token() from None
            raise
        return pb.ListJourneysResponse(
            journeys=[replies.summary(item) for item in page.journeys],
            next_page_token=page.next_page_token,
        )
