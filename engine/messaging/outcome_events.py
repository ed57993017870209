"""The journey events of a ledger outcome: ``message.sent`` and ``message.failed``,
written in the transaction that settles the ledger row.

The ledger asks :func:`outcome_event_type` first; when a subscription wants that type
its settling UPDATE returns :data:`REPORTED_COLUMNS` of the row, so the event costs
the outbox insert and nothing more on the send path."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Row, Table
from sqlalchemy.ext.asyncio import AsyncSession

from engine.messaging.journey_events import MESSAGE_FAILED, MESSAGE_SENT, record_journey_event
from engine.platform.database.tables import Message, MessageStatus

_EVENT_OF_STATUS = {MessageStatus.SENT: MESSAGE_SENT, MessageStatus.FAILED: MESSAGE_FAILED}
_MESSAGES = cast(Table, Message.__table__)
REPORTED_COLUMNS = (
    _MESSAGES.c.journey_id,
    _MESSAGES.c.step,
    _MESSAGES.c.iteration,
    _MESSAGES.c.channel,
    _MESSAGES.c.template,
    _MESSAGES.c.recipient,
    _MESSAGES.c.customer_id,
    _MESSAGES.c.plan,
)


def outcome_event_type(values: Mapping[str, Any]) -> str | None:
    """The event the outcome ``values`` makes; None for a skipped send (it was never
    meant to reach anyone)."""
    return _EVENT_OF_STATUS.get(values.get("status", ""))


async def record_outcome_event(
    session: AsyncSession,
    key: str,
    event_type: str,
    row: Row[Any],
    values: Mapping[str, Any],
) -> None:
    """Record ``event_type`` for the ledger row ``key`` just settled with ``values``;
    ``row`` holds its REPORTED_COLUMNS."""
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
