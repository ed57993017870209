"""The customers' push devices (FCM registration tokens and browsers' web push
subscriptions), and which devices each push message already reached.

A registration token identifies one app install or browser; registering it again,
for the same or another customer, keeps one row (the newest registration wins). A
web push subscription is kept the same way, its endpoint URL in the token's place
and its two keys beside it (``engine.messaging.web_push_keys``). A device is named
outside this module by its ``device_id``, the SHA-256 of its token (or endpoint):
the token itself goes only to FCM, the endpoint and keys only to the push service.

``record_delivery`` notes every device a message (a ledger key) was handed to, so a
retried send reaches only the devices still missing it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.messaging.web_push_keys import WebPushKeys
from engine.platform.database.tables import PushDelivery, PushDevice
from engine.platform.database.timestamps import as_utc
from engine.platform.database.upsert import insert_on_conflict

# FCM's registration tokens are about 160-200 characters; web push ones similar.
MAX_TOKEN_LENGTH = 4096
# A customer with more devices than this is more likely a bug in the caller.
MAX_DEVICES_PER_CUSTOMER = 20
# push_deliveries.fcm_name: web push services' message URLs can be longer.
MAX_MESSAGE_NAME = 300


class Platform(StrEnum):
    ANDROID = "android"
    IOS = "ios"
    WEB = "web"


@dataclass(frozen=True)
class Device:
    device_id: str
    customer_id: str
    token: str
    platform: Platform
    registered_at: datetime
    # A browser's web push subscription (``token`` is then its endpoint); None for an
    # FCM registration token.
    web_push: WebPushKeys | None = None


class TooManyDevices(Exception):
    """The customer already has ``MAX_DEVICES_PER_CUSTOMER`` devices."""


def device_id_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _device(row: PushDevice) -> Device:
    registered = as_utc(row.registered_at)
    keys = (
        WebPushKeys(p256dh=row.web_push_p256dh, auth=row.web_push_auth)
        if row.web_push_p256dh is not None and row.web_push_auth is not None
        else None
    )
    return Device(
        device_id=row.token_hash,
        customer_id=row.customer_id,
        token=row.token,
        platform=Platform(row.platform),
        registered_at=registered,
        web_push=keys,
    )


class PushDevices:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def register(
        self,
        customer_id: str,
        token: str,
        platform: Platform,
        now: datetime,
        web_push: WebPushKeys | None = None,
    ) -> tuple[Device, bool]:
        """Register the device for the customer; True when it was not theirs before.
        With ``web_push``, ``token`` is a web push subscription's endpoint."""
        device_id = device_id_of(token)
        async with self._sessions() as session, session.begin():
            existing = await session.get(PushDevice, device_id)
            created = existing is None or existing.customer_id != customer_id
            if created:
                count = len(list(await session.scalars(_of_customer(customer_id))))
                if count >= MAX_DEVICES_PER_CUSTOMER:
                    raise TooManyDevices(customer_id)
            values = {
                "token_hash": device_id,
                "customer_id": customer_id,
                "token": token,
                "platform": platform.value,
                "registered_at": now,
                # A browser renews its keys with a new subscription; kept as last given.
                "web_push_p256dh": web_push.p256dh if web_push is not None else None,
                "web_push_auth": web_push.auth if web_push is not None else None,
            }
            dialect = session.get_bind().dialect.name
            statement = insert_on_conflict(dialect, PushDevice).values(**values)
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=["token_hash"],
                    set_={k: v for k, v in values.items() if k != "token_hash"},
                )
            )
        return Device(device_id, customer_id, token, platform, now, web_push), created

    async def remove(self, customer_id: str, device_id: str) -> bool:
        """Remove the customer's device; False when they have no such device."""
        async with self._sessions() as session, session.begin():
            result: Any = await session.execute(
                delete(PushDevice).where(
                    PushDevice.token_hash == device_id, PushDevice.customer_id == customer_id
                )
            )
            return _count(result) > 0

    async def forget(self, device_id: str) -> bool:
        """FCM no longer knows the token (or the push service the subscription): the
        device goes, whoever it belonged to."""
        async with self._sessions() as session, session.begin():
            result: Any = await session.execute(
                delete(PushDevice).where(PushDevice.token_hash == device_id)
            )
            return _count(result) > 0

    async def of_customer(self, customer_id: str) -> list[Device]:
        """The customer's devices, oldest registration first."""
        async with self._sessions() as session:
            rows = await session.scalars(_of_customer(customer_id))
            return [_device(row) for row in rows]

    async def any_of_customer(self, customer_id: str) -> bool:
        """Whether the customer has any device left."""
        async with self._sessions() as session:
            return await has_device(session, customer_id)

    async def owner_of(self, device_id: str) -> str | None:
        """The customer the device is registered for; None for an unknown device."""
        async with self._sessions() as session:
            row = await session.get(PushDevice, device_id)
            return row.customer_id if row is not None else None

    async def delivered(self, ledger_key: str) -> set[str]:
        """The devices (ids) the message with this ledger key already reached."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(PushDelivery.token_hash).where(PushDelivery.ledger_key == ledger_key)
            )
            return set(rows)

    async def record_delivery(
        self, ledger_key: str, device_id: str, fcm_name: str, at: datetime
    ) -> None:
        """Note the device reached; ``fcm_name`` is the provider's name of the message
        (FCM's, or the push service's message URL, cut to the column's size)."""
        async with self._sessions() as session, session.begin():
            dialect = session.get_bind().dialect.name
            statement = insert_on_conflict(dialect, PushDelivery).values(
                ledger_key=ledger_key,
                token_hash=device_id,
                fcm_name=fcm_name[:MAX_MESSAGE_NAME],
                sent_at=at,
            )
            await session.execute(
                statement.on_conflict_do_nothing(index_elements=["ledger_key", "token_hash"])
            )


def _of_customer(customer_id: str) -> Any:
    return (
        select(PushDevice)
        .where(PushDevice.customer_id == customer_id)
        .order_by(PushDevice.registered_at, PushDevice.token_hash)
    )


# Read at every journey start (engine.customers.preferences): built once.
_ANY_OF_CUSTOMER = select(exists().where(PushDevice.customer_id == bindparam("customer_id")))


async def has_device(session: AsyncSession, customer_id: str) -> bool:
    """Whether the customer has any device, in the caller's session (and transaction)."""
    return bool(await session.scalar(_ANY_OF_CUSTOMER, {"customer_id": customer_id}))


async def forget_customer(session: AsyncSession, customer_id: str) -> int:
    """Erasure: drop every device of the customer, in the caller's transaction."""
    result: Any = await session.execute(
        delete(PushDevice).where(PushDevice.customer_id == customer_id)
    )
    return _count(result)


def _count(result: Any) -> int:
    count = result.rowcount
    return count if isinstance(count, int) and count > 0 else 0
