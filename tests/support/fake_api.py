"""A fake of Aftercare's gRPC API for testing clients of it, served for real.

A ``grpc.aio`` server in the test process serves ``aftercare.v1.JourneyService``,
``aftercare.v1.PreferencesService`` and ``aftercare.v1.OperationsService`` through
the generated servicer base classes. It records every call (request, metadata, the
deadline left, the TLS peer) and answers what the test chose: a reply, or a status
with ``google.rpc`` details, as the real service sends them (``grpc-status-details-bin``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import grpc
from aftercare.v1 import devices_pb2 as devices_pb
from aftercare.v1 import devices_pb2_grpc as devices_grpc
from aftercare.v1 import journey_pb2 as pb
from aftercare.v1 import journey_pb2_grpc as pb_grpc
from aftercare.v1 import operations_pb2 as operations_pb
from aftercare.v1 import operations_pb2_grpc as operations_grpc
from aftercare.v1 import preferences_pb2 as preferences_pb
from aftercare.v1 import preferences_pb2_grpc as preferences_grpc
from aftercare.v1 import reports_pb2 as reports_pb
from aftercare.v1 import reports_pb2_grpc as reports_grpc
from aftercare.v1 import subscriptions_pb2 as subscriptions_pb
from aftercare.v1 import subscriptions_pb2_grpc as subscriptions_grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import status_pb2
from grpc_status import rpc_status

Reply = TypeVar("Reply", bound=Message)


@dataclass(frozen=True)
class Call:
    """One call as the server saw it."""

    method: str  # e.g. "StartJourney"
    request: Message
    metadata: tuple[tuple[str, str | bytes], ...]
    # Seconds left until the caller's deadline when the call arrived (None: no deadline).
    time_remaining: float | None
    # The TLS peer's certificate names (x509_common_name); empty on plaintext.
    peer_names: tuple[bytes, ...]

    def header(self, name: str) -> list[str | bytes]:
        return [value for key, value in self.metadata if key == name]


@dataclass(frozen=True)
class Refusal:
    """A failed call: a status code, its message and ``google.rpc`` detail messages."""

    code: grpc.StatusCode
    message: str
    details: tuple[Message, ...] = ()

    def status(self) -> grpc.Status:
        packed = []
        for detail in self.details:
            wrapper = any_pb2.Any()
            wrapper.Pack(detail)
            packed.append(wrapper)
        number: int = self.code.value[0]
        return rpc_status.to_status(
            status_pb2.Status(code=number, message=self.message, details=packed)
        )


@dataclass
class FakeApi:
    """What the fake received and what it answers, by method name."""

    calls: list[Call] = field(default_factory=list)
    replies: dict[str, Message] = field(default_factory=dict)
    refusals: dict[str, Refusal] = field(default_factory=dict)
    # Seconds every call waits before it answers (to run into the caller's deadline).
    delay: float = 0.0

    def refuse_everything(self, refusal: Refusal) -> None:
        for method in ALL_METHODS:
            self.refusals[method] = refusal

    async def handle(
        self,
        method: str,
        request: Message,
        context: grpc.aio.ServicerContext,
        reply_type: type[Reply],
    ) -> Reply:
        peer: dict[str, list[bytes]] = context.auth_context()
        self.calls.append(
            Call(
                method=method,
                request=request,
                metadata=tuple((item.key, item.value) for item in context.invocation_metadata()),
                time_remaining=context.time_remaining(),
                peer_names=tuple(peer.get("x509_common_name", [])),
            )
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        refusal = self.refusals.get(method)
        if refusal is not None:
            await context.abort_with_status(refusal.status())
        reply = self.replies.get(method, reply_type())
        assert isinstance(reply, reply_type), f"{method} answers {reply_type.__name__}"
        return reply


class _Journeys(pb_grpc.JourneyServiceServicer):
    def __init__(self, api: FakeApi) -> None:
        self._api = api

    async def StartJourney(  # noqa: N802
        self, request: pb.StartJourneyRequest, context: grpc.aio.ServicerContext
    ) -> pb.StartJourneyResponse:
        return await self._api.handle("StartJourney", request, context, pb.StartJourneyResponse)

    async def RecordEvent(  # noqa: N802
        self, request: pb.RecordEventRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecordEventResponse:
        return await self._api.handle("RecordEvent", request, context, pb.RecordEventResponse)

    async def GetJourney(  # noqa: N802
        self, request: pb.GetJourneyRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetJourneyResponse:
        return await self._api.handle("GetJourney", request, context, pb.GetJourneyResponse)

    async def CancelJourney(  # noqa: N802
        self, request: pb.CancelJourneyRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelJourneyResponse:
        return await self._api.handle("CancelJourney", request, context, pb.CancelJourneyResponse)

    async def ListJourneys(  # noqa: N802
        self, request: pb.ListJourneysRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListJourneysResponse:
        return await self._api.handle("ListJourneys", request, context, pb.ListJourneysResponse)


class _Preferences(preferences_grpc.PreferencesServiceServicer):
    def __init__(self, api: FakeApi) -> None:
        self._api = api

    async def GetPreferences(  # noqa: N802
        self, request: preferences_pb.GetPreferencesRequest, context: grpc.aio.ServicerContext
    ) -> preferences_pb.GetPreferencesResponse:
        return await self._api.handle(
            "GetPreferences", request, context, preferences_pb.GetPreferencesResponse
        )

    async def UpdatePreferences(  # noqa: N802
        self, request: preferences_pb.UpdatePreferencesRequest, context: grpc.aio.ServicerContext
    ) -> preferences_pb.UpdatePreferencesResponse:
        return await self._api.handle(
            "UpdatePreferences", request, context, preferences_pb.UpdatePreferencesResponse
        )

    async def Unsubscribe(  # noqa: N802
        self, request: preferences_pb.UnsubscribeRequest, context: grpc.aio.ServicerContext
    ) -> preferences_pb.UnsubscribeResponse:
        return await self._api.handle(
            "Unsubscribe", request, context, preferences_pb.UnsubscribeResponse
        )

    async def EraseCustomer(  # noqa: N802
        self, request: preferences_pb.EraseCustomerRequest, context: grpc.aio.ServicerContext
    ) -> preferences_pb.EraseCustomerResponse:
        return await self._api.handle(
            "EraseCustomer", request, context, preferences_pb.EraseCustomerResponse
        )


class _Operations(operations_grpc.OperationsServiceServicer):
    def __init__(self, api: FakeApi) -> None:
        self._api = api

    async def PauseSending(  # noqa: N802
        self, request: operations_pb.PauseSendingRequest, context: grpc.aio.ServicerContext
    ) -> operations_pb.PauseSendingResponse:
        return await self._api.handle(
            "PauseSending", request, context, operations_pb.PauseSendingResponse
        )

    async def ResumeSending(  # noqa: N802
        self, request: operations_pb.ResumeSendingRequest, context: grpc.aio.ServicerContext
    ) -> operations_pb.ResumeSendingResponse:
        return await self._api.handle(
            "ResumeSending", request, context, operations_pb.ResumeSendingResponse
        )

    async def ListPauses(  # noqa: N802
        self, request: operations_pb.ListPausesRequest, context: grpc.aio.ServicerContext
    ) -> operations_pb.ListPausesResponse:
        return await self._api.handle(
            "ListPauses", request, context, operations_pb.ListPausesResponse
        )

    async def CountJourneys(  # noqa: N802
        self, request: operations_pb.CountJourneysRequest, context: grpc.aio.ServicerContext
    ) -> operations_pb.CountJourneysResponse:
        return await self._api.handle(
            "CountJourneys", request, context, operations_pb.CountJourneysResponse
        )

    async def StartBulkOperation(  # noqa: N802
        self, request: operations_pb.StartBulkOperationRequest, context: grpc.aio.ServicerContext
    ) -> operations_pb.StartBulkOperationResponse:
        return await self._api.handle(
            "StartBulkOperation", request, context, operations_pb.StartBulkOperationResponse
        )

    async def GetBulkOperation(  # noqa: N802
        self, request: operations_pb.GetBulkOperationRequest, context: grpc.aio.ServicerContext
    ) -> operations_pb.GetBulkOperationResponse:
        return await self._api.handle(
            "GetBulkOperation", request, context, operations_pb.GetBulkOperationResponse
        )


class _Devices(devices_grpc.DevicesServiceServicer):
    def __init__(self, api: FakeApi) -> None:
        self._api = api

    async def RegisterDevice(  # noqa: N802
        self, request: devices_pb.RegisterDeviceRequest, context: grpc.aio.ServicerContext
    ) -> devices_pb.RegisterDeviceResponse:
        return await self._api.handle(
            "RegisterDevice", request, context, devices_pb.RegisterDeviceResponse
        )

    async def RemoveDevice(  # noqa: N802
        self, request: devices_pb.RemoveDeviceRequest, context: grpc.aio.ServicerContext
    ) -> devices_pb.RemoveDeviceResponse:
        return await self._api.handle(
            "RemoveDevice", request, context, devices_pb.RemoveDeviceResponse
        )

    async def ListDevices(  # noqa: N802
        self, request: devices_pb.ListDevicesRequest, context: grpc.aio.ServicerContext
    ) -> devices_pb.ListDevicesResponse:
        return await self._api.handle(
            "ListDevices", request, context, devices_pb.ListDevicesResponse
        )


class _Reports(reports_grpc.ReportsServiceServicer):
    def __init__(self, api: FakeApi) -> None:
        self._api = api

    async def GetPlanReport(  # noqa: N802
        self, request: reports_pb.GetPlanReportRequest, context: grpc.aio.ServicerContext
    ) -> reports_pb.GetPlanReportResponse:
        return await self._api.handle(
            "GetPlanReport", request, context, reports_pb.GetPlanReportResponse
        )

    async def StopExperiment(  # noqa: N802
        self, request: reports_pb.StopExperimentRequest, context: grpc.aio.ServicerContext
    ) -> reports_pb.StopExperimentResponse:
        return await self._api.handle(
            "StopExperiment", request, context, reports_pb.StopExperimentResponse
        )


class _Subscriptions(subscriptions_grpc.SubscriptionsServiceServicer):
    def __init__(self, api: FakeApi) -> None:
        self._api = api

    async def CreateSubscription(  # noqa: N802
        self,
        request: subscriptions_pb.CreateSubscriptionRequest,
        context: grpc.aio.ServicerContext,
    ) -> subscriptions_pb.CreateSubscriptionResponse:
        return await self._api.handle(
            "CreateSubscription", request, context, subscriptions_pb.CreateSubscriptionResponse
        )

    async def ListSubscriptions(  # noqa: N802
        self,
        request: subscriptions_pb.ListSubscriptionsRequest,
        context: grpc.aio.ServicerContext,
    ) -> subscriptions_pb.ListSubscriptionsResponse:
        return await self._api.handle(
            "ListSubscriptions", request, context, subscriptions_pb.ListSubscriptionsResponse
        )

    async def RemoveSubscription(  # noqa: N802
        self,
        request: subscriptions_pb.RemoveSubscriptionRequest,
        context: grpc.aio.ServicerContext,
    ) -> subscriptions_pb.RemoveSubscriptionResponse:
        return await self._api.handle(
            "RemoveSubscription", request, context, subscriptions_pb.RemoveSubscriptionResponse
        )


JOURNEY_METHODS = ("StartJourney", "RecordEvent", "GetJourney", "CancelJourney", "ListJourneys")
PREFERENCES_METHODS = ("GetPreferences", "UpdatePreferences", "Unsubscribe", "EraseCustomer")
OPERATIONS_METHODS = (
    "PauseSending",
    "ResumeSending",
    "ListPauses",
    "CountJourneys",
    "StartBulkOperation",
    "GetBulkOperation",
)
DEVICES_METHODS = ("RegisterDevice", "RemoveDevice", "ListDevices")
REPORTS_METHODS = ("GetPlanReport", "StopExperiment")
SUBSCRIPTIONS_METHODS = ("CreateSubscription", "ListSubscriptions", "RemoveSubscription")
ALL_METHODS = (
    JOURNEY_METHODS
    + PREFERENCES_METHODS
    + OPERATIONS_METHODS
    + DEVICES_METHODS
    + REPORTS_METHODS
    + SUBSCRIPTIONS_METHODS
)


@dataclass(frozen=True)
class FakeServer:
    api: FakeApi
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


@asynccontextmanager
async def serve_fake_api(
    credentials: grpc.ServerCredentials | None = None,
) -> AsyncIterator[FakeServer]:
    """The fake on a free port of 127.0.0.1; TLS when ``credentials`` are given."""
    api = FakeApi()
    server = grpc.aio.server()
    pb_grpc.add_JourneyServiceServicer_to_server(_Journeys(api), server)
    preferences_grpc.add_PreferencesServiceServicer_to_server(_Preferences(api), server)
    operations_grpc.add_OperationsServiceServicer_to_server(_Operations(api), server)
    devices_grpc.add_DevicesServiceServicer_to_server(_Devices(api), server)
    reports_grpc.add_ReportsServiceServicer_to_server(_Reports(api), server)
    subscriptions_grpc.add_SubscriptionsServiceServicer_to_server(_Subscriptions(api), server)
    address = "127.0.0.1:0"
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    await server.start()
    try:
        yield FakeServer(api, port)
    finally:
        await server.stop(grace=None)
