"""AftercareClient: what a backend service imports to drive journeys.

    async with AftercareClient("127.0.0.1:50051") as aftercare:
        await aftercare.start_journey(order)
        await aftercare.record_event("A-1001", OrderEvent(event_id="e1", type=EVENT_TYPE_SHIPPED))

With authentication and TLS (what a deployment needs):

    AftercareClient("api.internal:50051", api_key=os.environ["AFTERCARE_API_KEY"],
                    tls=True, root_certificates=ca_pem)

Every call carries a deadline (``timeout_seconds``, 10 s by default).
Failures arrive as typed exceptions, subclasses of :class:`AftercareError`
(:class:`JourneyNotFoundError`, :class:`InvalidRequestError` with its field violations,
:class:`DeadlineExceededError` past the deadline, :class:`ClientClosedError` after
:meth:`AftercareClient.close`, ...), not raw gRPC errors. Which precondition a
FAILED_PRECONDITION answer names decides its exception on every method:
``CUSTOMER_ERASED`` is :class:`CustomerErasedError`, ``NO_PLAN`` :class:`NoPlanError`.
The operations methods (pauses, bulk operations) raise :class:`PauseNotFoundError`,
:class:`BulkOperationNotFoundError` and :class:`TooManyBulkOperationsError` besides;
every not-found exception is a :class:`NotFoundError`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import grpc
from aftercare.v1 import devices_pb2 as devices_pb
from aftercare.v1 import devices_pb2_grpc as devices_grpc
from aftercare.v1 import journey_pb2 as pb
from aftercare.v1 import journey_pb2_grpc as pb_grpc
from aftercare.v1 import operations_pb2 as ops_pb
from aftercare.v1 import operations_pb2_grpc as ops_grpc
from aftercare.v1 import preferences_pb2 as preferences_pb
from aftercare.v1 import preferences_pb2_grpc as preferences_grpc
from aftercare.v1 import reports_pb2 as reports_pb
from aftercare.v1 import reports_pb2_grpc as reports_grpc
from aftercare.v1 import subscriptions_pb2 as subscriptions_pb
from aftercare.v1 import subscriptions_pb2_grpc as subscriptions_grpc
from aftercare.v1.failures import CUSTOMER_ERASED as CUSTOMER_ERASED  # re-exported
from aftercare.v1.failures import NO_PLAN as NO_PLAN  # re-exported
from google.rpc import error_details_pb2
from grpc_status import rpc_status

Reply = TypeVar("Reply")


class AftercareError(Exception):
    """Any failure of a call: ``code`` is its gRPC status code, ``message`` (also the
    exception's text) what went wrong, in the server's words when it answered. The gRPC
    exception it stands for is its ``__cause__``."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InvalidRequestError(AftercareError):
    def __init__(self, code: grpc.StatusCode, message: str, fields: dict[str, str]) -> None:
        super().__init__(code, message)
        #: field path -> what is wrong with it, e.g. {"order.customer.email": "..."}
        self.fields = fields


class NotFoundError(AftercareError):
    """NOT_FOUND: what the call names does not exist (each kind has its subclass)."""


class JourneyNotFoundError(NotFoundError):
    pass


class PauseNotFoundError(NotFoundError):
    """No pause of sending has this id."""


class BulkOperationNotFoundError(NotFoundError):
    """No bulk operation has this job id."""


class DeviceNotFoundError(NotFoundError):
    """The customer has no push device with this id or token."""


class PlanNotFoundError(NotFoundError):
    """The deployment has no such plan, and no message was ever sent on one."""


class ExperimentNotFoundError(NotFoundError):
    """No deployed plan has the experiment, or it has no such arm."""


class SubscriptionNotFoundError(NotFoundError):
    """No active event subscription has the id."""


class ExperimentAlreadyStoppedError(AftercareError):
    """ALREADY_EXISTS: the experiment was stopped before; its winner stands."""


class TooManyBulkOperationsError(AftercareError):
    """RESOURCE_EXHAUSTED on a bulk operation: Temporal runs as many as it allows at
    once. Wait for one to finish (:meth:`AftercareClient.get_bulk_operation`), retry."""


class JourneyExistsError(AftercareError):
    pass


class JourneyEndedError(AftercareError):
    """FAILED_PRECONDITION on a journey call: the order's journey has ended, so it takes
    no more events and cannot be cancelled."""


class ServiceUnavailableError(AftercareError):
    pass


class AuthenticationError(AftercareError):
    """No API key, or one the server does not accept (unknown, revoked)."""


class PermissionDeniedError(AftercareError):
    """The API key lacks a scope the method needs; the message names it."""


class CustomerErasedError(JourneyEndedError):
    """The customer was erased: nothing about them can be recorded any more.

    Raised on any method whose FAILED_PRECONDITION answer names ``CUSTOMER_ERASED``
    (``StartJourney`` or a starting ``RecordEvent`` for an erased customer), and on every
    ``PreferencesService`` FAILED_PRECONDITION, which always means erasure there.

    It is a :class:`JourneyEndedError` on purpose: a journey call for an erased customer
    used to raise exactly that, so an ``except JourneyEndedError`` written for it still
    catches it, and it means the same to such a handler: erasure ended the customer's
    journeys and no new one will start, so retrying is pointless. Where the two must be
    told apart, catch :class:`CustomerErasedError` first.
    """


class NoPlanError(AftercareError):
    """No journey plan of the deployment applies to the order: nothing was started."""


class DeadlineExceededError(AftercareError):
    """The call did not finish in time (DEADLINE_EXCEEDED): past the deadline the client
    sent with it, or past the server's own bound on a handler, whichever came first.
    ``timeout_seconds`` is the client's deadline for the call. Whether the server acted
    on the request is unknown."""

    def __init__(self, code: grpc.StatusCode, message: str, timeout_seconds: float) -> None:
        super().__init__(code, message)
        #: the deadline the call was sent with, in seconds
        self.timeout_seconds = timeout_seconds


class ClientClosedError(AftercareError):
    """A call on a closed client (after :meth:`AftercareClient.close`, the end of its
    ``async with`` block, or the ``channel`` it was given being closed by its owner):
    nothing was sent. No status came back, so ``code`` is CANCELLED, the caller having
    ended the channel. Make a new client to go on."""

    def __init__(self) -> None:
        super().__init__(
            grpc.StatusCode.CANCELLED, "the client is closed: make a new AftercareClient"
        )


_ERRORS: dict[grpc.StatusCode, type[AftercareError]] = {
    grpc.StatusCode.NOT_FOUND: JourneyNotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: JourneyExistsError,
    grpc.StatusCode.UNAVAILABLE: ServiceUnavailableError,
    grpc.StatusCode.UNAUTHENTICATED: AuthenticationError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
}


def _translate(
    error: grpc.aio.AioRpcError,
    *,
    timeout_seconds: float,
    failed_precondition: type[AftercareError],
    errors: Mapping[grpc.StatusCode, type[AftercareError]] = _ERRORS,
) -> AftercareError:
    """The exception for ``error``. ``failed_precondition`` is the one for a
    FAILED_PRECONDITION that names neither ``CUSTOMER_ERASED`` nor ``NO_PLAN``; the
    call's ``timeout_seconds`` go into a :class:`DeadlineExceededError`; ``errors``
    maps the other codes (the base class for a code it lacks)."""
    code, message = error.code(), error.details() or ""
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        fields: dict[str, str] = {}
        status = rpc_status.from_call(error)
        for detail in status.details if status else []:
            bad_request = error_details_pb2.BadRequest()
            if detail.Unpack(bad_request):
                fields.update({v.field: v.description for v in bad_request.field_violations})
        return InvalidRequestError(code, message, fields)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        kinds = _precondition_kinds(error)
        # The server never names both; if it did, erasure is the lasting reason.
        if CUSTOMER_ERASED in kinds:
            return CustomerErasedError(code, message)
        if NO_PLAN in kinds:
            return NoPlanError(code, message)
        return failed_precondition(code, message)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceededError(code, message, timeout_seconds)
    return errors.get(code, AftercareError)(code, message)


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
        self._operations = ops_grpc.OperationsServiceStub(self._channel)
        self._devices = devices_grpc.DevicesServiceStub(self._channel)
        self._reports = reports_grpc.ReportsServiceStub(self._channel)
        self._subscriptions = subscriptions_grpc.SubscriptionsServiceStub(self._channel)
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

    # -- OperationsService (an API key with journeys:admin) ------------------------

    async def pause_sending(
        self,
        kind: ops_pb.PauseScopeKind.ValueType,
        value: str,
        *,
        reason: str,
        include_transactional: bool = False,
    ) -> ops_pb.Pause:
        """Hold every message of the scope (e.g. ``PAUSE_SCOPE_KIND_STEP``,
        ``"cross_sell"``) until :meth:`resume_sending`; the pause (an identical one in
        force is returned as it is)."""
        response: ops_pb.PauseSendingResponse = await self._call_operations(
            self._operations.PauseSending,
            ops_pb.PauseSendingRequest(
                scope=ops_pb.PauseScope(kind=kind, value=value),
                include_transactional=include_transactional,
                reason=reason,
            ),
        )
        return response.pause

    async def resume_sending(self, pause_id: str) -> ops_pb.ResumeSendingResponse:
        """Lift a pause; held messages are asked again at once. PauseNotFoundError
        for an unknown id."""
        return await self._call_operations(
            self._operations.ResumeSending,
            ops_pb.ResumeSendingRequest(pause_id=pause_id),
            not_found=PauseNotFoundError,
        )

    async def list_pauses(self) -> ops_pb.ListPausesResponse:
        """The pauses in force, oldest first."""
        return await self._call_operations(self._operations.ListPauses, ops_pb.ListPausesRequest())

    async def count_journeys(
        self, journeys: ops_pb.JourneyFilter | None = None
    ) -> ops_pb.CountJourneysResponse:
        """How many running journeys the filter selects (all without one)."""
        return await self._call_operations(
            self._operations.CountJourneys, ops_pb.CountJourneysRequest(filter=journeys)
        )

    async def start_bulk_operation(
        self,
        action: ops_pb.BulkAction.ValueType,
        journeys: ops_pb.JourneyFilter,
        *,
        reason: str = "",
        dry_run: bool = False,
        max_operations_per_second: int = 0,
    ) -> ops_pb.StartBulkOperationResponse:
        """Cancel, pause or resume the running journeys ``journeys`` selects (the
        count only, with ``dry_run``); ``reason`` is required unless ``dry_run``.
        TooManyBulkOperationsError when Temporal runs its limit of them already."""
        return await self._call_operations(
            self._operations.StartBulkOperation,
            ops_pb.StartBulkOperationRequest(
                filter=journeys,
                action=action,
                reason=reason,
                dry_run=dry_run,
                max_operations_per_second=max_operations_per_second,
            ),
        )

    async def get_bulk_operation(self, job_id: str) -> ops_pb.BulkOperation:
        """A bulk operation's state and progress. BulkOperationNotFoundError for an
        unknown job id."""
        response: ops_pb.GetBulkOperationResponse = await self._call_operations(
            self._operations.GetBulkOperation,
            ops_pb.GetBulkOperationRequest(job_id=job_id),
            not_found=BulkOperationNotFoundError,
        )
        return response.operation

    async def register_device(
        self,
        customer_id: str,
        token: str = "",
        platform: devices_pb.DevicePlatform.ValueType = devices_pb.DEVICE_PLATFORM_UNSPECIFIED,
        *,
        web_push: devices_pb.WebPushSubscription | None = None,
    ) -> devices_pb.RegisterDeviceResponse:
        """Registers an FCM registration token, or a browser's web push subscription
        (``web_push``: its endpoint and keys, platform web), as the customer's push
        device."""
        return await self._call_devices(
            self._devices.RegisterDevice,
            devices_pb.RegisterDeviceRequest(
                customer_id=customer_id, token=token, platform=platform, web_push=web_push
            ),
        )

    async def remove_device(
        self, customer_id: str, *, device_id: str = "", token: str = ""
    ) -> devices_pb.RemoveDeviceResponse:
        """Removes one of the customer's devices (by id or token); DeviceNotFoundError
        when they have no such device."""
        return await self._call_devices(
            self._devices.RemoveDevice,
            devices_pb.RemoveDeviceRequest(
                customer_id=customer_id, device_id=device_id, token=token
            ),
        )

    async def list_devices(self, customer_id: str) -> devices_pb.ListDevicesResponse:
        """The customer's push devices, oldest registration first."""
        return await self._call_devices(
            self._devices.ListDevices, devices_pb.ListDevicesRequest(customer_id=customer_id)
        )

    async def get_plan_report(
        self,
        plan: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> reports_pb.GetPlanReportResponse:
        """The plan's report over ``since`` (default 30 days before ``until``) to
        ``until`` (default now); needs the reports:read scope. PlanNotFoundError for
        a plan the deployment never had; InvalidRequestError names a bad field."""
        request = reports_pb.GetPlanReportRequest(plan=plan)
        if since is not None:
            request.since.FromDatetime(since)
        if until is not None:
            request.until.FromDatetime(until)
        errors = {**_ERRORS, grpc.StatusCode.NOT_FOUND: PlanNotFoundError}
        return await self._call(
            self._reports.GetPlanReport, request, failed_precondition=AftercareError, errors=errors
        )

    async def stop_experiment(
        self, experiment: str, winner: str
    ) -> reports_pb.StopExperimentResponse:
        """Stop ``experiment``: every later send of its step uses ``winner`` (a variant,
        or "holdout" for none), sleeping journeys included; needs journeys:admin.
        ExperimentNotFoundError for an unknown experiment or arm,
        ExperimentAlreadyStoppedError when it was stopped before."""
        request = reports_pb.StopExperimentRequest(experiment=experiment, winner=winner)
        errors = {
            **_ERRORS,
            grpc.StatusCode.NOT_FOUND: ExperimentNotFoundError,
            grpc.StatusCode.ALREADY_EXISTS: ExperimentAlreadyStoppedError,
        }
        return await self._call(
            self._reports.StopExperiment, request, failed_precondition=AftercareError, errors=errors
        )

    async def create_subscription(
        self,
        url: str,
        event_types: list[str] | None = None,
        *,
        include_personal_data: bool = False,
    ) -> subscriptions_pb.CreateSubscriptionResponse:
        """Subscribe ``url`` to journey events (all types when ``event_types`` is
        empty); the response holds the signing secret, shown this once. Needs
        subscriptions:admin; InvalidRequestError names a bad url or event type."""
        request = subscriptions_pb.CreateSubscriptionRequest(
            url=url, event_types=event_types or [], include_personal_data=include_personal_data
        )
        return await self._call(
            self._subscriptions.CreateSubscription, request, failed_precondition=AftercareError
        )

    async def list_subscriptions(self) -> subscriptions_pb.ListSubscriptionsResponse:
        """The active event subscriptions, oldest first (without secrets)."""
        return await self._call(
            self._subscriptions.ListSubscriptions,
            subscriptions_pb.ListSubscriptionsRequest(),
            failed_precondition=AftercareError,
        )

    async def remove_subscription(
        self, subscription_id: str
    ) -> subscriptions_pb.RemoveSubscriptionResponse:
        """Stop deliveries to the subscription; SubscriptionNotFoundError when no
        active one has the id."""
        errors = {**_ERRORS, grpc.StatusCode.NOT_FOUND: SubscriptionNotFoundError}
        return await self._call(
            self._subscriptions.RemoveSubscription,
            subscriptions_pb.RemoveSubscriptionRequest(subscription_id=subscription_id),
            failed_precondition=AftercareError,
            errors=errors,
        )

    async def _call_devices(self, method: Callable[..., Awaitable[Reply]], request: Any) -> Reply:
        errors = {**_ERRORS, grpc.StatusCode.NOT_FOUND: DeviceNotFoundError}
        return await self._call(
            method, request, failed_precondition=CustomerErasedError, errors=errors
        )

    async def _call_operations(
        self,
        method: Callable[..., Awaitable[Reply]],
        request: Any,
        *,
        not_found: type[AftercareError] = NotFoundError,
    ) -> Reply:
        # No operations call is about one journey: NOT_FOUND names what the call
        # named, and FAILED_PRECONDITION (which no operation answers today) is not
        # a journey that ended.
        errors = {
            **_ERRORS,
            grpc.StatusCode.NOT_FOUND: not_found,
            grpc.StatusCode.RESOURCE_EXHAUSTED: TooManyBulkOperationsError,
        }
        return await self._call(method, request, failed_precondition=AftercareError, errors=errors)

    async def _call_preferences(
        self, method: Callable[..., Awaitable[Reply]], request: Any
    ) -> Reply:
        # PreferencesService has one precondition, that the customer was not erased, and
        # answers FAILED_PRECONDITION without details when it fails.
        return await self._call(method, request, failed_precondition=CustomerErasedError)

    async def _call(
        self,
        method: Callable[..., Awaitable[Reply]],
        request: Any,
        *,
        failed_precondition: type[AftercareError] = JourneyEndedError,
        errors: Mapping[grpc.StatusCode, type[AftercareError]] = _ERRORS,
    ) -> Reply:
        try:
            return await method(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as err:
            raise _translate(
                err,
                timeout_seconds=self._timeout,
                failed_precondition=failed_precondition,
                errors=errors,
            ) from err
        except grpc.aio.UsageError as err:
            # A unary call raises it only on a closed channel (or for per-call
            # credentials on a plaintext one, which this client never passes).
            raise ClientClosedError() from err
