"""Consent: what each customer agreed to receive, as an append-only audit trail.

Every decision (an unsubscribe click, a preferences change, the shop's API) is
one ``consent_events`` row; nothing is ever updated or deleted, so the table is
also the record of who decided what, when and through which path.

Who and which path, truthfully:

* ``source`` names the path. The paths the service itself runs for the customer
  (:data:`SYSTEM_SOURCES`: the unsubscribe link, the preference centre, STOP and
  START texts) are written only by those paths: the API refuses a request that
  names one, so such a row always means the customer acted.
* ``api_key_id`` names the API key whose call recorded the decision (None for
  everything the customer did on our pages or by text), whatever ``source`` the
  caller gave.

``channel`` None means every channel and ``category`` None every category that
needs consent. For a given customer, channel and category the *newest* matching
row wins, whether it names them exactly or is a wildcard: "no marketing at all"
followed by "marketing by email is fine" allows marketing email (and still not
marketing SMS); the reverse order refuses both.

Defaults, deliberately:

* Transactional and support messages need no consent (order confirmations,
  shipping notices, answers to the customer's own request) and are always allowed;
  an opt-out never blocks them.
* A customer with no matching event is **allowed**: the shop collects consent at
  checkout and only starts journeys for customers who gave it, so the absence of
  a row means "agreed at checkout, never changed their mind". A deployment whose
  shop does not collect consent must record a ``granted=False`` wildcard event
  for such customers (source "api") before their journeys send anything else.

One-time actions (unsubscribing through a signed link, an inbound STOP) are made
replay-safe by ``used_link_tokens``, which keeps only the SHA-256 of each used
token; the token is claimed in the same transaction as the action's writes, so a
failure half-way keeps neither and the retry is not mistaken for a replay.

The one exception to "never deleted": erasing a customer (GDPR / CCPA, see
``engine.customers.erasure``) deletes their events; ``erased_customers`` then keeps a hash
of the id, and every later write about them raises :class:`CustomerErased`.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.platform.database.erasure_marks import CustomerErased as CustomerErased
from engine.platform.database.erasure_marks import ErasureMarks
from engine.platform.database.tables import ConsentRecord, UsedLinkToken
from engine.platform.database.timestamps import as_utc
from engine.platform.database.upsert import insert_on_conflict
from workflows.plans.model import ALWAYS_ALLOWED_CATEGORIES

# What a customer can decide about (the rest is always allowed), and where.
CONSENT_CATEGORIES = ("relationship", "feedback", "marketing")
CONSENT_CHANNELS = ("email", "sms", "whatsapp", "push")

# The sources the service writes itself, for what the customer did: the
# unsubscribe link (RFC 8058 one-click, or the page's button), the preference
# centre, and STOP / START texted back. No API caller may name them.
SOURCE_ONE_CLICK = "one_click"
SOURCE_UNSUBSCRIBE_PAGE = "unsubscribe_page"
SOURCE_PREFERENCE_CENTRE = "preference_centre"
SOURCE_SMS_STOP = "sms_stop"
SOURCE_SMS_START = "sms_start"
# A spam complaint about one of our emails (an ARF report from the mailbox provider).
SOURCE_COMPLAINT = "complaint"
SYSTEM_SOURCES = frozenset(
    {
        SOURCE_ONE_CLICK,
        SOURCE_UNSUBSCRIBE_PAGE,
        SOURCE_PREFERENCE_CENTRE,
        SOURCE_SMS_STOP,
        SOURCE_SMS_START,
        SOURCE_COMPLAINT,
    }
)


@dataclass(frozen=True)
class ConsentDecision:
    """One decision to record (None channel or category: all of them)."""

    granted: bool
    channel: str | None = None
    category: str | None = None


@dataclass(frozen=True)
class ConsentEvent:
    customer_id: str
    channel: str | None  # None: every channel
    category: str | None  # None: every category that needs consent
    granted: bool
    source: str
    recorded_at: datetime  # aware, UTC
    # The API key whose call recorded it; None when the customer did it themselves.
    api_key_id: str | None = None

    @classmethod
    def of(cls, row: ConsentRecord | Row[Any]) -> ConsentEvent:
        return cls(
            customer_id=row.customer_id,
            channel=row.channel,
            category=row.category,
            granted=row.granted,
            source=row.source,
            recorded_at=as_utc(row.recorded_at),
            api_key_id=row.api_key_id,
        )


def token_hash(token: str) -> str:
    """How a used token is stored: the hex SHA-256 of its text."""
    return hashlib.sha256(token.encode()).hexdigest()


class ConsentLedger:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], marks: ErasureMarks) -> None:
        self._sessions = sessions
        self._marks = marks

    async def append_unless_erased(
        self,
        session: AsyncSession,
        customer_id: str,
        decisions: Sequence[ConsentDecision],
        source: str,
    ) -> bool:
        """Append ``decisions`` in the caller's transaction; False, writing nothing, for
        an erased customer (the check is a read, so the transaction stays usable)."""
        try:
            await ensure_not_erased(session, self._marks, customer_id)
        except CustomerErased:
            return False
        await append_events(session, customer_id, decisions, source)
        return True

    async def record(
        self,
        customer_id: str,
        *,
        granted: bool,
        channel: str | None,
        category: str | None,
        source: str,
    ) -> None:
        """Append one consent decision (None channel or category: all of them)."""
        values = _event_values(customer_id, granted, channel, category, source)
        async with self._sessions() as session, session.begin():
            await ensure_not_erased(session, self._marks, customer_id)
            await session.execute(insert(ConsentRecord).values(**values))

    async def record_once(
        self,
        token: str,
        customer_id: str,
        *,
        granted: bool,
        channel: str | None,
        category: str | None,
        source: str,
    ) -> bool:
        """Mark ``token`` used and record the decision, both or neither (one transaction).

        False, recording nothing, when the token was already used. Concurrent
        callers with the same token (several processes too): exactly one gets True.
        Raises :class:`CustomerErased`, recording nothing, for an erased customer.
        """
        values = _event_values(customer_id, granted, channel, category, source)
        async with self._sessions() as session:
            try:
                await ensure_not_erased(session, self._marks, customer_id)
            except CustomerErased:
                await session.rollback()
                raise
            if not await _claim_token(session, token):
                await session.rollback()
                return False
            await session.execute(insert(ConsentRecord).values(**values))
            await session.commit()
            return True

    @asynccontextmanager
    async def once(self, token: str | None) -> AsyncIterator[AsyncSession | None]:
        """A transaction that starts by claiming ``token`` (None: nothing to claim).

        Yields its session, committed when the block ends and rolled back, token
        claim included, when the block raises: a retry after a failure is then
        not taken for a replay. Yields None, writing nothing, when the token was
        used already. Concurrency-safe like :meth:`record_once`.
        """
        async with self._sessions() as session:
            if token is not None and not await _claim_token(session, token):
                await session.rollback()
                yield None
                return
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise
            await session.commit()

    async def use_token_once(self, token: str) -> bool:
        """True the first time ``token`` is used, False ever after (concurrency-safe)."""
        async with self._sessions() as session:
            used = await _claim_token(session, token)
            if used:
                await session.commit()
            else:
                await session.rollback()
            return used

    async def allows(self, customer_id: str, channel: str, category: str) -> bool:
        """May a message of ``category`` go to this customer on ``channel`` now?"""
        channel = _normalise(channel)
        category = _normalise(category)
        if category in ALWAYS_ALLOWED_CATEGORIES:
            return True
        async with self._sessions() as session:
            latest = await session.scalar(
                select(ConsentRecord.granted)
                .where(
                    ConsentRecord.customer_id == customer_id,
                    or_(ConsentRecord.channel.is_(None), ConsentRecord.channel == channel),
                    or_(ConsentRecord.category.is_(None), ConsentRecord.category == category),
                )
                # The id, not recorded_at: ids grow with every insert, while two
                # events can share a timestamp (SQLite keeps whole seconds).
                .order_by(ConsentRecord.id.desc())
                .limit(1)
            )
        # No event: consent was collected at checkout (see the module docstring).
        return True if latest is None else bool(latest)

    async def history(self, customer_id: str) -> list[ConsentEvent]:
        """Every decision of this customer, oldest first."""
        async with self._sessions() as session:
            return await events_of(session, customer_id)


def current_consent(
    events: Sequence[ConsentEvent],
) -> dict[tuple[str, str], ConsentEvent | None]:
    """The deciding event for every channel x category that needs consent (None: no
    event, so allowed), by the same newest-matching-event rule as ``allows``."""
    deciding: dict[tuple[str, str], ConsentEvent | None] = {
        (channel, category): None for channel in CONSENT_CHANNELS for category in CONSENT_CATEGORIES
    }
    for event in events:  # oldest first: later events overwrite earlier ones
        for channel, category in deciding:
            if event.channel in (None, channel) and event.category in (None, category):
                deciding[(channel, category)] = event
    return deciding


async def ensure_not_erased(session: AsyncSession, marks: ErasureMarks, customer_id: str) -> None:
    """Raise :class:`CustomerErased` when the customer was erased."""
    if await marks.is_erased(session, customer_id):
        raise CustomerErased()


async def events_of(session: AsyncSession, customer_id: str) -> list[ConsentEvent]:
    """Every decision of this customer, oldest first, in the caller's transaction."""
    rows = await session.execute(_EVENTS_OF, {"customer_id": customer_id})
    return [ConsentEvent.of(row) for row in rows]


