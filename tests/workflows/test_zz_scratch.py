import time
from datetime import UTC, datetime, timedelta

from tests.support.orders import COFFEE, domain_order
from tests.support.virtual_time import VirtualJourneys, sent_steps
from workflows.model import EventType
from workflows.order_journey import OrderJourney

DAY = timedelta(days=1)


async def test_scratch(journeys: VirtualJourneys) -> None:
    t0 = time.monotonic()
    await journeys.travel_to(datetime(2027, 6, 1, 7, 0, tzinfo=UTC))
    print("travel", time.monotonic() - t0, await journeys.now())
    handle = await journeys.start(domain_order(items=[COFFEE], customer_id="cus-x"))
    await journeys.settle(handle)
    st = await handle.query(OrderJourney.state)
    print("after start", st.stage, sent_steps(st), [(e.at, e.detail) for e in st.timeline])
    await journeys.event(handle, EventType.DELIVERED)
    st = await handle.query(OrderJourney.state)
    print("after delivered", sent_steps(st), journeys.steps_mailed(handle.id))
    t0 = time.monotonic()
    await journeys.wait(handle, 90 * DAY)
    print("wait 90", time.monotonic() - t0)
    st = await handle.query(OrderJourney.state)
    print(st.runs, st.reminders_sent, st.stage)
    for e in st.timeline:
        print(e.at, e.kind, e.detail)
    for k, r in st.steps.items():
        print(k, r)
    await handle.cancel()
