"""What the outbound-events outbox costs the send path.

``send_message`` as the worker runs it (tools.bench.send_path: rendered, checked,
ledgered, handed to the SMTP sink and the Twilio fake), on one SQLite database,
in rounds that alternate: no subscription, then one subscription to every event
type, and so on. Each round prints its rates and how many outbox rows it wrote.
Without a subscription the ledger's outcomes write no event
(engine/messaging/event_demand.py); with one, each send adds a read and an insert to
its transaction.

    python -m tools.bench.outbox_cost [--sends 300] [--in-flight 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from dataclasses import dataclass

from sqlalchemy import func, select

from engine.messaging.event_demand import DEMAND_SETTLE
from engine.messaging.event_subscriptions import EventSubscriptions
from engine.platform.database.connection import create_engine, create_session_factory
from engine.platform.database.tables import JourneyEventRecord
from engine.platform.logging import configure_logging
from tools.bench.send_path import send_path
from tools.bench.stack import bench_stack


@dataclass(frozen=True)
class Round:
    subscribed: bool
    emails_per_second: float
    sms_per_second: float
    outbox_rows: int


async def outbox_cost(sends: int, in_flight: int, rounds: int) -> list[Round]:
    results: list[Round] = []
    async with bench_stack() as stack:
        engine = create_engine(stack.settings.resolved_database_url)
        sessions = create_session_factory(engine)
        subscriptions = EventSubscriptions(sessions)

        async def rows() -> int:
            async with sessions() as session:
                return int(await session.scalar(select(func.count(JourneyEventRecord.id))) or 0)

        try:
            for number in range(rounds * 2):
                subscribed = number % 2 == 1
                if subscribed:
                    await subscriptions.create(
                        url="https://crm.example.test/hooks",
                        event_types=[],
                        include_personal_data=False,
                        delivered_through=await subscriptions.latest_event_id(),
                    )
                else:
                    for active in await subscriptions.active():
                        await subscriptions.remove(active.id)
                await asyncio.sleep(DEMAND_SETTLE.total_seconds())
                before = await rows()
                rates = await send_path(stack.settings, stack.sink, sends, in_flight)
                result = Round(
                    subscribed=subscribed,
                    emails_per_second=rates.emails.per_second,
                    sms_per_second=rates.sms.per_second,
                    outbox_rows=await rows() - before,
                )
                results.append(result)
                print(
                    f"round {number + 1}: {'subscribed' if subscribed else 'no subscription':16}"
                    f" emails {result.emails_per_second:6.1f}/s  SMS {result.sms_per_second:6.1f}/s"
                    f"  outbox rows written {result.outbox_rows}",
                    flush=True,
                )
        finally:
            await engine.dispose()
    return results


def summary(results: list[Round]) -> list[str]:
    lines = []
    for subscribed in (False, True):
        chosen = [r for r in results if r.subscribed == subscribed]
        lines.append(
            f"{'with a subscription' if subscribed else 'no subscription':20}"
            f" emails {statistics.median(r.emails_per_second for r in chosen):6.1f}/s"
            f"  SMS {statistics.median(r.sms_per_second for r in chosen):6.1f}/s (median of"
            f" {len(chosen)})"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=300, help="sends per channel and round")
    parser.add_argument("--in-flight", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each kind")
    arguments = parser.parse_args()
    configure_logging("WARNING")
    results = asyncio.run(outbox_cost(arguments.sends, arguments.in_flight, arguments.rounds))
    print("\n".join(summary(results)))


if __name__ == "__main__":
    main()
