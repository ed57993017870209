"""The journey events of a ledger outcome: ``message.sent`` and ``message.failed``,
written in the transaction that settles the ledger row."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.messaging.event_demand import is_wanted
from engine.messaging.journey_events import MESSAGE_FAILED, MESSAGE_SENT, record_journey_event
from engine.platform.database.tables import Message, MessageStatus

_EVENT_OF_STATUS = {MessageStatus.SENT: MESSAGE_SENT, MessageStatus.FAILED: MESSAGE_FAILED}


async def record_outcome_event(session: AsyncSession, key: str, values: Mapping[str, Any]) -> None:
    """Record the event of the outcome ``values`` just gave the ledger row ``key``
    (nothing for a skipped send: it was never meant to reach anyone)."""
    event_type = _EVENT_OF_STATUS.get(values.get("status", ""))
    if event_type is None or not await is_wanted(session, event_type):
        return
    row = (
        await session.execute(
            select(
                Message.journey_id,
                Message.step,
                Message.iteration,
                Message.channel,
                Message.template,
                Message.recipient,
                Message.customer_id,
                Message.plan,
            ).where(Message.idempotency_key == key)
        )
    ).one()
    data: dict[str, Any] = {
        "step": row.step,
        "iteration": row.iteration,
        "channel": row.channel,
        "template": row.template,
        "customer_id": row.customer_id,
        "plan": row.plan,
    }
    if event_type == MESSAGE_FAILED:
        # A provider's error text can quote the address: personal, like the recipient.
        personal = {"recipient": row.recipient, "error": values.get("error")}
    else:
        personal = {"recipient": row.recipient}
    sent_at = values.get("sent_at")
    await record_journey_event(
        session,
        event_id=f"{event_type}:{key}",
        journey_id=row.journey_id,
        type=event_type,
        occurred_at=sent_at if isinstance(sent_at, datetime) else datetime.now(UTC),
        data=data,
        personal=personal,
    )
