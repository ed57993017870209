"""Which customers were erased (GDPR / CCPA): a keyed hash of each id, and when.

``erased_customers`` keeps no customer id, yet recognises one when a late or
replayed request tries to write about that customer again, start a journey for
them, or make them a new data key. The hash is keyed (HMAC-SHA256, the key derived
from the service secret) so that someone holding a copy of the database cannot
test whether a known id was erased. Rows written before the hash was keyed hold an
unkeyed SHA-256: they are still recognised.

A mark is added, and a journey's owner registered, each under the customer's lock
(an advisory lock on PostgreSQL; SQLite's write lock is the database's), so a
journey start racing an erasure either sees the mark or registers its owner where
the erasure then finds it.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Table, bindparam, exists, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from engine.platform.database.tables import ErasedCustomer
from engine.platform.database.timestamps import as_utc
from engine.platform.database.upsert import insert_on_conflict

# Owner rows of an erased customer's journeys keep this prefix and the keyed hash
# in place of the id, so a repeated erasure still finds the journeys.
ERASED_OWNER_PREFIX = "erased:"

_KEY_LABEL = b"aftercare erased customers"
_LEGACY_PREFIX = "aftercare-erased-customer:"
_LOCK_NAMESPACE = 0x45726173  # "Eras"

_ERASED = cast(Table, ErasedCustomer.__table__)
_IS_ERASED = select(
    exists().where(
        or_(
            _ERASED.c.customer_hash == bindparam("customer_hash"),
            _ERASED.c.customer_hash == bindparam("legacy_hash"),
        )
    )
)
_ERASED_AT = select(_ERASED.c.erased_at).where(
    or_(
        _ERASED.c.customer_hash == bindparam("customer_hash"),
        _ERASED.c.customer_hash == bindparam("legacy_hash"),
    )
)

Connection = AsyncSession | AsyncConnection


class CustomerErased(Exception):
    """The customer was erased: nothing about them may be written again, and no
    journey or data key may be made for them."""

    def __init__(self) -> None:
        super().__init__("this customer's data was erased; nothing about them is kept")


class ErasureMarks:
    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("the erasure marks need the service's secret key")
        # A key of its own, derived from the service secret (never the signing key).
        self._key = hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()

    def digest(self, customer_id: str) -> str:
        """The customer's keyed hash, as ``erased_customers`` stores it (hex)."""
        return hmac.new(self._key, customer_id.encode(), hashlib.sha256).hexdigest()

    def erased_owner(self, customer_id: str) -> str:
        """What an erased customer's journey owner rows hold instead of the id."""
        return ERASED_OWNER_PREFIX + self.digest(customer_id)

    async def is_erased(self, connection: Connection, customer_id: str) -> bool:
        """Whether the customer was erased, in the caller's transaction."""
        return bool(await connection.scalar(_IS_ERASED, self._hashes(customer_id)))

    async def add(self, session: AsyncSession, customer_id: str) -> tuple[datetime, bool]:
        """Mark the customer erased in the caller's transaction (under their lock):
        when they were first erased, and whether they already were."""
        await self.lock(session, customer_id)
        earlier = await session.scalar(_ERASED_AT, self._hashes(customer_id))
        if earlier is not None:
            return as_utc(earlier), True
        now = datetime.now(UTC)
        dialect = session.get_bind().dialect.name
        await session.execute(
            insert_on_conflict(dialect, _ERASED).on_conflict_do_nothing(),
            {"customer_hash": self.digest(customer_id), "erased_at": now},
        )
        return now, False

    def known_hashes(self, customer_id: str) -> tuple[str, str]:
        """Every hash a mark of the customer may hold: the keyed one, and the plain
        SHA-256 of marks written before the hash was keyed."""
        hashes = self._hashes(customer_id)
        return hashes["customer_hash"], hashes["legacy_hash"]

    async def put_back(
        self, session: AsyncSession, customer_hash: str, erased_at: datetime
    ) -> bool:
        """Mark erased the customer a journaled hash names (a restore re-applying an
        erasure; the id itself is not known), in the caller's transaction. True if the
        mark was missing."""
        dialect = session.get_bind().dialect.name
        added = await session.execute(
            insert_on_conflict(dialect, _ERASED)
            .on_conflict_do_nothing()
            .returning(_ERASED.c.customer_hash),
            {"customer_hash": customer_hash, "erased_at": erased_at},
        )
        return added.first() is not None

    async def recorded(self, connection: Connection) -> list[tuple[str, datetime]]:
        """Every mark held: (hash, erased at)."""
        rows = await connection.execute(select(_ERASED.c.customer_hash, _ERASED.c.erased_at))
        return [(customer_hash, as_utc(at)) for customer_hash, at in rows]

    async def lock(self, connection: Connection, customer_id: str) -> None:
        """Hold the customer's lock until the transaction ends (PostgreSQL; SQLite's
        writers hold the database's write lock already, see BEGIN IMMEDIATE)."""
        bind = connection.get_bind() if isinstance(connection, AsyncSession) else connection
        if bind.dialect.name != "postgresql":
            return
        # Two customers sharing the 32-bit key only wait for each other; never wrong.
        digest = hashlib.sha256(customer_id.encode()).digest()
        await connection.execute(
            text("SELECT pg_advisory_xact_lock(:namespace, :customer)"),
            {"namespace": _LOCK_NAMESPACE, "customer": int.from_bytes(digest[:4], signed=True)},
        )

    def _hashes(self, customer_id: str) -> dict[str, str]:
        legacy = hashlib.sha256(f"{_LEGACY_PREFIX}{customer_id}".encode()).hexdigest()
        return {"customer_hash": self.digest(customer_id), "legacy_hash": legacy}
