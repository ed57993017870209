"""What a bounce or a complaint about one of our emails changes.

Reports arrive by the inbound SMTP endpoint (``engine.customers.bounce_mailbox``) or
a provider's webhook (``engine.customers.mail_report_webhook``) and are read by
``engine.messaging.mail_reports``. Each is tied to the ledger message it is about,
by the VERP token in the addresses it was sent to or names as the original
envelope sender, else by the returned message's Message-ID (the ledger's
``provider_message_id``). A report about no message of ours is logged and
ignored: nobody else's report may change what we send.

* **Hard bounce** (``Action: failed``, status 5.x.x): the address the message was
  sent to is suppressed for email, the ledger row gets delivery status
  ``undelivered`` with the status code, and the message an engagement event
  ``bounced`` (detail ``hard 5.1.1``).
* **Soft bounce** (status 4.x.x): recorded as ``bounced`` (``soft 4.2.2``) and
  nothing else; the mail system keeps trying, and so may the next message.
* **Complaint** (ARF, any feedback type but ``not-spam``): the customer refuses
  marketing on every channel, recorded in the consent trail with source
  ``complaint``, the message gets ``complained``, and the customer's running
  journeys are told.

Replays change nothing: suppressing is idempotent, each engagement outcome is
kept once per message, and a complaint's consent event is written once per
message (its ``used_link_tokens`` mark is claimed in the same transaction).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.customers.consent import (
    SOURCE_COMPLAINT,
    ConsentDecision,
    ConsentLedger,
)
from engine.customers.consent_changes import ConsentChanged, tell_journeys
from engine.messaging.bounce_address import message_token, token_from_verp
from engine.messaging.engagement import record_engagement
from engine.messaging.ledger import HASHED_RECIPIENT_PREFIX, MessageLedger
from engine.messaging.mail_reports import (
    ComplaintReport,
    DeliveryStatusReport,
    RecipientOutcome,
    parse_mail_report,
)
from engine.messaging.suppressions import SuppressionList
from engine.platform.database.tables import (
    EngagementKind,
    JourneyOwnerRecord,
    Message,
)
from engine.platform.logging import get_logger

log = get_logger(__name__)

# What a complaint refuses, on every channel.
COMPLAINT_CATEGORY = "marketing"
# The ledger's delivery status for a hard bounce (its vocabulary is Twilio's).
HARD_BOUNCE_STATUS = "undelivered"


class ReportOutcome(StrEnum):
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"
    # A report we read, about a message of ours, that changes nothing (a
    # "delivered" or "relayed" DSN, a not-spam feedback, a replayed complaint).
    NO_CHANGE = "no_change"
    UNKNOWN_MESSAGE = "unknown_message"
    NOT_A_REPORT = "not_a_report"


@dataclass(frozen=True)
class ReportedMessage:
    """The ledger row a report is about."""

    row_id: int
    journey_id: str
    recipient: str
    provider_message_id: str
    customer_id: str | None


class MailReports:
    """Applies bounce and complaint reports; safe to share between requests."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        suppressions: SuppressionList,
        consent: ConsentLedger,
        *,
        bounce_address: str | None = None,
        on_consent_changed: ConsentChanged | None = None,
    ) -> None:
        self._sessions = sessions
        self._ledger = MessageLedger(sessions)
        self._suppressions = suppressions
        self._consent = consent
        # Given, a VERP address must be one of its own to count.
        self._bounce_address = bounce_address
        self._on_consent_changed = on_consent_changed

    async def handle(self, raw: bytes, envelope_recipients: Sequence[str] = ()) -> ReportOutcome:
        """Apply the report in ``raw`` (a whole message), delivered to
        ``envelope_recipients`` (the SMTP RCPT TO addresses; none from a webhook)."""
        report = parse_mail_report(raw)
        if report is None:
            log.info("mail report endpoint got something that is no DSN or ARF report")
            return ReportOutcome.NOT_A_REPORT
        message = await self._find(
            [*envelope_recipients, *report.addresses], report.original_message_id
        )
        if message is None:
            log.warning(
                "mail report about no message of ours",
                kind="complaint" if isinstance(report, ComplaintReport) else "delivery status",
            )
            return ReportOutcome.UNKNOWN_MESSAGE
        if isinstance(report, DeliveryStatusReport):
            return await self._bounce(report, message)
        return await self._complaint(report, message)

    async def _bounce(
        self, report: DeliveryStatusReport, message: ReportedMessage
    ) -> ReportOutcome:
        hard = _first(outcome for outcome in report.recipients if outcome.is_hard_bounce)
        if hard is not None:
            await self._hard_bounce(hard, message)
            return ReportOutcome.HARD_BOUNCE
        soft = _first(outcome for outcome in report.recipients if outcome.is_soft_bounce)
        if soft is not None:
            await record_engagement(
                self._sessions,
                message_id=message.row_id,
                kind=EngagementKind.BOUNCED,
                detail=f"soft {soft.status}",
            )
            log.info("soft bounce recorded", journey_id=message.journey_id, status=soft.status)
            return ReportOutcome.SOFT_BOUNCE
        log.info("delivery status without a bounce", journey_id=message.journey_id)
        return ReportOutcome.NO_CHANGE

    async def _hard_bounce(self, outcome: RecipientOutcome, message: ReportedMessage) -> None:
        token = message_token(message.provider_message_id) or "?"
        # The address we sent to (an erased customer's is a hash: nothing to suppress).
        if not message.recipient.startswith(HASHED_RECIPIENT_PREFIX):
            await self._suppressions.add(
                "email", message.recipient, f"hard bounce {outcome.status}, message {token}"
            )
        await self._ledger.record_delivery_status(
            message.provider_message_id, HARD_BOUNCE_STATUS, outcome.status, datetime.now(UTC)
        )
        await record_engagement(
            self._sessions,
            message_id=message.row_id,
            kind=EngagementKind.BOUNCED,
            detail=f"hard {outcome.status}",
        )
        log.info(
            "hard bounce: address suppressed", journey_id=message.journey_id, status=outcome.status
        )

    async def _complaint(self, report: ComplaintReport, message: ReportedMessage) -> ReportOutcome:
        if not report.is_complaint:
            log.info("feedback report that is no complaint", feedback_type=report.feedback_type)
            return ReportOutcome.NO_CHANGE
        customer_id = message.customer_id or await self._owner(message.journey_id)
        recorded = False
        if customer_id is not None:
            # One consent event per complained-about message, whatever the replays.
            async with self._consent.once(f"complaint:{message.provider_message_id}") as session:
                if session is not None:
                    decision = ConsentDecision(granted=False, category=COMPLAINT_CATEGORY)
                    recorded = await self._consent.append_unless_erased(
                        session, customer_id, [decision], SOURCE_COMPLAINT
                    )
        await record_engagement(
            self._sessions,
            message_id=message.row_id,
            kind=EngagementKind.COMPLAINED,
            detail=report.feedback_type[:40],
        )
        if not recorded:
            log.info("complaint already applied or customer unknown", journey_id=message.journey_id)
            return ReportOutcome.NO_CHANGE
        log.info("complaint: marketing refused on every channel", journey_id=message.journey_id)
        assert customer_id is not None
        await tell_journeys(self._on_consent_changed, customer_id, SOURCE_COMPLAINT)
        return ReportOutcome.COMPLAINT

    async def _find(
        self, addresses: Iterable[str], original_message_id: str | None
    ) -> ReportedMessage | None:
        tokens = [
            token
            for address in addresses
            if (token := token_from_verp(address, self._bounce_address)) is not None
        ]
        if original_message_id and (token := message_token(original_message_id)):
            tokens.append(token)
        async with self._sessions() as session:
            for token in dict.fromkeys(tokens):
                found = await _email_row(session, Message.provider_message_id.like(f"<{token}@%"))
                if found is not None:
                    return found
            if original_message_id:
                return await _email_row(session, Message.provider_message_id == original_message_id)
        return None

    async def _owner(self, journey_id: str) -> str | None:
        async with self._sessions() as session:
            owner: str | None = await session.scalar(
                select(JourneyOwnerRecord.customer_id).where(
                    JourneyOwnerRecord.workflow_id == journey_id
                )
            )
        return owner


async def _email_row(
    session: AsyncSession, condition: ColumnElement[bool]
) -> ReportedMessage | None:
    row = (
        await session.execute(
            select(
                Message.id,
                Message.journey_id,
                Message.recipient,
                Message.provider_message_id,
                Message.customer_id,
            )
            .where(condition, Message.channel == "email")
            .order_by(Message.id)
            .limit(1)
        )
    ).first()
    if row is None or row.provider_message_id is None:
        return None
    return ReportedMessage(
        row_id=row.id,
        journey_id=row.journey_id,
        recipient=row.recipient,
        provider_message_id=row.provider_message_id,
        customer_id=row.customer_id,
    )


def _first(outcomes: Iterable[RecipientOutcome]) -> RecipientOutcome | None:
    return next(iter(outcomes), None)
