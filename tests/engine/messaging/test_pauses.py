"""The pause registry on SQLite and PostgreSQL: pausing (once per scope, even when
asked at once), lifting, listing, which messages a pause holds, and the send path's
cached answer, which never lets a lifted pause hold a message."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.messaging.pauses import (
    Pause,
    PauseNotFound,
    PauseRegistry,
    PauseScope,
    ScopeKind,
    parse_scope,
)
from engine.platform.database.connection import create_engine, create_session_factory

CROSS_SELL = PauseScope(ScopeKind.STEP, "cross_sell")
MARKETING = PauseScope(ScopeKind.CATEGORY, "marketing")
DEFAULT_PLAN = PauseScope(ScopeKind.PLAN, "default")
HOUR = timedelta(hours=1)


@pytest.fixture
async def registry(db_sessions: async_sessionmaker[AsyncSession]) -> PauseRegistry:
    return PauseRegistry(db_sessions, cache_ttl=timedelta(0))


@pytest.fixture
async def worker_sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Connections of their own, as another process (a worker) has them."""
    engine = create_engine(database_url)
    yield create_session_factory(engine)
    await engine.dispose()


def pause(scope: PauseScope, *, include_transactional: bool = False) -> Pause:
    return Pause(
        id="pause-test",
        scope=scope,
        include_transactional=include_transactional,
        reason="",
        created_at=datetime(2027, 1, 1, tzinfo=UTC),
        created_by=None,
        resumed_at=None,
    )


async def test_a_pause_is_kept_listed_and_lifted(registry: PauseRegistry) -> None:
    paused = await registry.pause(CROSS_SELL, reason="wrong price in the email", created_by="k1")

    assert paused.id.startswith("pause-")
    assert (paused.scope, paused.reason, paused.created_by) == (
        CROSS_SELL,
        "wrong price in the email",
        "k1",
    )
    assert paused.active
    assert paused.resumed_at is None
    assert await registry.get(paused.id) == paused
    assert await registry.active() == [paused]

    lifted = await registry.resume(paused.id, resumed_by="k2")

    assert not lifted.active
    assert lifted.resumed_by == "k2"
    assert lifted.resumed_at is not None
    assert lifted.resumed_at >= paused.created_at
    assert await registry.active() == []
    assert await registry.get(paused.id) == lifted
    # Lifting it again changes nothing.
    assert await registry.resume(paused.id, resumed_by="k3") == lifted


async def test_an_identical_pause_in_force_is_returned_not_made_twice(
    registry: PauseRegistry,
) -> None:
    first = await registry.pause(MARKETING, reason="first")

    again = await registry.pause(MARKETING, reason="second")
    wider = await registry.pause(MARKETING, include_transactional=True)

    assert again == first
    assert wider.id != first.id
    assert {p.id for p in await registry.active()} == {first.id, wider.id}
    # Once lifted, the same scope can be paused anew.
    await registry.resume(first.id)
    renewed = await registry.pause(MARKETING)
    assert renewed.id not in {first.id, wider.id}


async def test_operators_pausing_one_scope_at_once_make_one_pause(database_url: str) -> None:
    engines = [create_engine(database_url) for _ in range(4)]
    try:
        registries = [PauseRegistry(create_session_factory(engine)) for engine in engines]
        made = await asyncio.gather(*(r.pause(CROSS_SELL) for r in registries))
        assert len({p.id for p in made}) == 1
        assert [p.id for p in await registries[0].active()] == [made[0].id]
    finally:
        for engine in engines:
            await engine.dispose()


async def test_unknown_pauses_are_not_found(registry: PauseRegistry) -> None:
    with pytest.raises(PauseNotFound):
        await registry.get("pause-nope")
    with pytest.raises(PauseNotFound):
        await registry.resume("pause-nope")


async def test_a_step_or_template_scope_names_its_messages_whatever_their_category(
    registry: PauseRegistry,
) -> None:
    confirmation = await registry.pause(PauseScope(ScopeKind.TEMPLATE, "order_confirmation"))

    # Naming a step or template is explicit: the pause says it holds transactional ones.
    assert confirmation.include_transactional
    held = await registry.matching(
        "default", "order_confirmation", "transactional", "order_confirmation"
    )
    assert held == confirmation


