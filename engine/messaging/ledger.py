"""The message ledger: the record that makes every send happen at most once.

A send first *claims* its idempotency key, then talks to the provider, then marks
the row sent. A retried activity that finds the row already sent returns the
recorded result instead of sending again.

Recording an outcome outlives a dropped database connection (a restarted server,
``pg_terminate_backend``, SQLite's "database is locked"): it is repeated on a fresh
connection a few times before the error is raised. Once the provider took a message,
an error here would make the activity's retry send it a second time.

For the same reason the recording should not wait: until it is written, a crash of
the worker means a resend. Given a ``recorder`` (sessions on a connection of their
own), outcomes are written there instead of queueing behind the claims and reads of
every other send in flight (on SQLite's single connection that queue is long).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    Row,
    Table,
    Update,
    and_,
    bindparam,
    case,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.dml import ReturningInsert

from engine.messaging.event_demand import is_wanted
from engine.messaging.journey_events import forget_personal_data
from engine.messaging.outcome_events import (
    REPORTED_COLUMNS,
    outcome_event_type,
    record_outcome_event,
)
from engine.platform.database.tables import Message, MessageStatus
from engine.platform.database.timestamps import as_utc
from engine.platform.database.upsert import insert_on_conflict

# How an erased customer's recipient looks in the ledger: this prefix and a keyed hash.
HASHED_RECIPIENT_PREFIX = "hmac-sha256:"

FINAL_STATUSES = frozenset({MessageStatus.SENT, MessageStatus.FAILED, MessageStatus.SKIPPED})

# Recording an outcome: this many tries, waiting 0.1 s, 0.2 s, 0.4 s... in between
# (about 13 s in all at 8), well inside one send attempt's 30 s.
RECORD_ATTEMPTS = 8
_RECORD_FIRST_PAUSE_SECONDS = 0.1

# How far along a provider's delivery report is. Reports can arrive out of order
# (Twilio sends each status callback on its own), so a report never replaces one
# of a higher rank: ``delivered`` followed by a late ``sent`` stays ``delivered``.
# The names are Twilio's message statuses.
DELIVERY_STATUS_RANK: dict[str, int] = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 0,
    "sending": 1,
    "sent": 2,
    "delivered": 3,
    "undelivered": 3,
    "failed": 3,
    "canceled": 3,
    "read": 4,  # WhatsApp: after delivered
}


def idempotency_key(journey_id: str, step: str, iteration: int, channel: str = "email") -> str:
    """One key per message: journey (never the run, which continue-as-new changes),
    step, iteration, and channel (a step that falls back from email to SMS sends
    one message on each channel it tries, never two on one)."""
    return f"{journey_id}/{step}/{iteration}/{channel}"


def message_id_for(key: str, domain: str) -> str:
    """A deterministic RFC 5322 Message-ID: the same key always gives the same id,
    so even a resend in the residual window is recognisable as the same message."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


@dataclass(frozen=True)
class LedgerEntry:
    key: str
    journey_id: str
    step: str
    channel: str
    template: str
    recipient: str
    status: str
    attempts: int
    provider_message_id: str | None
    sent_at: datetime | None
    error: str | None
    # The provider's latest delivery report (see DELIVERY_STATUS_RANK); None until one arrives.
    delivery_status: str | None = None
    delivery_updated_at: datetime | None = None
    # The attempt holding a claimed row, and until when (see MessageLedger.claim).
    claim_owner: str | None = None
    lease_until: datetime | None = None
    # The row's primary key: what engagement events and conversions point at. Not
    # compared: two entries of one message are equal whichever way they were read.
    message_id: int = field(default=0, compare=False)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def held_by(self, owner: str) -> bool:
        """Whether ``owner`` holds this claimed row."""
        return not self.is_final and self.claim_owner == owner

    @classmethod
    def of(cls, row: Row[Any]) -> LedgerEntry:
        """The entry of a row of the ``messages`` table."""
        return cls(
            key=row.idempotency_key,
            journey_id=row.journey_id,
            step=row.step,
            channel=row.channel,
            template=row.template,
            recipient=row.recipient,
            status=row.status,
            attempts=row.attempts,
            provider_message_id=row.provider_message_id,
            sent_at=_aware(row.sent_at),
            error=row.error,
            delivery_status=row.delivery_status,
            delivery_updated_at=_aware(row.delivery_updated_at),
            claim_owner=row.claim_owner,
            lease_until=_aware(row.lease_until),
            message_id=row.id,
        )


