"""The frequency cap's accounting: which messages count against each customer's caps,
decided and recorded in one transaction per send, serialised per customer.

The send activity calls :meth:`FrequencyCapStore.reserve` before delivering a
capped message. In one transaction, holding the customer's lock, it reads what
counts against the customer's caps for the category, decides with the pure
arithmetic of :mod:`workflows.frequency`, and records the outcome:

* **granted**: a *reserved* row at the current instant; the activity delivers and
  then :meth:`confirm` marks it *sent*, or :meth:`release` deletes it when the
  delivery turns out impossible (bounced, unavailable), so the slot goes to the
  next message;
* **deferred**: a *held* row at the earliest instant the message fits (and its
  local rules allow), which also keeps lower-priority messages off that slot;
* **stale**: that instant is past the message's stale limit: no row (its old hold
  is removed) and the activity records the drop in the ledger.

Every decision is keyed by the message's *send key* (journey/step/iteration): a
retry of a send that was granted before the worker died finds its own reserved row
and goes on without counting twice; a held message that wakes replaces its hold.

The lock: on PostgreSQL a transaction-scoped advisory lock on the customer
(``pg_advisory_xact_lock``), taken before anything is read, so two journeys of one
customer whose timers fire in the same second queue for it and the second sees
what the first recorded. SQLite has one writer at a time: our engines begin every
transaction with ``BEGIN IMMEDIATE`` (``engine.platform.database.connection``), which takes
that write lock up front. A reservation whose delivery never ends (the step gave up
after its retry budget) keeps counting: the cap errs towards fewer messages.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.platform.database.tables import CappedSend, CapSlotState
from engine.platform.database.timestamps import as_utc
from workflows.frequency import CapCheck, describe, fits, local_rules, next_slot

# The advisory lock's first key: one namespace for the caps, apart from any other
# advisory locks sharing the database. ("FCap" in ASCII.)
_LOCK_NAMESPACE = 0x46436170


class CapOutcome(StrEnum):
    GRANTED = "granted"  # send now: the slot is reserved
    DEFERRED = "deferred"  # held for ``at``: try again then
    STALE = "stale"  # the first slot, ``at``, is past the message's stale limit


@dataclass(frozen=True)
class CapDecision:
    outcome: CapOutcome
    at: datetime  # granted: the reserved instant; otherwise the first slot it fits
    reason: str  # which caps are full, for the timeline and the ledger ("" if granted)


@dataclass(frozen=True)
class CapSlot:
    """One row, as :meth:`FrequencyCapStore.slots` shows it."""

    send_key: str
    category: str
    state: str
    priority: int
    slot_at: datetime


def send_key(journey_id: str, step: str, iteration: int) -> str:
    """The message a cap slot belongs to, whichever channel carries it."""
    return f"{journey_id}/{step}/{iteration}"


class FrequencyCapStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def reserve(
        self,
        *,
        customer_id: str,
        category: str,
        key: str,
        check: CapCheck,
        now: datetime,
    ) -> CapDecision:
        """Decide and record whether the message ``key`` may go out at ``now``."""
        if not customer_id:
            raise ValueError("customer_id: required to count messages against a cap")
        if not check.caps:
            raise ValueError("check.caps: no cap given; uncapped messages need no slot")
        now = as_utc(now)
        longest = timedelta(days=max(cap.days for cap in check.caps))
        async with self._sessions() as session, session.begin():
            await _lock_customer(session, customer_id)
            mine = await session.scalar(select(CappedSend).where(CappedSend.send_key == key))
            if mine is not None and mine.state != CapSlotState.HELD:
                # Granted before (the worker died mid-send, or the activity is retried):
                # the same slot, not a second one.
                return CapDecision(CapOutcome.GRANTED, as_utc(mine.slot_at), "")
            rows = await session.scalars(
                select(CappedSend).where(
                    CappedSend.customer_id == customer_id,
                    CappedSend.category == category,
                    CappedSend.slot_at > now - longest,
                    CappedSend.send_key != key,
                )
            )
            taken = [as_utc(row.slot_at) for row in rows if _counts_against(row, check, mine)]
            if fits(taken, now, check.caps):
                await _put(
                    session, mine, customer_id, category, key, check, CapSlotState.RESERVED, now
                )
                return CapDecision(CapOutcome.GRANTED, now, "")
            tz, window, quiet = check.timezone, check.window, check.quiet_hours
            slot = next_slot(
                taken, now, check.caps, lambda moment: local_rules(moment, tz, window, quiet)
            )
            reason = f"over the frequency cap ({describe(category, check.caps)})"
            if check.stale_at is not None and slot > as_utc(check.stale_at):
                if mine is not None:
                    await session.delete(mine)
                return CapDecision(CapOutcome.STALE, slot, reason)
            await _put(session, mine, customer_id, category, key, check, CapSlotState.HELD, slot)
            return CapDecision(CapOutcome.DEFERRED, slot, reason)

    async def confirm(self, key: str, sent_at: datetime) -> None:
        """The reserved message was handed to the provider: it counts for good, at
        the instant it was reserved (a slot never moves once taken)."""
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(CappedSend)
                .where(CappedSend.send_key == key, CappedSend.state == CapSlotState.RESERVED)
                .values(state=CapSlotState.SENT)
            )

    async def release(self, key: str) -> None:
        """The message cannot be delivered (bounced, or its channel is unavailable):
        the slot it reserved or held is free again. A sent message keeps counting."""
        async with self._sessions() as session, session.begin():
            await session.execute(
                delete(CappedSend).where(
                    CappedSend.send_key == key, CappedSend.state != CapSlotState.SENT
                )
            )

    async def slots(self, customer_id: str, category: str | None = None) -> list[CapSlot]:
        """The customer's rows, oldest slot first (for people and tests)."""
        query = select(CappedSend).where(CappedSend.customer_id == customer_id)
        if category is not None:
            query = query.where(CappedSend.category == category)
        async with self._sessions() as session:
            rows = await session.scalars(query.order_by(CappedSend.slot_at, CappedSend.id))
            return [
                CapSlot(row.send_key, row.category, row.state, row.priority, as_utc(row.slot_at))
                for row in rows
            ]


