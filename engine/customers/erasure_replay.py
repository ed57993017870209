"""Re-applying journaled erasures to a restored database.

A backup holds the data keys, preferences and owner rows of every customer who was
not yet erased when it was made. After a restore, each erasure in the journal
(:mod:`engine.platform.database.erasure_journal`) is done again on the database:
its mark is put back, and a customer it names who has rows there again is erased by
the same steps as :class:`engine.customers.erasure.ErasureActivities`: preferences
and consent, frequency-cap slots, phone index and feedback answers deleted, ledger
recipients hashed, the data key destroyed and the owner rows hashed.

The journal holds keyed hashes, not ids: a customer is recognised by hashing each id
the restored database holds and looking it up. Temporal is not touched: their
journeys were closed by the erasure itself, and Temporal is not restored with the
database.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, union
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.customers.erasure import DataKeys, RecipientHasher, forget_customer_rows
from engine.customers.preferences import PreferenceStore
from engine.messaging.ledger import MessageLedger
from engine.platform.database.erasure_journal import JournalEntry
from engine.platform.database.erasure_marks import ERASED_OWNER_PREFIX, ErasureMarks
from engine.platform.database.tables import (
    CappedSend,
    ConsentRecord,
    CustomerKeyRecord,
    CustomerPreferenceRecord,
    FeedbackResponse,
    JourneyOwnerRecord,
    PhoneCustomer,
)


@dataclass(frozen=True)
class ReappliedErasures:
    """What re-applying the journal did."""

    journaled: int  # erasures in the journal
    marks_put_back: int  # marks the restored database lacked
    customers_erased: int  # customers the restored database held rows of again
    keys_destroyed: int


@dataclass(frozen=True)
class ErasureReplay:
    sessions: async_sessionmaker[AsyncSession]
    marks: ErasureMarks
    keys: DataKeys
    hasher: RecipientHasher

    async def reapply(self, journal: list[JournalEntry]) -> ReappliedErasures:
        put_back = 0
        async with self.sessions() as session, session.begin():
            for entry in journal:
                put_back += await self.marks.put_back(session, entry.customer_hash, entry.erased_at)
        journaled = {entry.customer_hash for entry in journal}
        erased = destroyed = 0
        for customer_id in await self._customer_ids():
            if journaled.isdisjoint(self.marks.known_hashes(customer_id)):
                continue
            erased += 1
            destroyed += await self._erase(customer_id)
        return ReappliedErasures(len(journal), put_back, erased, destroyed)

    async def _erase(self, customer_id: str) -> bool:
        """The erasure's steps that touch our database, in its order; True if a data
        key was destroyed."""
        await PreferenceStore(self.sessions, self.marks).erase(customer_id)
        await forget_customer_rows(self.sessions, customer_id)
        journeys = [workflow_id for workflow_id, _ in await self.keys.journeys_of(customer_id)]
        await MessageLedger(self.sessions).anonymise_recipients(journeys, self.hasher)
        return await self.keys.destroy(customer_id)

    async def _customer_ids(self) -> list[str]:
        """Every customer id the database holds a row about (the ledger names none:
        its rows are found through the journeys' owners)."""
        held = union(
            select(CustomerKeyRecord.customer_id),
            select(JourneyOwnerRecord.customer_id).where(
                JourneyOwnerRecord.customer_id.not_like(f"{ERASED_OWNER_PREFIX}%")
            ),
            select(CustomerPreferenceRecord.customer_id),
            select(ConsentRecord.customer_id),
            select(CappedSend.customer_id),
            select(PhoneCustomer.customer_id),
            select(FeedbackResponse.customer_id),
        )
        async with self.sessions() as session:
            return sorted(await session.scalars(select(held.subquery().c.customer_id)))