@dataclass(frozen=True)
class Claim:
    journey_id: str
    step: str
    iteration: int
    channel: str
    template: str
    recipient: str
    # What the report groups the message by (written with the row, never changed by
    # a later claim): the plan label ("default@v1"), the step's category, whose
    # journey it is, and the experiment arm the customer was assigned on this step.
    plan: str | None = None
    category: str | None = None
    customer_id: str | None = None
    experiment: str | None = None
    variant: str | None = None

    @property
    def key(self) -> str:
        return idempotency_key(self.journey_id, self.step, self.iteration, self.channel)


class MessageLedger:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        recorder: async_sessionmaker[AsyncSession] | None = None,
        record_attempts: int = RECORD_ATTEMPTS,
    ) -> None:
        if record_attempts < 1:
            raise ValueError(f"record_attempts must be at least 1, got {record_attempts}")
        self._sessions = sessions
        self._recorder = recorder or sessions
        self._record_attempts = record_attempts

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self._sessions

    async def claim(
        self,
        claim: Claim,
        *,
        owner: str | None = None,
        lease: timedelta | None = None,
        now: datetime | None = None,
    ) -> LedgerEntry:
        """Create the row for this send, or return the existing one; ``owner`` (one
        attempt of the send) holds it until ``now + lease`` unless it is held already.

        A returned entry that ``is_final`` must not be sent again. A claimed one is
        the caller's when ``entry.held_by(owner)``: new, or taken over from an attempt
        whose lease ran out (it stopped, or its worker died; this claim counts as the
        next attempt). Otherwise another attempt holds a live lease and may still be
        delivering: the caller must wait for ``entry.lease_until`` and claim again.
        Without an owner every claim of a row still claimed counts as an attempt and
        takes it (tools that send single messages).
        """
        now = now or datetime.now(UTC)
        async with self._sessions() as session, session.begin():
            statement = _claim_statement(session.get_bind().dialect.name)
            row = (
                await session.execute(
                    statement,
                    {
                        "idempotency_key": claim.key,
                        "journey_id": claim.journey_id,
                        "step": claim.step,
                        "iteration": claim.iteration,
                        "channel": claim.channel,
                        "template": claim.template,
                        "recipient": claim.recipient,
                        "plan": claim.plan,
                        "category": claim.category,
                        "customer_id": claim.customer_id,
                        "experiment": claim.experiment,
                        "variant": claim.variant,
                        "status": MessageStatus.CLAIMED,
                        "attempts": 1,
                        "claim_owner": owner,
                        "lease_until": as_utc(now + lease) if owner and lease else None,
                        "updated_at": as_utc(now),
                    },
                )
            ).one()
        return LedgerEntry.of(row)

    async def renew(self, key: str, owner: str, lease_until: datetime) -> bool:
        """Extend ``owner``'s lease on a claimed row; False when it is not theirs any
        more (settled, or taken over after the lease ran out)."""
        async with self._recorder() as session, session.begin():
            result = await session.execute(
                _RENEW, {"ledger_key": key, "owner": owner, "lease_until": as_utc(lease_until)}
            )
        return cast(CursorResult[Any], result).rowcount > 0

    async def release(self, key: str, owner: str) -> None:
        """End ``owner``'s lease at once (its attempt stops without an outcome), so the
        next attempt need not wait for it to run out."""
        async with self._recorder() as session, session.begin():
            await session.execute(_RELEASE, {"ledger_key": key, "owner": owner})

    async def mark_sent(self, key: str, provider_message_id: str, sent_at: datetime) -> bool:
        """Record the provider's acceptance, unless an attempt already settled the row;
        whether this call changed it. Called by the sender, and by the HTTP app for a
        delivery report naming the row: a worker killed between the acceptance and its
        own record leaves the row claimed, and the report records it, so the retry
        finds it final and does not send again."""
        # SQLite keeps no offset: store UTC so the instant survives the round trip.
        sent_at = as_utc(sent_at)
        return await self._finish(
            key, status=MessageStatus.SENT, provider_message_id=provider_message_id, sent_at=sent_at
        )

    async def mark_skipped(self, key: str, reason: str) -> None:
        await self._finish(key, status=MessageStatus.SKIPPED, error=reason[:2000])

    async def mark_failed(self, key: str, error: str) -> None:
        await self._finish(key, status=MessageStatus.FAILED, error=error[:2000])

    async def get(self, key: str) -> LedgerEntry | None:
        async with self._sessions() as session:
            row = (await session.execute(_BY_KEY, {"ledger_key": key})).first()
            return LedgerEntry.of(row) if row else None

    async def for_journey(self, journey_id: str) -> list[LedgerEntry]:
        async with self._sessions() as session:
            rows = await session.execute(
                select(_MESSAGES)
                .where(_MESSAGES.c.journey_id == journey_id)
                .order_by(_MESSAGES.c.id)
            )
            return [LedgerEntry.of(row) for row in rows]

    async def record_delivery_status(
        self, provider_message_id: str, status: str, error_code: str | None, at: datetime
    ) -> LedgerEntry | None:
        """Record a provider's delivery report for the message with this provider id.

        A report ranked below the recorded one changes nothing (late callbacks);
        one of equal or higher rank replaces it and, with an error code, adds the
        code to ``error``. Returns the entry as it stands afterwards, or None when
        no row has this provider id. Raises ValueError for a status not in
        DELIVERY_STATUS_RANK.
        """
        rank = DELIVERY_STATUS_RANK.get(status)
        if rank is None:
            raise ValueError(f"unknown delivery status {status!r}")
        not_higher = [name for name, other in DELIVERY_STATUS_RANK.items() if other <= rank]
        values: dict[str, Any] = {"delivery_status": status, "delivery_updated_at": as_utc(at)}
        note = _delivery_error_note(error_code)
        if note is not None:
            # In SQL, so two reports at once cannot lose each other's note; a
            # repeated callback does not add the same note twice.
            values["error"] = case(
                (Message.error.is_(None), literal(note)),
                (
                    or_(Message.error.like(f"%{note}"), Message.error.like(f"%{note};%")),
                    Message.error,
                ),
                else_=Message.error + literal(f"; {note}"),
            )
        async with self._sessions() as session:
            async with session.begin():
                # One conditional UPDATE: the rank check and the write are atomic,
                # so reports racing each other cannot move a row backwards either.
                await session.execute(
                    update(Message)
                    .where(
                        Message.provider_message_id == provider_message_id,
                        or_(
                            Message.delivery_status.is_(None),
                            Message.delivery_status.in_(not_higher),
                        ),
                    )
                    .values(**values)
                )
            row = (
                await session.execute(
                    select(_MESSAGES)
                    .where(_MESSAGES.c.provider_message_id == provider_message_id)
                    .order_by(_MESSAGES.c.id)
                    .limit(1)
                )
            ).first()
            return LedgerEntry.of(row) if row else None

    async def anonymise_recipients(
        self, journey_ids: Sequence[str], hash_recipient: Callable[[str], str]
    ) -> int:
        """Erasure: replace the recipient of every row of these journeys with
        ``HASHED_RECIPIENT_PREFIX`` + ``hash_recipient(recipient)`` and drop the error
        text (a provider's answer can quote the address); what stays is the hashed
        recipient, the step, channel, status and timestamps. Rows already hashed are
        left alone, so a repeated erasure changes nothing. Returns the rows changed.
        """
        changed = 0
        async with self._sessions() as session, session.begin():
            rows = (
                await session.execute(
                    select(Message.id, Message.recipient).where(
                        Message.journey_id.in_(list(journey_ids)),
                        Message.recipient.not_like(f"{HASHED_RECIPIENT_PREFIX}%"),
                    )
                )
            ).all()
            for row_id, recipient in rows:
                await session.execute(
                    update(Message)
                    .where(Message.id == row_id)
                    .values(
                        recipient=HASHED_RECIPIENT_PREFIX + hash_recipient(recipient), error=None
                    )
                )
                changed += 1
            # Their journey events keep no personal data either, delivered or not.
            await forget_personal_data(session, journey_ids)
        return changed

    async def _finish(self, key: str, **values: Any) -> bool:
        # Safe to repeat: the UPDATE only applies to a row still claimed, so a try whose
        # commit went through before its connection died makes the next one a no-op
        # (and the answer, whether the row changed, is then the last try's: False).
        pause = _RECORD_FIRST_PAUSE_SECONDS
        event_type = outcome_event_type(values)
        for attempt in range(1, self._record_attempts + 1):
            try:
                async with self._recorder() as session, session.begin():
                    # The columns given in values are the ones it sets.
                    params = {"ledger_key": key, **values}
                    if event_type is not None and await is_wanted(session, event_type):
                        settled = (await session.execute(_FINISH_REPORTED, params)).first()
                        if settled is not None:
                            await record_outcome_event(session, key, event_type, settled, values)
                        return settled is not None
                    result = await session.execute(_FINISH, params)
                    return cast(CursorResult[Any], result).rowcount > 0
            except DBAPIError as err:
                if attempt == self._record_attempts or not _connection_trouble(err):
                    raise
            await asyncio.sleep(pause)
            pause *= 2
        raise AssertionError("unreachable: the last try returns or raises")


