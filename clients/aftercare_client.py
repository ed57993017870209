"""AftercareClient: what a backend service imports to drive journeys.

    async with AftercareClient("127.0.0.1:50051") as aftercare:
        await aftercare.start_journey(order)
        await aftercare.record_event("A-1001", OrderEvent(event_id="e1", type=EVENT_TYPE_SHIPPED))

With authentication and TLS (what a deployment needs):

    AftercareClient("api.internal:50051", api_key=os.environ["AFTERCARE_API_KEY"],
                    tls=True, root_certificates=ca_pem)

Every call carries a deadline (``timeout_seconds``, 10 s by default).
Failures arrive as typed exceptions (:class:`JourneyNotFoundError`,
:class:`InvalidRequestError` with its field violations, ...), not raw gRPC errors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

import grpc
from aftercare.v1 import journey_pb2 as pb
from aftercare.v1 import journey_pb2_grpc as pb_grpc
from aftercare.v1 import preferences_pb2 as preferences_pb
from aftercare.v1 import preferences_pb2_grpc as preferences_grpc
from aftercare.v1.failures import CUSTOMER_ERASED as CUSTOMER_ERASED  # re-exported
from aftercare.v1.failures import NO_PLAN as NO_PLAN  # re-exported
from google.rpc import error_details_pb2
from grpc_status import rpc_status

Reply = TypeVar("Reply")


class AftercareError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InvalidRequestError(AftercareError):
    def __init__(self, code: grpc.StatusCode, message: str, fields: dict[str, str]) -> None:
        super().__init__(code, message)
        #: field path -> what is wrong with it, e.g. {"order.customer.email": "..."}
        self.fields = fields


class JourneyNotFoundError(AftercareError):
    pass


class JourneyExistsError(AftercareError):
    pass


class JourneyEndedError(AftercareError):
    pass


class ServiceUnavailableError(AftercareError):
    pass


class AuthenticationError(AftercareError):
    """No API key, or one the server does not accept (unknown, revoked)."""


class PermissionDeniedError(AftercareError):
    """The API key lacks a scope the method needs; the message names it."""


class CustomerErasedError(AftercareError):
    """The customer was erased: nothing about them can be recorded any more."""


class NoPlanError(AftercareError):
    """No journey plan of the deployment applies to the order: nothing was started."""


_ERRORS: dict[grpc.StatusCode, type[AftercareError]] = {
    grpc.StatusCode.NOT_FOUND: JourneyNotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: JourneyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: JourneyEndedError,
    grpc.StatusCode.UNAVAILABLE: ServiceUnavailableError,
    grpc.StatusCode.UNAUTHENTICATED: AuthenticationError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
}


def _translate(error: grpc.aio.AioRpcError) -> AftercareError:
    code, message = error.code(), error.details() or ""
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        fields: dict[str, str] = {}
        status = rpc_status.from_call(error)
        for detail in status.details if status else []:
            bad_request = error_details_pb2.BadRequest()
            if detail.Unpack(bad_request):
                fields.update({v.field: v.description for v in bad_request.field_violations})
        return InvalidRequestError(code, message, fields)
    if code == grpc.StatusCode.FAILED_PRECONDITION and NO_PLAN in _precondition_kinds(error):
        return NoPlanError(code, message)
    return _ERRORS.get(code, AftercareError)(code, message)


def _precondition_kinds(error: grpc.aio.AioRpcError) -> set[str]:
    """The ``google.rpc.PreconditionFailure`` violation types the error carries."""
    kinds: set[str] = set()
    status = rpc_status.from_call(error)
    for detail in status.details if status else []:
        failure = error_details_pb2.PreconditionFailure()
        if detail.Unpack(failure):
            kinds.update(violation.type for violation in failure.violations)
    return kinds


class AftercareClient:
    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        *,
        api_key: str | None = None,
        timeout_seconds: float = 10.0,
        tls: bool = False,
        root_certificates: bytes | None = None,
        certificate_chain: bytes | None = None,
        private_key: bytes | None = None,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        """``api_key`` goes with every call as ``authorization: Bearer``. TLS is used
        when ``tls`` or any certificate is given: ``root_certificates`` (PEM) are the
        roots to trust (default: the system's), ``certificate_chain`` and
        ``private_key`` the client's own for mutual TLS."""
        if (certificate_chain is None) != (private_key is None):
            raise ValueError("certificate_chain and private_key: give both or neither")
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds: must be greater than 0")
        if channel is None:
            if tls or root_certificates is not None or certificate_chain is not None:
                credentials = grpc.ssl_channel_credentials(
                    root_certificates=root_certificates,
                    private_key=private_key,
                    certificate_chain=certificate_chain,
                )
                channel = grpc.aio.secure_channel(target, credentials)
            else:
                channel = grpc.aio.insecure_channel(target)
        self._channel = channel
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {api_key}"),) if api_key else ()
        )
        self._stub = pb_grpc.JourneyServiceStub(self._channel)
        self._preferences = preferences_grpc.PreferencesServiceStub(self._channel)
        self._timeout = timeout_seconds

    async def __aenter__(self) -> AftercareClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def start_journey(self, order: pb.Order) -> pb.StartJourneyResponse:
        return await self._call(self._stub.StartJourney, pb.StartJourneyRequest(order=order))

    async def record_event(self, order_id: str, event: pb.OrderEvent) -> pb.RecordEventResponse:
        return await self._call(
            self._stub.RecordEvent, pb.RecordEventRequest(order_id=order_id, event=event)
        )

    async def record_event_with_order(
        self, order_id: str, event: pb.OrderEvent, order: pb.Order
    ) -> pb.RecordEventResponse:
        """Record ``event``, starting the journey with ``order`` if it has none yet
        (shipped, out_for_delivery and delivered only; others need the journey)."""
        return await self._call(
            self._stub.RecordEvent,
            pb.RecordEventRequest(order_id=order_id, event=event, order=order),
        )

    async def get_journey(self, order_id: str) -> pb.Journey:
        response: pb.GetJourneyResponse = await self._call(
            self._stub.GetJourney, pb.GetJourneyRequest(order_id=order_id)
        )
        return response.journey

    async def cancel_journey(self, order_id: str, reason: str = "") -> pb.CancelJourneyResponse:
        return await self._call(
            self._stub.CancelJourney, pb.CancelJourneyRequest(order_id=order_id, reason=reason)
        )

    async def list_journeys(
        self,
        *,
        customer_id: str = "",
        stage: pb.JourneyStage.ValueType = pb.JOURNEY_STAGE_UNSPECIFIED,
        page_size: int = 0,
        page_token: bytes = b"",
    ) -> pb.ListJourneysResponse:
        return await self._call(
            self._stub.ListJourneys,
            pb.ListJourneysRequest(
                customer_id=customer_id, stage=stage, page_size=page_size, page_token=page_token
            ),
        )

    # -- PreferencesService ------------------------------------------------------

    async def get_preferences(
        self, customer_id: str, *, include_history: bool = False
    ) -> preferences_pb.GetPreferencesResponse:
        return await self._call_preferences(
            self._preferences.GetPreferences,
            preferences_pb.GetPreferencesRequest(
                customer_id=customer_id, include_history=include_history
            ),
        )

    async def update_preferences(
        self, request: preferences_pb.UpdatePreferencesRequest
    ) -> preferences_pb.UpdatePreferencesResponse:
        """Changes what the request names (its update_mask, or the fields present)."""
        return await self._call_preferences(self._preferences.UpdatePreferences, request)

    async def unsubscribe(
        self,
        customer_id: str,
        *,
        category: preferences_pb.MessageCategory.ValueType = (
            preferences_pb.MESSAGE_CATEGORY_UNSPECIFIED
        ),
        channel: pb.Channel.ValueType = pb.CHANNEL_UNSPECIFIED,
        source: str = "",
    ) -> preferences_pb.UnsubscribeResponse:
        """Opt out of ``category`` (default: all that need consent) on ``channel``
        (default: every channel)."""
        return await self._call_preferences(
            self._preferences.Unsubscribe,
            preferences_pb.UnsubscribeRequest(
                customer_id=customer_id, category=category, channel=channel, source=source
            ),
        )

    async def erase_customer(self, customer_id: str) -> preferences_pb.EraseCustomerResponse:
        return await self._call_preferences(
            self._preferences.EraseCustomer,
            preferences_pb.EraseCustomerRequest(customer_id=customer_id),
        )

    async def _call_preferences(
        self, method: Callable[..., Awaitable[Reply]], request: Any
    ) -> Reply:
        try:
            return await self._call(method, request)
        except JourneyEndedError as err:
            # FAILED_PRECONDITION means something else here: the customer was erased.
            raise CustomerErasedError(err.code, err.message) from err

    async def _call(self, method: Callable[..., Awaitable[Reply]], request: Any) -> Reply:
        try:
            return await method(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as err:
            raise _translate(err) from err
