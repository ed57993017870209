"""The suppression list: addresses no message may go to on a channel.

Addresses get here when a customer unsubscribes or a provider reports one as
unreachable (Twilio 21610 "unsubscribed", 30005/30006 unknown or landline).
Every address is normalised before it is stored or looked up, so the spelling a
provider or a customer used does not matter:

* email: stripped and lower-cased (``Jane@Example.TEST `` -> ``jane@example.test``);
* sms: the E.164 number as given, stripped;
* whatsapp: the E.164 number without Twilio's ``whatsapp:`` prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.platform.database.tables import SuppressedAddress
from engine.platform.database.timestamps import as_utc
from engine.platform.database.upsert import insert_on_conflict

WHATSAPP_PREFIX = "whatsapp:"


@dataclass(frozen=True)
class Suppression:
    channel: str
    address: str
    reason: str
    created_at: datetime

    @classmethod
    def of(cls, row: SuppressedAddress) -> Suppression:
        return cls(
            channel=row.channel,
            address=row.address,
            reason=row.reason,
            # SQLite hands back naive datetimes; they are UTC (CURRENT_TIMESTAMP).
            created_at=as_utc(row.created_at),
        )


def normalise_channel(channel: str) -> str:
    return channel.strip().lower()


def normalise_address(channel: str, address: str) -> str:
    """The form an address is stored and compared in on this channel."""
    channel = normalise_channel(channel)
    address = address.strip()
    if channel == "email":
        return address.lower()
    if channel == "whatsapp" and address.lower().startswith(WHATSAPP_PREFIX):
        return address[len(WHATSAPP_PREFIX) :].strip()
    return address


class SuppressionList:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def is_suppressed(self, channel: str, address: str) -> bool:
        channel = normalise_channel(channel)
        address = normalise_address(channel, address)
        async with self._sessions() as session:
            found = await session.scalar(_IS_SUPPRESSED, {"channel": channel, "address": address})
        return bool(found)

    async def add(self, channel: str, address: str, reason: str) -> bool:
        """Suppress the address; True if it was not suppressed before.

        Safe to call concurrently (several processes too): the unique constraint
        decides, and exactly one of the callers gets True.
        """
        values = {
            "channel": normalise_channel(channel),
            "address": normalise_address(channel, address),
            "reason": reason,
        }
        if not values["address"]:
            raise ValueError("an empty address cannot be suppressed")
        async with self._sessions() as session:
            # INSERT ... ON CONFLICT DO NOTHING RETURNING id: no error (and no
            # aborted transaction on PostgreSQL) when the address is already
            # there, and a row back only when this call inserted it (rowcount
            # is not reliable for this statement on every driver).
            statement = insert_on_conflict(
                session.get_bind().dialect.name, SuppressedAddress
            ).on_conflict_do_nothing(index_elements=["channel", "address"])
            inserted = await session.scalar(
                statement.values(**values).returning(SuppressedAddress.id)
            )
            await session.commit()
            return inserted is not None

    async def remove(self, channel: str, address: str) -> bool:
        """Lift the suppression; True if there was one."""
        channel = normalise_channel(channel)
        address = normalise_address(channel, address)
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                delete(SuppressedAddress).where(
                    SuppressedAddress.channel == channel, SuppressedAddress.address == address
                )
            )
        return _rowcount(result) > 0

    async def entries(self) -> list[Suppression]:
        """Every suppression, oldest first."""
        async with self._sessions() as session:
            rows = await session.scalars(select(SuppressedAddress).order_by(SuppressedAddress.id))
            return [Suppression.of(row) for row in rows]


# Asked before every send: built once, on the table (see engine.messaging.ledger).
_SUPPRESSIONS = cast(Table, SuppressedAddress.__table__)
_IS_SUPPRESSED = select(
    exists().where(
        _SUPPRESSIONS.c.channel == bindparam("channel"),
        _SUPPRESSIONS.c.address == bindparam("address"),
    )
)


def _rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount
