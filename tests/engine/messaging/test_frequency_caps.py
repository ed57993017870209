"""The frequency-cap store on SQLite and PostgreSQL: reserve, defer, drop as stale,
release, retries that reuse their slot, priorities, and many journeys of one
customer asking at once through their own connections."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from engine.messaging.frequency_caps import CapOutcome, FrequencyCapStore, delete_slots, send_key
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.tables import CapSlotState
from workflows.frequency import CapCheck
from workflows.plans.model import FrequencyCap, TimeWindow

DAY = timedelta(days=1)
T0 = datetime(2027, 5, 3, 9, 0, 7, tzinfo=UTC)  # 11:00:07 in Berlin
DEFAULT_CAPS = (FrequencyCap(max=1, days=3), FrequencyCap(max=3, days=30))
NEXT_SLOT = datetime(2027, 5, 6, 9, 1, tzinfo=UTC)  # three days on, at the next minute


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[FrequencyCapStore]:
    engine = create_engine(database_url)
    yield FrequencyCapStore(create_session_factory(engine))
    await engine.dispose()


def check(
    caps: tuple[FrequencyCap, ...] = DEFAULT_CAPS,
    *,
    priority: int = 20,
    stale_at: datetime | None = None,
    quiet_hours: TimeWindow | None = None,
) -> CapCheck:
    return CapCheck(
        caps=caps,
        priority=priority,
        timezone="Europe/Berlin",
        quiet_hours=quiet_hours,
        stale_at=stale_at,
    )


def new_customer() -> str:
    return f"cus-{uuid.uuid4().hex[:10]}"


def new_key(step: str = "cross_sell") -> str:
    return send_key(f"order-{uuid.uuid4().hex[:10]}", step, 0)


async def test_the_first_message_goes_and_the_next_waits_for_its_slot(
    store: FrequencyCapStore,
) -> None:
    customer = new_customer()
    first, second = new_key(), new_key()

    granted = await store.reserve(
        customer_id=customer, category="marketing", key=first, check=check(), now=T0
    )
    deferred = await store.reserve(
        customer_id=customer, category="marketing", key=second, check=check(), now=T0
    )

    assert (granted.outcome, granted.at, granted.reason) == (CapOutcome.GRANTED, T0, "")
    assert deferred.outcome == CapOutcome.DEFERRED
    assert deferred.at == NEXT_SLOT
    assert deferred.reason == (
        "over the frequency cap (at most 1 marketing message per 3 days and 3 per 30 days)"
    )
    slots = await store.slots(customer)
    assert [(s.send_key, s.state, s.slot_at) for s in slots] == [
        (first, CapSlotState.RESERVED, T0),
        (second, CapSlotState.HELD, NEXT_SLOT),
    ]


async def test_other_customers_and_categories_have_their_own_room(
    store: FrequencyCapStore,
) -> None:
    customer = new_customer()
    await store.reserve(
        customer_id=customer, category="marketing", key=new_key(), check=check(), now=T0
    )
    other = await store.reserve(
        customer_id=new_customer(), category="marketing", key=new_key(), check=check(), now=T0
    )
    feedback = await store.reserve(
        customer_id=customer,
        category="feedback",
        key=new_key("feedback_request"),
        check=check((FrequencyCap(max=1, days=7),)),
        now=T0,
    )
    assert other.outcome == CapOutcome.GRANTED
    assert feedback.outcome == CapOutcome.GRANTED


async def test_a_retry_of_a_granted_send_reuses_its_slot(store: FrequencyCapStore) -> None:
    customer = new_customer()
    key = new_key()
    first = await store.reserve(
        customer_id=customer, category="marketing", key=key, check=check(), now=T0
    )
    # The worker died after reserving; the retry comes a minute later.
    retry = await store.reserve(
        customer_id=customer,
        category="marketing",
        key=key,
        check=check(),
        now=T0 + timedelta(minutes=1),
    )
    assert first.outcome == retry.outcome == CapOutcome.GRANTED
    assert retry.at == T0  # the same slot
    assert len(await store.slots(customer)) == 1
    await store.confirm(key, T0)

    # Counted once: two more fit in its 30 days (3 days apart), and only then is
    # the month full.
    outcomes = [
        (
            await store.reserve(
                customer_id=customer, category="marketing", key=new_key(), check=check(), now=at
            )
        ).outcome
        for at in (T0 + 3 * DAY, T0 + 6 * DAY, T0 + 9 * DAY)
    ]
    assert outcomes == [CapOutcome.GRANTED, CapOutcome.GRANTED, CapOutcome.DEFERRED]
    assert [s.state for s in await store.slots(customer)][:3] == [
        CapSlotState.SENT,
        CapSlotState.RESERVED,
        CapSlotState.RESERVED,
    ]


async def test_a_released_slot_goes_to_the_next_message(store: FrequencyCapStore) -> None:
    customer = new_customer()
    bounced = new_key()
    await store.reserve(
        customer_id=customer, category="marketing", key=bounced, check=check(), now=T0
    )
    await store.release(bounced)
    assert await store.slots(customer) == []
    nxt = await store.reserve(
        customer_id=customer, category="marketing", key=new_key(), check=check(), now=T0
    )
    assert nxt.outcome == CapOutcome.GRANTED


async def test_a_sent_message_is_never_released(store: FrequencyCapStore) -> None:
    customer = new_customer()
    key = new_key()
    await store.reserve(customer_id=customer, category="marketing", key=key, check=check(), now=T0)
    await store.confirm(key, T0)
    await store.release(key)
    assert [(s.send_key, s.state) for s in await store.slots(customer)] == [
        (key, CapSlotState.SENT)
    ]


async def test_past_its_stale_limit_a_message_is_dropped_and_holds_nothing(
    store: FrequencyCapStore,
) -> None:
    customer = new_customer()
    await store.reserve(
        customer_id=customer, category="marketing", key=new_key(), check=check(), now=T0
    )
    late = new_key()
    held = await store.reserve(
        customer_id=customer,
        category="marketing",
        key=late,
        check=check(stale_at=T0 + 5 * DAY),
        now=T0,
    )
    assert (held.outcome, held.at) == (CapOutcome.DEFERRED, NEXT_SLOT)

    # Another message takes that slot first (a higher priority); when the held one
    # wakes its next slot is past the limit: dropped, and its hold is gone.
    await store.reserve(
        customer_id=customer,
        category="marketing",
        key=new_key(),
        check=check(priority=90),
        now=NEXT_SLOT,
    )
    stale = await store.reserve(
        customer_id=customer,
        category="marketing",
        key=late,
        check=check(stale_at=T0 + 5 * DAY),
        now=NEXT_SLOT,
    )
    assert stale.outcome == CapOutcome.STALE
    assert stale.at > T0 + 5 * DAY
    assert late not in [s.send_key for s in await store.slots(customer)]


async def test_a_deferred_slot_respects_quiet_hours(store: FrequencyCapStore) -> None:
    customer = new_customer()
    night = datetime(2027, 5, 3, 19, 30, tzinfo=UTC)  # 21:30 in Berlin
    quiet = TimeWindow(start="21:00", end="08:00")
    await store.reserve(
        customer_id=customer, category="marketing", key=new_key(), check=check(), now=night
    )
    deferred = await store.reserve(
        customer_id=customer,
        category="marketing",
        key=new_key(),
        check=check(quiet_hours=quiet),
        now=night,
    )
    assert deferred.at == datetime(2027, 5, 7, 6, 0, tzinfo=UTC)  # 08:00 local


async def test_a_higher_priority_wins_a_contended_slot(store: FrequencyCapStore) -> None:
    customer = new_customer()
    await store.reserve(
        customer_id=customer, category="marketing", key=new_key(), check=check(), now=T0
    )
    low, high = new_key("cross_sell"), new_key("review_request")
    low_hold = await store.reserve(
        customer_id=customer, category="marketing", key=low, check=check(priority=20), now=T0
    )
    # Asked later, but the higher priority ignores the lower hold: same slot.
    high_hold = await store.reserve(
        customer_id=customer,
        category="marketing",
        key=high,
        check=check(priority=40),
        now=T0 + DAY,
    )
    assert low_hold.at == high_hold.at == NEXT_SLOT

    # Both wake at that instant; whichever asks first, the higher priority is sent and
    # the lower waits again.
    woken_low = await store.reserve(
        customer_id=customer, category="marketing", key=low, check=check(priority=20), now=NEXT_SLOT
    )
    woken_high = await store.reserve(
        customer_id=customer,
        category="marketing",
        key=high,
        check=check(priority=40),
        now=NEXT_SLOT,
    )
    assert woken_low.outcome == CapOutcome.DEFERRED
    assert woken_low.at == NEXT_SLOT + 3 * DAY
    assert woken_high.outcome == CapOutcome.GRANTED
    states = {s.send_key: s.state for s in await store.slots(customer)}
    assert (states[low], states[high]) == (CapSlotState.HELD, CapSlotState.RESERVED)


async def test_equal_priorities_wait_in_turn(store: FrequencyCapStore) -> None:
    customer = new_customer()
    await store.reserve(
        customer_id=customer, category="marketing", key=new_key(), check=check(), now=T0
    )
    older, newer = new_key(), new_key()
    for key in (older, newer):
        held = await store.reserve(
            customer_id=customer, category="marketing", key=key, check=check(), now=T0
        )
        assert held.outcome == CapOutcome.DEFERRED
    # The newer hold waits behind the older one, three days later.
    slots = {s.send_key: s.slot_at for s in await store.slots(customer)}
    assert (slots[older], slots[newer]) == (NEXT_SLOT, NEXT_SLOT + 3 * DAY)

    first = await store.reserve(
        customer_id=customer, category="marketing", key=newer, check=check(), now=NEXT_SLOT
    )
    second = await store.reserve(
        customer_id=customer, category="marketing", key=older, check=check(), now=NEXT_SLOT
    )
    assert first.outcome == CapOutcome.DEFERRED  # not its turn yet
    assert second.outcome == CapOutcome.GRANTED


async def test_a_lower_priority_message_does_not_take_a_slot_a_higher_one_waits_for(
    store: FrequencyCapStore,
) -> None:
    customer = new_customer()
    await store.reserve(
        customer_id=customer, category="marketing", key=new_key(), check=check(), now=T0
    )
    await store.reserve(
        customer_id=customer,
        category="marketing",
        key=new_key(),
        check=check(priority=60),
        now=T0,
    )
    # A lower-priority message due just after the slot opens finds it held.
    low = await store.reserve(
        customer_id=customer,
        category="marketing",
        key=new_key(),
        check=check(priority=10),
        now=NEXT_SLOT + timedelta(hours=1),
    )
    assert (low.outcome, low.at) == (CapOutcome.DEFERRED, NEXT_SLOT + 3 * DAY)


async def test_bad_input_names_the_field_and_records_nothing(store: FrequencyCapStore) -> None:
    with pytest.raises(ValueError, match="customer_id"):
        await store.reserve(
            customer_id="", category="marketing", key=new_key(), check=check(), now=T0
        )
    customer = new_customer()
    with pytest.raises(ValueError, match=r"check\.caps"):
        await store.reserve(
            customer_id=customer, category="marketing", key=new_key(), check=check(()), now=T0
        )
    assert await store.slots("") == []
    assert await store.slots(customer) == []


async def test_many_journeys_asking_at_once_never_pass_the_cap(database_url: str) -> None:
    """Twelve sends of one customer in the same second, each through its own engine
    and connection (as on twelve workers): exactly the cap's three get through."""
    caps = (FrequencyCap(max=3, days=30),)
    customer = new_customer()
    engines = [create_engine(database_url) for _ in range(12)]
    try:
        stores = [FrequencyCapStore(create_session_factory(engine)) for engine in engines]
        decisions = await asyncio.gather(
            *(
                one.reserve(
                    customer_id=customer,
                    category="marketing",
                    key=new_key(),
                    check=check(caps),
                    now=T0,
                )
                for one in stores
            )
        )
        outcomes = [decision.outcome for decision in decisions]
        assert outcomes.count(CapOutcome.GRANTED) == 3
        assert outcomes.count(CapOutcome.DEFERRED) == 9
        slots = await stores[0].slots(customer)
        assert [s.state for s in slots].count(CapSlotState.RESERVED) == 3
        # The nine others wait in turn: three in each following 30 days.
        held = sorted(s.slot_at for s in slots if s.state == CapSlotState.HELD)
        first_slot = T0.replace(second=0) + 30 * DAY + timedelta(minutes=1)
        assert held == [first_slot + n // 3 * 30 * DAY for n in range(9)]
    finally:
        for engine in engines:
            await engine.dispose()


async def test_two_sends_at_once_with_the_default_caps_let_exactly_one_through(
    database_url: str,
) -> None:
    customer = new_customer()
    for _ in range(5):  # several rounds: a race that passes by luck once shows here
        engines = [create_engine(database_url) for _ in range(2)]
        try:
            now = T0 + 10 * DAY * _
            stores = [FrequencyCapStore(create_session_factory(engine)) for engine in engines]
            decisions = await asyncio.gather(
                *(
                    one.reserve(
                        customer_id=customer,
                        category="marketing",
                        key=new_key(),
                        check=check(stale_at=now + DAY),
                        now=now,
                    )
                    for one in stores
                )
            )
            assert sorted(decision.outcome for decision in decisions) == [
                CapOutcome.GRANTED,
                CapOutcome.STALE,
            ]
        finally:
            for engine in engines:
                await engine.dispose()


async def test_erasing_a_customer_deletes_their_slots_only(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        sessions = create_session_factory(engine)
        store = FrequencyCapStore(sessions)
        erased, kept = new_customer(), new_customer()
        for customer in (erased, erased, kept):
            await store.reserve(
                customer_id=customer, category="marketing", key=new_key(), check=check(), now=T0
            )
        async with sessions() as session, session.begin():
            deleted = await delete_slots(session, erased)
        assert deleted == 2
        assert await store.slots(erased) == []
        assert len(await store.slots(kept)) == 1
    finally:
        await engine.dispose()