async def test_matching_finds_the_oldest_pause_holding_a_message(registry: PauseRegistry) -> None:
    marketing = await registry.pause(MARKETING)
    step = await registry.pause(CROSS_SELL)

    assert await registry.matching("default", "cross_sell", "marketing", "cross_sell") == marketing
    assert await registry.matching("default", "thank_you", "relationship", "thank_you") is None
    await registry.resume(marketing.id)
    assert await registry.matching("default", "cross_sell", "marketing", "cross_sell") == step


async def test_a_worker_sees_a_new_pause_within_its_cache_time_and_a_lift_at_once(
    registry: PauseRegistry, worker_sessions: async_sessionmaker[AsyncSession]
) -> None:
    ask = ("default", "cross_sell", "marketing", "cross_sell")
    running = PauseRegistry(worker_sessions, cache_ttl=HOUR)
    assert await running.matching(*ask) is None  # read, and kept for an hour

    paused = await registry.pause(CROSS_SELL)

    # Within its cache time a worker may still miss it (here: an hour).
    assert await running.matching(*ask) is None
    fresh = PauseRegistry(worker_sessions, cache_ttl=HOUR)  # a worker started now
    assert await fresh.matching(*ask) == paused

    await registry.resume(paused.id)

    # The copy still lists it, but a hit is read again: a lifted pause holds nothing.
    assert await fresh.matching(*ask) is None


@pytest.mark.parametrize(
    ("scope", "include_transactional", "holds"),
    [
        # Non-transactional messages: any scope naming them.
        (PauseScope(ScopeKind.STEP, "cross_sell"), False, {"cross_sell"}),
        (PauseScope(ScopeKind.TEMPLATE, "cross_sell"), False, {"cross_sell"}),
        (PauseScope(ScopeKind.CATEGORY, "marketing"), False, {"cross_sell", "replenishment"}),
        (PauseScope(ScopeKind.STEP, "replenishment"), False, {"replenishment"}),
        # Transactional ones: only when a pause says so, or names them.
        (DEFAULT_PLAN, False, {"cross_sell", "replenishment", "thank_you"}),
        (DEFAULT_PLAN, True, {"cross_sell", "replenishment", "thank_you", "order_confirmation"}),
        (PauseScope(ScopeKind.CATEGORY, "transactional"), False, {"order_confirmation"}),
        (PauseScope(ScopeKind.STEP, "order_confirmation"), False, {"order_confirmation"}),
        (PauseScope(ScopeKind.PLAN, "consumables"), True, set()),
    ],
)
def test_which_messages_a_pause_holds(
    scope: PauseScope, include_transactional: bool, holds: set[str]
) -> None:
    messages = {
        "cross_sell": ("default", "cross_sell", "marketing", "cross_sell"),
        "replenishment": ("default", "replenishment:COF-1", "marketing", "replenishment_reminder"),
        "thank_you": ("default", "thank_you", "relationship", "thank_you"),
        "order_confirmation": (
            "default",
            "order_confirmation",
            "transactional",
            "order_confirmation",
        ),
    }
    candidate = pause(scope, include_transactional=include_transactional)

    held = {name for name, message in messages.items() if candidate.holds(*message)}

    assert held == holds


def test_a_lifted_pause_holds_nothing() -> None:
    lifted = dataclasses.replace(pause(CROSS_SELL), resumed_at=datetime(2027, 1, 2, tzinfo=UTC))
    assert not lifted.holds("default", "cross_sell", "marketing", "cross_sell")


def test_a_pause_describes_itself_by_id_and_scope_only() -> None:
    described = pause(CROSS_SELL).describe()
    assert described == "pause-test (step=cross_sell)"


@pytest.mark.parametrize(
    ("kind", "value", "field"),
    [
        ("stage", "shipped", "scope.kind"),
        ("step", "  ", "scope.value"),
        ("step", "x" * 101, "scope.value"),
        ("step", "cross\nsell", "scope.value"),
        ("category", "newsletters", "scope.value"),
    ],
)
def test_a_scope_that_cannot_be_paused_is_refused_naming_the_field(
    kind: str, value: str, field: str
) -> None:
    with pytest.raises(ValueError, match=rf"^{field}: "):
        parse_scope(kind, value)


def test_a_scope_is_read_forgivingly() -> None:
    assert parse_scope(" Step ", " cross_sell ") == CROSS_SELL
    assert parse_scope("category", "marketing") == MARKETING
