"""OperationsService: pausing sending by scope, and bulk operations on journeys.

Pauses live in our database (:class:`engine.messaging.pauses.PauseRegistry`): the
send activity asks it before every send, so a pause holds messages within seconds
in every journey. Lifting one also tells the journeys holding a message to ask
again now, by a bulk signal. Bulk operations are Temporal batch operations
(:mod:`engine.journeys.operations.bulk`). Who paused or lifted a pause is the
calling API key (``engine.platform.rpc.caller``), recorded with the pause; bulk
operations carry it as their Temporal identity.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from aftercare.v1 import operations_pb2 as pb
from aftercare.v1 import operations_pb2_grpc as pb_grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from activities.email.rendering import TEMPLATE_NAMES
from engine.journeys.operations import parsing, replies
from engine.journeys.operations.bulk import (
    BulkOperationNotFound,
    BulkOperations,
    TooManyBulkOperations,
)
from engine.journeys.operations.filters import visibility_query
from engine.journeys.operations.parsing import PauseVocabulary
from engine.messaging.pauses import PauseNotFound, PauseRegistry
from engine.platform.logging import get_logger
from engine.platform.rpc.answers import Refusal, answered
from engine.platform.rpc.caller import calling_api_key
from workflows.plans.model import PinnedPlan

log = get_logger(__name__)


def _refusal(error: Exception) -> Refusal | None:
    if isinstance(error, PauseNotFound | BulkOperationNotFound):
        return grpc.StatusCode.NOT_FOUND, str(error)
    if isinstance(error, TooManyBulkOperations):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(error)
    return None


_answered = answered(
    refuse=_refusal,
    unavailable=lambda err: f"temporal is unavailable ({err}); retrying is safe",
)


def _identity() -> str:
    """Who acts, as Temporal shows it with a bulk operation and in each journey's
    history: the calling key's public id, never its secret."""
    return f"aftercare-api key {calling_api_key() or 'unknown'}"


class OperationsServicer(pb_grpc.OperationsServiceServicer):
    def __init__(
        self,
        pauses: PauseRegistry,
        bulk: BulkOperations,
        vocabulary: PauseVocabulary | None = None,
    ) -> None:
        """``vocabulary``: the plans, steps and templates a pause may name (None:
        any well-formed name)."""
        self._pauses = pauses
        self._bulk = bulk
        self._vocabulary = vocabulary

    @_answered
    async def PauseSending(
        self, request: pb.PauseSendingRequest, context: grpc.aio.ServicerContext
    ) -> pb.PauseSendingResponse:
        wanted = parsing.pause_request(request, self._vocabulary)
        pause = await self._pauses.pause(
            wanted.scope,
            include_transactional=wanted.include_transactional,
            reason=wanted.reason,
            created_by=calling_api_key(),
        )
        # The reason is free text: not logged.
        log.info(
            "sending paused",
            pause_id=pause.id,
            scope=str(pause.scope.kind),
            value=pause.scope.value,
            include_transactional=pause.include_transactional,
        )
        return pb.PauseSendingResponse(pause=replies.pause(pause))

    @_answered
    async def ResumeSending(
        self, request: pb.ResumeSendingRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResumeSendingResponse:
        pause_id = parsing.pause_id(request.pause_id)
        pause = await self._pauses.resume(pause_id, resumed_by=calling_api_key())
        # Told even when it was lifted before: a retry after Temporal was out of
        # reach must still reach the journeys; asking again is harmless.
        job_id = await self._bulk.tell_held_journeys(
            f"pause {pause_id} lifted", identity=_identity()
        )
        log.info("sending resumed", pause_id=pause.id, job_id=job_id or "one by one")
        return pb.ResumeSendingResponse(pause=replies.pause(pause), job_id=job_id or "")

    @_answered
    async def ListPauses(
        self, request: pb.ListPausesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListPausesResponse:
        active = sorted(await self._pauses.active(), key=lambda p: (p.created_at, p.id))
        return pb.ListPausesResponse(pauses=[replies.pause(p) for p in active])

    @_answered
    async def CountJourneys(
        self, request: pb.CountJourneysRequest, context: grpc.aio.ServicerContext
    ) -> pb.CountJourneysResponse:
        journeys = parsing.count_request(request)
        count = await self._bulk.count(journeys)
        return pb.CountJourneysResponse(count=count, query=visibility_query(journeys))

    @_answered
    async def StartBulkOperation(
        self, request: pb.StartBulkOperationRequest, context: grpc.aio.ServicerContext
    ) -> pb.StartBulkOperationResponse:
        wanted = parsing.bulk_request(request)
        query = visibility_query(wanted.journeys)
        count = await self._bulk.count(wanted.journeys)
        if wanted.dry_run:
            return pb.StartBulkOperationResponse(count=count, query=query)
        job_id = await self._bulk.start(
            wanted.action,
            wanted.journeys,
            wanted.reason,
            identity=_identity(),
            max_operations_per_second=wanted.max_operations_per_second,
        )
        log.info("bulk operation started", job_id=job_id, action=str(wanted.action), count=count)
        return pb.StartBulkOperationResponse(count=count, job_id=job_id, query=query)

    @_answered
    async def GetBulkOperation(
        self, request: pb.GetBulkOperationRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetBulkOperationResponse:
        progress = await self._bulk.describe(parsing.job_id(request.job_id))
        return pb.GetBulkOperationResponse(operation=replies.bulk_operation(progress))


def operations_servicer(
    client: Client,
    sessions: async_sessionmaker[AsyncSession],
    plans: Mapping[str, PinnedPlan] | None,
) -> OperationsServicer:
    """The service on the deployment's database and Temporal; pauses may name the
    deployment's ``plans`` (their ids, steps and templates) and any known template."""
    vocabulary = PauseVocabulary.of(plans, TEMPLATE_NAMES) if plans is not None else None
    return OperationsServicer(PauseRegistry(sessions), BulkOperations(client), vocabulary)
