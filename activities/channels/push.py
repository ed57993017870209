"""The push channel: one notification per registered device of the customer, by FCM
for app tokens and by web push (``activities.push.webpush``) for browsers' subscriptions.

The "address" of a push message is the customer: their devices are looked up when it
is sent. Every device the message reaches is recorded against the message's ledger
key, so a retry after a partial failure (one device's send timed out) reaches only the
devices still missing it, never one twice. A token FCM reports unregistered (or a
subscription its push service reports gone, 404/410) is forgotten, and
``on_device_forgotten`` hears of it (to tell the customer's journeys
when none is left, so later push steps cost them no activity). When no device is left to
reach, nothing was sent and the step falls back to its next channel; no address is
suppressed, since a device registered later works.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from activities.channels.base import (
    ChannelUnavailableError,
    TransientDeliveryError,
    message_context,
)
from activities.channels.email import LinkBuilder
from activities.handover import NOT_STARTED, Handover
from activities.push.failures import DeviceGone, PushRefused, PushUnavailable
from activities.push.fcm import FcmSender, PushNotification
from activities.push.rendering import PUSH_TEMPLATE_NAMES, PushRenderer
from activities.push.webpush import WebPushSender
from engine.messaging.push_devices import Device, PushDevices
from engine.platform.logging import get_logger
from workflows.contracts import SendMessageInput

log = get_logger(__name__)


class PushChannel:
    def __init__(
        self,
        sender: FcmSender | None,
        renderer: PushRenderer,
        links: LinkBuilder,
        devices: PushDevices,
        on_device_forgotten: Callable[[str], Awaitable[None]] | None = None,
        *,
        web: WebPushSender | None = None,
    ) -> None:
        self._sender = sender
        self._web = web
        self._renderer = renderer
        self._links = links
        self._devices = devices
        self._on_device_forgotten = on_device_forgotten

    def address_of(self, request: SendMessageInput) -> str:
        return request.order.customer.id

    def unavailable_reason(self, request: SendMessageInput) -> str:
        if self._sender is None and self._web is None:
            return "no push provider configured"
        if request.template not in PUSH_TEMPLATE_NAMES:
            return f"no push text for {request.template}"
        return ""

    async def deliver(
        self, request: SendMessageInput, address: str, key: str, handover: Handover
    ) -> str:
        devices = await self._devices.of_customer(address)
        reached = await self._devices.delivered(key)
        if not devices and not reached:
            raise ChannelUnavailableError("no push device registered")
        text = self._renderer.render(
            request.template, message_context(request, self._links.for_request(request))
        )
        notification = PushNotification(
            title=text.title,
            body=text.body,
            link=text.link,
            data={"journey_id": request.journey_id, "step": request.step},
        )
        names: list[str] = []
        refusals: list[str] = []
        retry: PushUnavailable | None = None
        forgotten = False
        # Transactional news may wake a sleeping phone; the rest waits for its moment.
        urgent = request.category == "transactional"
        for device in devices:
            if device.device_id in reached:
                continue
            try:
                names.append(await self._send_one(device, notification, key, handover, urgent))
            except DeviceGone as err:
                await self._devices.forget(device.device_id)
                log.info("push device unregistered", device=device.device_id[:12])
                refusals.append(str(err))
                forgotten = True
            except PushRefused as err:
                refusals.append(str(err))
            except PushUnavailable as err:
                retry = retry or err
        if forgotten and self._on_device_forgotten is not None:
            await self._on_device_forgotten(address)
        if retry is not None:
            # Those reached are recorded: the retry sends to the rest only.
            raise TransientDeliveryError(
                str(retry), retry.retry_after_seconds, maybe_delivered=retry.maybe_delivered
            )
        if names or reached:
            total = len(names) + len(reached)
            first = names[0] if names else "earlier attempt"
            return first if total == 1 else f"{first} (+{total - 1} devices)"
        raise ChannelUnavailableError(
            "no push device took it: " + "; ".join(refusals) if refusals else "no push device"
        )

    async def _send_one(
        self,
        device: Device,
        notification: PushNotification,
        key: str,
        handover: Handover,
        urgent: bool,
    ) -> str:
        # A transport not configured here skips its devices, which stay registered.
        if device.web_push is not None and self._web is None:
            raise PushRefused("web push is not configured (no VAPID key)")
        if device.web_push is None and self._sender is None:
            raise PushRefused("FCM is not configured (no project)")
        if handover.start_by is not None and asyncio.get_running_loop().time() >= handover.start_by:
            # Whichever the transport: the attempt's deadline passed before it began.
            raise PushUnavailable(NOT_STARTED)
        handover.begun = True
        if device.web_push is not None:
            assert self._web is not None
            name = await self._web.send(device.token, device.web_push, notification, urgent=urgent)
        else:
            assert self._sender is not None
            name = await self._sender.send(device.token, notification)
        await self._devices.record_delivery(key, device.device_id, name, datetime.now(UTC))
        return name
