"""The worker's sampled gauges: unsettled ledger rows by status, the oldest one's age,
and the pauses in force by scope, served on a real /metrics endpoint."""

from __future__ import annotations

import asyncio
import urllib.request
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.messaging.backlog import SENDING, WAITING, BacklogGauges
from engine.messaging.ledger import Claim, MessageLedger
from engine.messaging.pauses import PauseRegistry, parse_scope
from engine.platform.settings import Settings
from engine.platform.telemetry.runtime import Instruments, Process, metrics_url, process_runtime
from tests.support.ids import new_order_id
from tests.support.net import free_port
from tests.support.prometheus_text import total


def _claim(journey_id: str, step: str) -> Claim:
    return Claim(
        journey_id=journey_id,
        step=step,
        iteration=0,
        channel="email",
        template=step,
        recipient="jane.doe@example.test",
    )


async def test_unsettled_rows_and_pauses_are_gauged_and_go_back_to_zero(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    settings = Settings(_env_file=None, worker_metrics_port=free_port())
    runtime = process_runtime(settings, Process.WORKER)
    assert runtime is not None
    url = metrics_url(settings, Process.WORKER)
    assert url is not None
    ledger = MessageLedger(db_sessions)
    pauses = PauseRegistry(db_sessions)
    gauges = BacklogGauges(db_sessions, pauses, Instruments(runtime.metric_meter))

    journey = new_order_id("order")
    now = datetime.now(UTC)
    lease = timedelta(seconds=20)
    # Being sent: an attempt holds the live lease.
    sending = await ledger.claim(_claim(journey, "a"), owner="one", lease=lease, now=now)
    # Waiting: its attempt let go (deferred by the cap, or a retry backs off).
    waiting = await ledger.claim(_claim(journey, "b"), owner="two", lease=lease, now=now)
    await ledger.release(waiting.key, "two")
    # Settled: not counted.
    sent = await ledger.claim(_claim(journey, "c"), owner="three", lease=lease, now=now)
    await ledger.mark_sent(sent.key, provider_message_id="<m@x>", sent_at=now)
    pause = await pauses.pause(parse_scope("step", "cross_sell"), reason="bad copy")

    later = now + timedelta(seconds=5)
    await gauges.sample(later)
    text = await asyncio.to_thread(_get, url)
    assert total(text, "aftercare_messages_waiting", status=SENDING) == 1
    assert total(text, "aftercare_messages_waiting", status=WAITING) == 1
    oldest = total(text, "aftercare_messages_oldest_waiting_seconds", status=WAITING)
    assert 0 < oldest < 3600
    assert total(text, "aftercare_sending_pauses", scope="step") == 1
    assert total(text, "aftercare_sending_pauses", scope="plan") == 0

    await ledger.mark_sent(sending.key, provider_message_id="<n@x>", sent_at=later)
    await ledger.mark_skipped(waiting.key, "cancelled")
    await pauses.resume(pause.id)
    await gauges.sample(later)
    text = await asyncio.to_thread(_get, url)
    for status in (SENDING, WAITING):
        assert total(text, "aftercare_messages_waiting", status=status) == 0
        assert total(text, "aftercare_messages_oldest_waiting_seconds", status=status) == 0
    assert total(text, "aftercare_sending_pauses", scope="step") == 0


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        text: str = answer.read().decode()
        return text