async def delete_slots(session: AsyncSession, customer_id: str) -> int:
    """Delete every slot of the customer (erasure), inside the caller's transaction;
    returns how many rows went."""
    result = await session.execute(delete(CappedSend).where(CappedSend.customer_id == customer_id))
    return int(getattr(result, "rowcount", 0) or 0)


def _counts_against(row: CappedSend, check: CapCheck, mine: CappedSend | None) -> bool:
    """Whether ``row`` takes room from the message asking: sent and reserved ones
    always; holds that outrank it (higher priority, or equal and older)."""
    if row.state != CapSlotState.HELD:
        return True
    if row.priority != check.priority:
        return row.priority > check.priority
    return mine is None or row.id < mine.id


async def _put(
    session: AsyncSession,
    mine: CappedSend | None,
    customer_id: str,
    category: str,
    key: str,
    check: CapCheck,
    state: str,
    at: datetime,
) -> None:
    if mine is None:
        session.add(
            CappedSend(
                send_key=key,
                customer_id=customer_id,
                category=category,
                state=state,
                priority=check.priority,
                slot_at=at,
            )
        )
    else:
        # A hold keeps its row (and so its place among equal priorities).
        mine.state, mine.priority, mine.slot_at = state, check.priority, at


async def _lock_customer(session: AsyncSession, customer_id: str) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return  # SQLite: BEGIN IMMEDIATE already holds the database's write lock
    digest = hashlib.sha256(customer_id.encode()).digest()
    # Two customers sharing the 32-bit key only wait for each other; never wrong.
    await session.execute(
        text("SELECT pg_advisory_xact_lock(:namespace, :customer)"),
        {"namespace": _LOCK_NAMESPACE, "customer": int.from_bytes(digest[:4], signed=True)},
    )