# The statements every send runs are built once, on the table rather than the ORM
# class: building an ORM statement and flushing an ORM object cost more CPU than the
# round trip itself (docs/performance.md).
_MESSAGES = cast(Table, Message.__table__)
_BY_KEY = select(_MESSAGES).where(_MESSAGES.c.idempotency_key == bindparam("ledger_key"))
_FINISH: Update = update(_MESSAGES).where(
    _MESSAGES.c.idempotency_key == bindparam("ledger_key"),
    _MESSAGES.c.status == MessageStatus.CLAIMED,
)
# The same, answering what a subscriber's journey event reports of the row.
_FINISH_REPORTED = _FINISH.returning(*REPORTED_COLUMNS)
_HELD: Any = (
    _MESSAGES.c.idempotency_key == bindparam("ledger_key"),
    _MESSAGES.c.status == MessageStatus.CLAIMED,
    _MESSAGES.c.claim_owner == bindparam("owner"),
)
_RENEW: Update = update(_MESSAGES).where(*_HELD).values(lease_until=bindparam("lease_until"))
_RELEASE: Update = update(_MESSAGES).where(*_HELD).values(lease_until=None)


@cache
def _claim_statement(dialect: str) -> ReturningInsert[Any]:
    """One statement for a claim, new or repeated: insert the row, or take over a row
    still claimed whose lease ran out (another attempt); either way the row comes
    back. A final row, or one another attempt holds a live lease on, comes back
    unchanged (a retry after success, or beside a live attempt, is not an attempt).

    The claiming attempt's owner, lease and clock come in as the proposed row's
    ``claim_owner``, ``lease_until`` and ``updated_at``."""
    messages = _MESSAGES.c
    insert = insert_on_conflict(dialect, _MESSAGES)
    proposed = insert.excluded
    free = and_(
        messages.status == MessageStatus.CLAIMED,
        or_(
            messages.claim_owner.is_(None),
            messages.claim_owner == proposed.claim_owner,
            messages.lease_until.is_(None),
            messages.lease_until <= proposed.updated_at,
        ),
    )
    taken_over = and_(
        free,
        or_(
            proposed.claim_owner.is_(None),
            messages.claim_owner.is_distinct_from(proposed.claim_owner),
        ),
    )
    return insert.on_conflict_do_update(
        index_elements=[messages.idempotency_key],
        set_={
            "attempts": case((taken_over, messages.attempts + 1), else_=messages.attempts),
            "claim_owner": case((free, proposed.claim_owner), else_=messages.claim_owner),
            "lease_until": case((free, proposed.lease_until), else_=messages.lease_until),
            "updated_at": case((free, proposed.updated_at), else_=messages.updated_at),
        },
    ).returning(*_MESSAGES.c)


def _connection_trouble(err: DBAPIError) -> bool:
    """The database could not be reached or kept (dropped connection, server restart,
    lock timeout), as opposed to a statement it refused (constraints, syntax)."""
    return err.connection_invalidated or isinstance(err, OperationalError)


def _delivery_error_note(error_code: str | None) -> str | None:
    # Provider error codes are short numbers; keep only plain characters so the
    # note can never smuggle LIKE wildcards or control characters into the row.
    if error_code is None:
        return None
    code = "".join(char for char in error_code if char.isascii() and char.isalnum())[:40]
    return f"delivery error {code}" if code else None


def _aware(value: datetime | None) -> datetime | None:
    return as_utc(value) if value is not None else None
