"""Answers given on the feedback page: score and comment, one per feedback link.

The row is keyed by the SHA-256 of the link's token, so a link answers once: a
second submit (a double click, a replayed request) finds the row and records
nothing. The answer is kept whether or not the journey could still take it as
an event, so a late answer still counts for measurement.

Comments are the customer's own words (personal data): erasure deletes them with
:func:`forget_customer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.customers.consent import ensure_not_erased, token_hash
from engine.platform.database.erasure_marks import ErasureMarks
from engine.platform.database.tables import FeedbackResponse
from engine.platform.database.upsert import insert_on_conflict


@dataclass(frozen=True)
class FeedbackAnswer:
    customer_id: str
    journey_id: str
    score: int
    comment: str
    delivered: bool
    recorded_at: datetime  # aware, UTC

    @classmethod
    def of(cls, row: FeedbackResponse) -> FeedbackAnswer:
        recorded = row.recorded_at
        return cls(
            customer_id=row.customer_id,
            journey_id=row.journey_id,
            score=row.score,
            comment=row.comment,
            delivered=row.delivered,
            recorded_at=recorded.replace(tzinfo=UTC)
            if recorded.tzinfo is None
            else recorded.astimezone(UTC),
        )


class FeedbackResponses:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], marks: ErasureMarks) -> None:
        self._sessions = sessions
        self._marks = marks

    async def answered(self, token: str) -> bool:
        """Whether this link was already answered."""
        async with self._sessions() as session:
            found = await session.scalar(
                select(exists().where(FeedbackResponse.token_hash == token_hash(token)))
            )
        return bool(found)

    async def record(
        self,
        token: str,
        *,
        customer_id: str,
        journey_id: str,
        score: int,
        comment: str,
        delivered: bool,
    ) -> bool:
        """Keep the answer given through ``token``; False, keeping nothing, when the
        link was already answered (concurrent callers: exactly one gets True).
        Raises :class:`~engine.customers.consent.CustomerErased`, keeping nothing,
        for an erased customer."""
        if not 0 <= score <= 10:
            raise ValueError("score must be between 0 and 10")
        values = {
            "token_hash": token_hash(token),
            "customer_id": customer_id,
            "journey_id": journey_id,
            "score": score,
            "comment": comment,
            "delivered": delivered,
        }
        async with self._sessions() as session:
            try:
                await ensure_not_erased(session, self._marks, customer_id)
            except Exception:
                await session.rollback()
                raise
            statement = insert_on_conflict(
                session.get_bind().dialect.name, FeedbackResponse
            ).on_conflict_do_nothing(index_elements=["token_hash"])
            inserted = await session.scalar(
                statement.values(**values).returning(FeedbackResponse.token_hash)
            )
            await session.commit()
            return inserted is not None

    async def of_customer(self, customer_id: str) -> list[FeedbackAnswer]:
        """Every answer of the customer, oldest first."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(FeedbackResponse)
                .where(FeedbackResponse.customer_id == customer_id)
                .order_by(FeedbackResponse.recorded_at, FeedbackResponse.token_hash)
            )
            return [FeedbackAnswer.of(row) for row in rows]


async def forget_customer(session: AsyncSession, customer_id: str) -> int:
    """Erasure: delete every answer of the customer in the caller's transaction;
    how many there were."""
    result: Any = await session.execute(
        delete(FeedbackResponse).where(FeedbackResponse.customer_id == customer_id)
    )
    count = result.rowcount
    return count if isinstance(count, int) and count > 0 else 0