# Read for every journey start and every send that needs consent: built once, on
# the table (see engine.messaging.ledger for what building ORM statements cost).
_CONSENT = cast(Table, ConsentRecord.__table__)
_EVENTS_OF = (
    select(_CONSENT)
    .where(_CONSENT.c.customer_id == bindparam("customer_id"))
    .order_by(_CONSENT.c.id)
)


async def append_events(
    session: AsyncSession,
    customer_id: str,
    decisions: Sequence[ConsentDecision],
    source: str,
    *,
    api_key_id: str | None = None,
) -> None:
    """Append ``decisions`` in order, in the caller's transaction (which must have
    checked :func:`ensure_not_erased`); ``api_key_id`` names the API key of the call
    that made them (None: not the API)."""
    for decision in decisions:
        values = _event_values(
            customer_id, decision.granted, decision.channel, decision.category, source
        )
        await session.execute(insert(ConsentRecord).values(**values, api_key_id=api_key_id))


async def delete_events(session: AsyncSession, customer_id: str) -> int:
    """Erasure only: delete every event of the customer; how many there were."""
    result: Any = await session.execute(
        delete(ConsentRecord).where(ConsentRecord.customer_id == customer_id)
    )
    count = result.rowcount
    return count if isinstance(count, int) and count > 0 else 0


async def _claim_token(session: AsyncSession, token: str) -> bool:
    """Insert the token's hash in the session's transaction; False if it was there."""
    digest = token_hash(token)
    # INSERT ... ON CONFLICT DO NOTHING RETURNING: no error (and no aborted
    # transaction on PostgreSQL) for a used token, a row back only when this
    # call inserted it. A concurrent insert of the same hash waits for the
    # other transaction and then conflicts (or inserts, if that one rolled back).
    statement = insert_on_conflict(
        session.get_bind().dialect.name, UsedLinkToken
    ).on_conflict_do_nothing(index_elements=["token_hash"])
    inserted = await session.scalar(
        statement.values(token_hash=digest).returning(UsedLinkToken.token_hash)
    )
    return inserted is not None


def _event_values(
    customer_id: str, granted: bool, channel: str | None, category: str | None, source: str
) -> dict[str, Any]:
    if not customer_id:
        raise ValueError("consent needs a customer id")
    if not source:
        raise ValueError("consent needs a source")
    return {
        "customer_id": customer_id,
        "channel": _normalise(channel) if channel else None,
        "category": _normalise(category) if category else None,
        "granted": granted,
        "source": source,
    }


def _normalise(value: str) -> str:
    return value.strip().lower()
