"""DevicesService: the devices customers receive push notifications on
(``engine.messaging.push_devices`` keeps them; the push channel reads them).

A device is an FCM registration token or a browser's web push subscription (its
endpoint in the token's place, its keys beside it). It is registered for a customer
not erased; a request naming an erased
customer is refused (FAILED_PRECONDITION, ``CUSTOMER_ERASED``), so no token of
theirs is kept again after erasure removed them.

A customer's first device registered, or their last one removed, is told to their
running journeys (``engine.customers.devices.journeys``); if Temporal cannot be
reached for that the call answers UNAVAILABLE: the change is saved, and repeating
the call is safe and tells them then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
from aftercare.v1 import devices_pb2 as pb
from aftercare.v1 import devices_pb2_grpc as pb_grpc
from aftercare.v1.failures import CUSTOMER_ERASED
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.customers.devices.journeys import DeviceChanges
from engine.journeys.replies import timestamp
from engine.messaging.push_devices import (
    MAX_DEVICES_PER_CUSTOMER,
    MAX_TOKEN_LENGTH,
    Device,
    Platform,
    PushDevices,
    TooManyDevices,
    device_id_of,
)
from engine.messaging.web_push_keys import (
    WebPushKeys,
    auth_problem,
    canonical_keys,
    endpoint_problem,
    origin_of,
    p256dh_problem,
)
from engine.platform.database.erasure_marks import CustomerErased, ErasureMarks
from engine.platform.logging import get_logger
from engine.platform.rpc.answers import Refusal, answered
from engine.platform.rpc.status import precondition_failed
from engine.platform.rpc.violations import Violations

log = get_logger(__name__)

PLATFORMS: dict[int, Platform] = {
    pb.DEVICE_PLATFORM_ANDROID: Platform.ANDROID,
    pb.DEVICE_PLATFORM_IOS: Platform.IOS,
    pb.DEVICE_PLATFORM_WEB: Platform.WEB,
}
_PLATFORM_NUMBERS = {platform: number for number, platform in PLATFORMS.items()}
_DEVICE_ID_LENGTH = 64
_HEX = frozenset("0123456789abcdef")


class DeviceNotFound(Exception):
    """The customer has no such device."""


def _refusal(error: Exception) -> Refusal | None:
    if isinstance(error, DeviceNotFound):
        return grpc.StatusCode.NOT_FOUND, "the customer has no such device"
    if isinstance(error, CustomerErased):
        return precondition_failed(CUSTOMER_ERASED, "customer_id", str(error))
    if isinstance(error, TooManyDevices):
        return (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"the customer has {MAX_DEVICES_PER_CUSTOMER} devices already; remove one first",
        )
    return None


_answered = answered(refuse=_refusal, unavailable=lambda err: f"Temporal unreachable ({err})")


@dataclass(frozen=True)
class Registration:
    customer_id: str
    # The FCM token, or the web push subscription's endpoint.
    token: str
    platform: Platform
    web_push: WebPushKeys | None = None


def _token(v: Violations, path: str, value: str, *, required: bool = True) -> str:
    if not value:
        if required:
            v.add(path, "is required")
    elif len(value) > MAX_TOKEN_LENGTH:
        v.add(path, f"must be at most {MAX_TOKEN_LENGTH} characters")
    elif not value.isascii() or not value.isprintable() or " " in value:
        v.add(path, "must be a registration token (printable ASCII, no spaces)")
    return value


def registration_request(request: pb.RegisterDeviceRequest) -> Registration:
    v = Violations()
    customer_id = v.customer_id("customer_id", request.customer_id)
    if request.HasField("web_push"):
        return _web_push_registration(v, customer_id, request)
    token = _token(v, "token", request.token)
    platform = PLATFORMS.get(request.platform)
    if platform is None:
        v.add("platform", "must be DEVICE_PLATFORM_ANDROID, _IOS or _WEB")
    v.raise_if_any()
    assert platform is not None
    return Registration(customer_id, token, platform)


def _web_push_registration(
    v: Violations, customer_id: str, request: pb.RegisterDeviceRequest
) -> Registration:
    subscription = request.web_push
    if request.token:
        v.add("web_push", "give token or web_push, not both")
    if request.platform not in (pb.DEVICE_PLATFORM_UNSPECIFIED, pb.DEVICE_PLATFORM_WEB):
        v.add("platform", "must be DEVICE_PLATFORM_WEB (or unset) with web_push")
    checks = (
        ("endpoint", endpoint_problem(subscription.endpoint, MAX_TOKEN_LENGTH)),
        ("p256dh", p256dh_problem(subscription.p256dh)),
        ("auth", auth_problem(subscription.auth)),
    )
    for name, problem in checks:
        if problem:
            v.add(f"web_push.{name}", problem)
    v.raise_if_any()
    return Registration(
        customer_id,
        subscription.endpoint,
        Platform.WEB,
        canonical_keys(subscription.p256dh, subscription.auth),
    )


def removal_request(request: pb.RemoveDeviceRequest) -> tuple[str, str]:
    """(customer id, device id) of a RemoveDeviceRequest."""
    v = Violations()
    customer_id = v.customer_id("customer_id", request.customer_id)
    device_id = request.device_id
    if device_id and request.token:
        v.add("device_id", "give device_id or token, not both")
    elif request.token:
        device_id = device_id_of(_token(v, "token", request.token))
    elif not device_id:
        v.add("device_id", "is required (or token)")
    elif len(device_id) != _DEVICE_ID_LENGTH or not set(device_id) <= _HEX:
        v.add("device_id", "must be 64 lowercase hex digits, as ListDevices gives it")
    v.raise_if_any()
    return customer_id, device_id


def customer_request(value: str) -> str:
    v = Violations()
    customer_id = v.customer_id("customer_id", value)
    v.raise_if_any()
    return customer_id


def device_reply(device: Device) -> pb.Device:
    return pb.Device(
        device_id=device.device_id,
        platform=pb.DevicePlatform.ValueType(_PLATFORM_NUMBERS[device.platform]),
        registered_at=timestamp(device.registered_at),
        # The service, not the endpoint: that URL is the subscription itself.
        push_service=origin_of(device.token) if device.web_push is not None else "",
    )


class DevicesServicer(pb_grpc.DevicesServiceServicer):
    def __init__(
        self,
        devices: PushDevices,
        sessions: async_sessionmaker[AsyncSession],
        marks: ErasureMarks,
        changes: DeviceChanges | None = None,
    ) -> None:
        self._devices = devices
        self._sessions = sessions
        self._marks = marks
        # Without it, running journeys learn of devices only when their customer's
        # preferences change next (they try push meanwhile as they did).
        self._changes = changes

    async def _refuse_erased(self, customer_id: str) -> None:
        async with self._sessions() as session:
            if await self._marks.is_erased(await session.connection(), customer_id):
                raise CustomerErased()

    @_answered
    async def RegisterDevice(
        self, request: pb.RegisterDeviceRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterDeviceResponse:
        registration = registration_request(request)
        await self._refuse_erased(registration.customer_id)
        previous_owner = await self._devices.owner_of(device_id_of(registration.token))
        device, created = await self._devices.register(
            registration.customer_id,
            registration.token,
            registration.platform,
            datetime.now(UTC),
            registration.web_push,
        )
        told = 0
        if self._changes is not None:
            told = await self._changes.registered(registration.customer_id, previous_owner)
        log.info(
            "push device registered",
            platform=device.platform.value,
            web_push=device.web_push is not None,
            created=created,
            journeys=told,
        )
        return pb.RegisterDeviceResponse(device=device_reply(device), created=created)

    @_answered
    async def RemoveDevice(
        self, request: pb.RemoveDeviceRequest, context: grpc.aio.ServicerContext
    ) -> pb.RemoveDeviceResponse:
        customer_id, device_id = removal_request(request)
        removed = await self._devices.remove(customer_id, device_id)
        # Also when nothing was removed: the call may repeat one whose telling failed.
        if self._changes is not None:
            await self._changes.removed(customer_id)
        if not removed:
            raise DeviceNotFound()
        return pb.RemoveDeviceResponse()

    @_answered
    async def ListDevices(
        self, request: pb.ListDevicesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDevicesResponse:
        customer_id = customer_request(request.customer_id)
        devices = await self._devices.of_customer(customer_id)
        return pb.ListDevicesResponse(devices=[device_reply(device) for device in devices])
