"""WhatsApp's customer-service window: for 24 hours after a customer's own message,
a business may answer with free-form text; outside it, only with approved templates
(Twilio refuses free-form text with error 63016).

The inbound webhook (``engine.customers.inbound_sms``) notes when each number last
wrote on WhatsApp; the WhatsApp channel asks before choosing free-form text or a
template. Numbers are kept as the phone index's keyed hash, never as they are.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from engine.messaging.phone_index import PhoneIndex
from engine.platform.database.tables import WhatsAppWindow
from engine.platform.database.timestamps import as_utc
from engine.platform.database.upsert import insert_on_conflict

SERVICE_WINDOW = timedelta(hours=24)
# The window is WhatsApp's clock, not ours: a message sent in its last minutes may
# arrive after it closed, so it is taken as closed this much early.
CLOSING_MARGIN = timedelta(minutes=10)


class WhatsAppWindows:
    def __init__(self, phones: PhoneIndex) -> None:
        self._phones = phones

    async def opened(self, phone: str, at: datetime) -> None:
        """The customer at ``phone`` wrote to us on WhatsApp at ``at``."""
        values = {"phone_hash": self._phones.digest(phone), "last_inbound_at": at}
        async with self._phones.sessions() as session, session.begin():
            dialect = session.get_bind().dialect.name
            statement = insert_on_conflict(dialect, WhatsAppWindow).values(**values)
            # The later of the two: webhooks may arrive out of order.
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=["phone_hash"],
                    set_={"last_inbound_at": statement.excluded.last_inbound_at},
                    where=WhatsAppWindow.last_inbound_at < statement.excluded.last_inbound_at,
                )
            )

    async def is_open(self, phone: str, now: datetime) -> bool:
        """Whether free-form text may go to ``phone`` now."""
        async with self._phones.sessions() as session:
            last = await session.scalar(
                select(WhatsAppWindow.last_inbound_at).where(
                    WhatsAppWindow.phone_hash == self._phones.digest(phone)
                )
            )
        if last is None:
            return False
        return now < as_utc(last) + SERVICE_WINDOW - CLOSING_MARGIN
