"""Pauses of sending, by scope: every ``cross_sell`` message, every marketing message,
everything of one plan, one template. Kept in the database, consulted by the send
activity before it claims anything, so a pause reaches every journey within seconds,
asleep or not, and journeys started later.

**Which messages a pause holds.** A scope ``plan=default`` holds the messages of
journeys on that plan, ``step=cross_sell`` those of that step (``step=replenishment``
every replenishment reminder, whatever its SKU), ``category=marketing`` and
``template=cross_sell`` likewise. Transactional messages (the order's own news) are
held only when the pause says so: ``include_transactional``, or a scope that names
them explicitly (``category=transactional``, or a step or template, which names one
message whatever its category).

**Freshness.** The send path asks :meth:`PauseRegistry.matching`, which answers from a
copy of the active pauses at most ``cache_ttl`` old (2 s by default): a new pause
holds a message within that long. A message the copy says is paused is checked
against a fresh read before it is held, so a lifted pause never holds anything again
(the journeys told "sending resumed" at once find it lifted).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.messaging.timed_copy import TimedCopy
from engine.platform.database.tables import SendPause
from engine.platform.database.timestamps import as_utc
from workflows.plans.model import Category

DEFAULT_CACHE_TTL = timedelta(seconds=2)
MAX_VALUE_LENGTH = 100
MAX_REASON_LENGTH = 500
_TRANSACTIONAL = Category.TRANSACTIONAL.value
# Replenishment reminders are sent as step "replenishment:<sku>".
_SERIES_SEPARATOR = ":"


class ScopeKind(StrEnum):
    PLAN = "plan"
    STEP = "step"
    CATEGORY = "category"
    TEMPLATE = "template"


class PauseNotFound(LookupError):
    """No pause has this id."""


@dataclass(frozen=True)
class PauseScope:
    kind: ScopeKind
    value: str

    def __str__(self) -> str:
        return f"{self.kind}={self.value}"

    @property
    def explicitly_transactional(self) -> bool:
        """Whether the scope names transactional messages themselves: the
        transactional category, or one step or template (whatever its category)."""
        if self.kind == ScopeKind.CATEGORY:
            return self.value == _TRANSACTIONAL
        return self.kind in (ScopeKind.STEP, ScopeKind.TEMPLATE)

    def covers(self, plan_id: str, step: str, category: str, template: str) -> bool:
        match self.kind:
            case ScopeKind.PLAN:
                return plan_id == self.value
            case ScopeKind.STEP:
                return step == self.value or step.startswith(self.value + _SERIES_SEPARATOR)
            case ScopeKind.CATEGORY:
                return category == self.value
            case ScopeKind.TEMPLATE:
                return template == self.value


@dataclass(frozen=True)
class Pause:
    id: str
    scope: PauseScope
    include_transactional: bool
    # The operator's words: for people reading the list, never shown to customers or
    # put in journeys, logs or metrics (it is free text).
    reason: str
    created_at: datetime
    created_by: str | None  # the API key's public id
    resumed_at: datetime | None
    resumed_by: str | None = None

    @property
    def active(self) -> bool:
        return self.resumed_at is None

    def holds(self, plan_id: str, step: str, category: str, template: str) -> bool:
        """Whether this pause (if active) holds a message of this plan, step, category
        and template."""
        if not self.active or not self.scope.covers(plan_id, step, category, template):
            return False
        if category == _TRANSACTIONAL:
            return self.include_transactional or self.scope.explicitly_transactional
        return True

    def describe(self) -> str:
        """``"pause-1a2b... (step=cross_sell)"``: for the journey's timeline and the
        ledger; no personal data, and not the free-text reason."""
        return f"{self.id} ({self.scope})"


def parse_scope(kind: str, value: str) -> PauseScope:
    """A validated scope; ValueError naming the field for anything unusable."""
    try:
        parsed = ScopeKind(kind.strip().lower())
    except ValueError:
        kinds = ", ".join(k.value for k in ScopeKind)
        raise ValueError(f"scope.kind: must be one of {kinds}, got {kind!r}") from None
    value = value.strip()
    if not value:
        raise ValueError("scope.value: required")
    if len(value) > MAX_VALUE_LENGTH:
        raise ValueError(f"scope.value: at most {MAX_VALUE_LENGTH} characters")
    if not value.isprintable():
        raise ValueError("scope.value: control characters are not allowed")
    if parsed == ScopeKind.CATEGORY and value not in {c.value for c in Category}:
        categories = ", ".join(c.value for c in Category)
        raise ValueError(f"scope.value: a category is one of {categories}, got {value!r}")
    return PauseScope(parsed, value)


class PauseRegistry:
    """The pauses in the database: create, lift, list, and (cached) match a message."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        cache_ttl: timedelta = DEFAULT_CACHE_TTL,
    ) -> None:
        self._sessions = sessions
        self._copy = TimedCopy(self._read_active, cache_ttl)

    async def pause(
        self,
        scope: PauseScope,
        *,
        include_transactional: bool = False,
        reason: str = "",
        created_by: str | None = None,
    ) -> Pause:
        """Pause sending in ``scope``. An identical pause already in force (same scope,
        same ``include_transactional``) is returned as it is, not made twice. A scope
        naming transactional messages explicitly holds them anyway, so its pause says
        ``include_transactional``."""
        if len(reason) > MAX_REASON_LENGTH:
            raise ValueError(f"reason: at most {MAX_REASON_LENGTH} characters")
        include_transactional = include_transactional or scope.explicitly_transactional
        active_key = _active_key(scope, include_transactional)
        existing = await self._active_by_key(active_key)
        if existing is not None:
            return existing
        row = SendPause(
            id=f"pause-{secrets.token_hex(8)}",
            scope_kind=scope.kind.value,
            scope_value=scope.value,
            include_transactional=include_transactional,
            reason=reason,
            created_at=datetime.now(UTC),
            created_by=created_by,
            active_key=active_key,
        )
        try:
            async with self._sessions() as session, session.begin():
                session.add(row)
        except IntegrityError:
            # Another caller paused the same scope meanwhile: theirs is the pause.
            raced = await self._active_by_key(active_key)
            if raced is None:
                raise
            return raced
        self._forget()
        return _pause_of(row)

    async def resume(self, pause_id: str, *, resumed_by: str | None = None) -> Pause:
        """Lift the pause; a pause already lifted is returned unchanged."""
        async with self._sessions() as session, session.begin():
            row = await session.get(SendPause, pause_id)
            if row is None:
                raise PauseNotFound(pause_id)
            if row.resumed_at is None:
                row.resumed_at = datetime.now(UTC)
                row.resumed_by = resumed_by
                row.active_key = None
            pause = _pause_of(row)
        self._forget()
        return pause

    async def get(self, pause_id: str) -> Pause:
        async with self._sessions() as session:
            row = await session.get(SendPause, pause_id)
            if row is None:
                raise PauseNotFound(pause_id)
            return _pause_of(row)

    async def active(self) -> list[Pause]:
        """The pauses in force, oldest first (read now, not from the cache)."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(SendPause)
                .where(SendPause.resumed_at.is_(None))
                .order_by(SendPause.created_at, SendPause.id)
            )
            return [_pause_of(row) for row in rows]

    async def matching(self, plan_id: str, step: str, category: str, template: str) -> Pause | None:
        """The oldest active pause holding this message, or None. For the send path:
        answered from a copy at most ``cache_ttl`` old; a hit is confirmed by a fresh
        read, so a pause lifted a moment ago never holds a message."""
        asked = asyncio.get_running_loop().time()
        if _first_holding(await self._pauses(fresh_since=None), plan_id, step, category, template):
            fresh = await self._pauses(fresh_since=asked)
            return _first_holding(fresh, plan_id, step, category, template)
        return None

    async def _pauses(self, *, fresh_since: float | None) -> tuple[Pause, ...]:
        """The cached active pauses (see TimedCopy)."""
        return await self._copy.get(fresh_since=fresh_since)

    async def _read_active(self) -> tuple[Pause, ...]:
        return tuple(await self.active())

    def _forget(self) -> None:
        """This process changed the pauses: its own next send reads them again."""
        self._copy.forget()

    async def _active_by_key(self, active_key: str) -> Pause | None:
        async with self._sessions() as session:
            row = await session.scalar(select(SendPause).where(SendPause.active_key == active_key))
            return _pause_of(row) if row is not None else None


def _first_holding(
    pauses: Sequence[Pause], plan_id: str, step: str, category: str, template: str
) -> Pause | None:
    return next((p for p in pauses if p.holds(plan_id, step, category, template)), None)


def _active_key(scope: PauseScope, include_transactional: bool) -> str:
    return f"{scope.kind}:{'all' if include_transactional else 'some'}:{scope.value}"


def _pause_of(row: SendPause) -> Pause:
    return Pause(
        id=row.id,
        scope=PauseScope(ScopeKind(row.scope_kind), row.scope_value),
        include_transactional=row.include_transactional,
        reason=row.reason,
        created_at=as_utc(row.created_at),
        created_by=row.created_by,
        resumed_at=as_utc(row.resumed_at) if row.resumed_at is not None else None,
        resumed_by=row.resumed_by,
    )
