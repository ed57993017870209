"""Which customers were texted at a phone number, for inbound STOP / START replies.

Twilio tells us only the number a reply came from. The SMS channel remembers,
before each send, that this customer was texted at this number; an inbound
message then finds the customers to record the opt-out for.

Numbers are never stored: each row keeps HMAC-SHA256(key, number), the key being
derived from the service's secret (``engine.platform.links.secret``), so a copy of the
table does not list anyone's phone and cannot be reversed by hashing every
possible number without the secret. Changing the secret orphans the rows: later
sends fill the index again.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.platform.database.tables import PhoneCustomer
from engine.platform.database.upsert import insert_on_conflict

WHATSAPP_PREFIX = "whatsapp:"
# Separates this use of the service secret from every other (link signing).
_KEY_LABEL = b"aftercare phone index v1"


def phone_index_key(secret: str) -> bytes:
    """The index's hashing key, derived from the service's secret."""
    if not secret:
        raise ValueError("the phone index needs a non-empty secret")
    return hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()


def normalise_phone(phone: str) -> str:
    """The E.164 number of an SMS or WhatsApp address (``whatsapp:`` and spaces dropped)."""
    text = phone.strip()
    if text.lower().startswith(WHATSAPP_PREFIX):
        text = text[len(WHATSAPP_PREFIX) :]
    return "".join(text.split())


class PhoneIndex:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the phone index key must be at least 16 bytes")
        self._sessions = sessions
        self._key = key

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self._sessions

    def digest(self, phone: str) -> str:
        """How ``phone`` is stored: hex HMAC-SHA256 of its normalised form."""
        number = normalise_phone(phone)
        if not number:
            raise ValueError("phone must not be empty")
        return hmac.new(self._key, number.encode(), hashlib.sha256).hexdigest()

    async def remember(self, phone: str, customer_id: str) -> None:
        """Note that ``customer_id`` is texted at ``phone`` (idempotent, concurrency-safe)."""
        if not customer_id:
            raise ValueError("customer_id must not be empty")
        values = {"phone_hash": self.digest(phone), "customer_id": customer_id}
        async with self._sessions() as session:
            # ON CONFLICT DO NOTHING: every send of a journey calls this, and a
            # known pair must neither fail nor abort a PostgreSQL transaction.
            statement = insert_on_conflict(
                session.get_bind().dialect.name, PhoneCustomer
            ).on_conflict_do_nothing(index_elements=["phone_hash", "customer_id"])
            await session.execute(statement.values(**values))
            await session.commit()

    async def customers(self, phone: str) -> list[str]:
        """Every customer texted at ``phone``, in id order (none for an unknown number)."""
        if not normalise_phone(phone):
            return []
        async with self._sessions() as session:
            rows = await session.scalars(
                select(PhoneCustomer.customer_id)
                .where(PhoneCustomer.phone_hash == self.digest(phone))
                .order_by(PhoneCustomer.customer_id)
            )
            return list(rows)


async def forget_customer(session: AsyncSession, customer_id: str) -> int:
    """Erasure: drop every number noted for the customer, in the caller's
    transaction; how many rows there were."""
    result: Any = await session.execute(
        delete(PhoneCustomer).where(PhoneCustomer.customer_id == customer_id)
    )
    count = result.rowcount
    return count if isinstance(count, int) and count > 0 else 0
