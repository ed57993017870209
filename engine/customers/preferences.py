"""Customer preferences: locale, time zone, quiet hours, preferred channel, and the
record of erased customers.

Consent (what a customer agreed to receive) is not kept here but in the
append-only ``consent_events`` (:mod:`engine.customers.consent`); an update that
changes both writes both in one transaction, so a refused request changes nothing.

Every snapshot taken for the customer's journeys (:meth:`PreferenceStore.snapshot`)
bumps the row's ``revision`` and reads in the same transaction. Revisions therefore
grow in the order the data changed, and a journey that receives two notifications
out of order keeps the newer one.

An erased customer (GDPR / CCPA, :meth:`PreferenceStore.erase`) leaves one row in
``erased_customers``: a hash of the id and the time. Any later write about them
(a replayed request, a late unsubscribe) raises :class:`CustomerErased` instead of
silently bringing their data back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Literal, cast

from sqlalchemy import Row, Table, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.customers.consent import (
    ConsentDecision,
    ConsentEvent,
    CustomerErased,
    append_events,
    delete_events,
    ensure_not_erased,
    events_of,
)
from engine.messaging.push_devices import has_device
from engine.platform.database.erasure_marks import ErasureMarks
from engine.platform.database.tables import CustomerPreferenceRecord
from engine.platform.database.upsert import insert_on_conflict


class _Keep(Enum):
    KEEP = "keep"


#: In a :class:`PreferenceUpdate`: leave this field as it is.
KEEP: Literal[_Keep.KEEP] = _Keep.KEEP


@dataclass(frozen=True)
class QuietHours:
    start: str  # local "HH:MM"
    end: str


@dataclass(frozen=True)
class CustomerPreferences:
    """A customer's stored preferences; None means "as the order and the plan say"."""

    customer_id: str
    locale: str | None = None
    timezone: str | None = None
    quiet_hours: QuietHours | None = None
    preferred_channel: str | None = None
    updated_at: datetime | None = None
    revision: int = 0

    @classmethod
    def of(cls, row: CustomerPreferenceRecord | Row[Any]) -> CustomerPreferences:
        quiet = (
            QuietHours(row.quiet_start, row.quiet_end)
            if row.quiet_start is not None and row.quiet_end is not None
            else None
        )
        return cls(
            customer_id=row.customer_id,
            locale=row.locale,
            timezone=row.timezone,
            quiet_hours=quiet,
            preferred_channel=row.preferred_channel,
            updated_at=_utc(row.updated_at) if row.updated_at is not None else None,
            revision=row.revision,
        )


@dataclass(frozen=True)
class PreferenceUpdate:
    """What to change; KEEP leaves a field alone, None clears it (back to the default).

    Values must already be validated (the API does it: known locale, IANA zone,
    "HH:MM" quiet hours, a known channel).
    """

    locale: str | Literal[_Keep.KEEP] | None = KEEP
    timezone: str | Literal[_Keep.KEEP] | None = KEEP
    quiet_hours: QuietHours | Literal[_Keep.KEEP] | None = KEEP
    preferred_channel: str | Literal[_Keep.KEEP] | None = KEEP

    @property
    def changes_anything(self) -> bool:
        return any(
            value is not KEEP
            for value in (self.locale, self.timezone, self.quiet_hours, self.preferred_channel)
        )


@dataclass(frozen=True)
class PreferenceSnapshot:
    """Everything a customer's journeys need to know, read in one transaction (push
    devices included: ``engine.messaging.push_devices``)."""

    preferences: CustomerPreferences
    consent_events: list[ConsentEvent]  # oldest first
    has_push_device: bool = False


@dataclass(frozen=True)
class Erasure:
    """What :meth:`PreferenceStore.erase` did."""

    preference_rows_deleted: int
    consent_rows_deleted: int
    already_erased: bool
    erased_at: datetime


class PreferenceStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], marks: ErasureMarks) -> None:
        self._sessions = sessions
        self._marks = marks

    async def get(self, customer_id: str) -> CustomerPreferences:
        async with self._sessions() as session:
            row = await session.get(CustomerPreferenceRecord, customer_id)
            return CustomerPreferences.of(row) if row else CustomerPreferences(customer_id)

    async def update(
        self,
        customer_id: str,
        changes: PreferenceUpdate,
        consents: Sequence[ConsentDecision] = (),
        *,
        source: str = "api",
        api_key_id: str | None = None,
    ) -> CustomerPreferences:
        """Apply ``changes`` and append ``consents`` (in order), all or nothing;
        ``api_key_id`` is the API key of the call that asked (kept with each consent
        event).

        Raises :class:`CustomerErased` for an erased customer, writing nothing.
        """
        async with self._sessions() as session, session.begin():
            await ensure_not_erased(session, self._marks, customer_id)
            if changes.changes_anything:
                values = _changed_columns(changes)
                values["updated_at"] = datetime.now(UTC)
                row = await session.get(CustomerPreferenceRecord, customer_id)
                if row is None:
                    await session.execute(
                        insert(CustomerPreferenceRecord).values(customer_id=customer_id, **values)
                    )
                else:
                    await session.execute(
                        update(CustomerPreferenceRecord)
                        .where(CustomerPreferenceRecord.customer_id == customer_id)
                        .values(**values)
                    )
            await append_events(session, customer_id, consents, source, api_key_id=api_key_id)
        return await self.get(customer_id)

    async def read(self, customer_id: str) -> PreferenceSnapshot:
        """Preferences and consent as they stand, without bumping the revision (for a
        journey that is about to start: newer changes will notify it)."""
        async with self._sessions() as session:
            return await _stored_snapshot(session, customer_id)

    async def read_unless_erased(self, customer_id: str) -> PreferenceSnapshot | None:
        """As :meth:`read`, in the same session as the erasure check (a journey start
        asks both); None for an erased customer."""
        async with self._sessions() as session:
            if await self._marks.is_erased(session, customer_id):
                return None
            return await _stored_snapshot(session, customer_id)

    async def snapshot(self, customer_id: str) -> PreferenceSnapshot:
        """Bump the revision and read preferences and consent, in one transaction.

        The bump takes the row's write lock first, so concurrent snapshots of one
        customer are serialised: a higher revision never carries older data.
        """
        async with self._sessions() as session, session.begin():
            await _bump_revision(session, customer_id)
            row = await session.get(CustomerPreferenceRecord, customer_id, populate_existing=True)
            events = await events_of(session, customer_id)
            # After the bump's lock: a device change committed before this snapshot
            # began is in it, so a higher revision never says less of the devices.
            devices = await has_device(session, customer_id)
        if row is None:  # pragma: no cover - the bump just wrote it
            raise LookupError(customer_id)
        return PreferenceSnapshot(CustomerPreferences.of(row), events, devices)

    async def is_erased(self, customer_id: str) -> bool:
        async with self._sessions() as session:
            return await self._marks.is_erased(session, customer_id)

    async def erase(self, customer_id: str) -> Erasure:
        """Delete the customer's preferences and consent events and mark them erased
        (a keyed hash of the id; see ErasureMarks); one transaction. Idempotent: a
        second call deletes nothing and reports ``already_erased``."""
        async with self._sessions() as session, session.begin():
            erased_at, already = await self._marks.add(session, customer_id)
            preferences = await session.execute(
                delete(CustomerPreferenceRecord).where(
                    CustomerPreferenceRecord.customer_id == customer_id
                )
            )
            consent_rows = await delete_events(session, customer_id)
        return Erasure(
            preference_rows_deleted=_rowcount(preferences),
            consent_rows_deleted=consent_rows,
            already_erased=already,
            erased_at=erased_at,
        )


# What every journey start reads: built once, on the tables (see
# engine.messaging.ledger for what building ORM statements cost).
_PREFERENCES = cast(Table, CustomerPreferenceRecord.__table__)
_PREFERENCES_OF = select(_PREFERENCES).where(_PREFERENCES.c.customer_id == bindparam("customer_id"))


async def _stored_snapshot(session: AsyncSession, customer_id: str) -> PreferenceSnapshot:
    """Preferences (the defaults when none are stored), consent and whether the
    customer has a push device, as they stand."""
    row = (await session.execute(_PREFERENCES_OF, {"customer_id": customer_id})).first()
    events = await events_of(session, customer_id)
    preferences = CustomerPreferences.of(row) if row else CustomerPreferences(customer_id)
    return PreferenceSnapshot(preferences, events, await has_device(session, customer_id))


async def _bump_revision(session: AsyncSession, customer_id: str) -> None:
    # One statement, so two first snapshots at once cannot both insert.
    statement = insert_on_conflict(session.get_bind().dialect.name, CustomerPreferenceRecord)
    await session.execute(
        statement.values(customer_id=customer_id, revision=1).on_conflict_do_update(
            index_elements=["customer_id"],
            set_={"revision": CustomerPreferenceRecord.revision + 1},
        )
    )


def _changed_columns(changes: PreferenceUpdate) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if changes.locale is not KEEP:
        values["locale"] = changes.locale
    if changes.timezone is not KEEP:
        values["timezone"] = changes.timezone
    if changes.preferred_channel is not KEEP:
        values["preferred_channel"] = changes.preferred_channel
    if changes.quiet_hours is not KEEP:
        quiet = changes.quiet_hours
        values["quiet_start"] = quiet.start if quiet else None
        values["quiet_end"] = quiet.end if quiet else None
    return values


def _rowcount(result: Any) -> int:
    count = getattr(result, "rowcount", 0)
    return count if isinstance(count, int) and count > 0 else 0


def _utc(value: datetime) -> datetime:
    # SQLite returns naive datetimes (we store UTC); PostgreSQL the session's zone.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


__all__ = [
    "KEEP",
    "CustomerErased",
    "CustomerPreferences",
    "Erasure",
    "PreferenceSnapshot",
    "PreferenceStore",
    "PreferenceUpdate",
    "QuietHours",
]
