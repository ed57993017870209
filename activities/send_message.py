"""The ``send_message`` activity: one message, one channel, delivered at most once.

Every attempt first claims the message's row in the ledger; a row already final
(sent, bounced, skipped) answers the retry without sending again. A permanent
refusal suppresses the address and tells the journey to try its next channel.

Consent is checked at the moment of sending, not when the journey planned the
message: a marketing message scheduled last week is not sent to a customer who
opted out yesterday.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.channels.base import Channel, PermanentDeliveryError, TransientDeliveryError
from engine.database.consent import ALWAYS_ALLOWED_CATEGORIES, ConsentLedger
from engine.database.ledger import Claim, LedgerEntry, MessageLedger
from engine.database.suppressions import SuppressionList
from engine.database.tables import MessageStatus
from workflows.model import SEND_MESSAGE_ACTIVITY, Delivery, SendMessageInput, SentMessage
from workflows.vocabulary import Channel as ChannelName

TRANSIENT_FAILURE = "TransientDeliveryFailure"
# Ledger reasons are kept with the outcome they explain.
_UNAVAILABLE = "unavailable: "


class MessageActivities:
    def __init__(
        self,
        ledger: MessageLedger,
        suppressions: SuppressionList,
        consent: ConsentLedger,
        channels: Mapping[ChannelName, Channel],
    ) -> None:
        self._ledger = ledger
        self._suppressions = suppressions
        self._consent = consent
        self._channels = channels

    @activity.defn(name=SEND_MESSAGE_ACTIVITY)
    async def send_message(self, request: SendMessageInput) -> SentMessage:
        channel = self._channels.get(request.channel)
        address = channel.address_of(request) if channel else ""
        claim = Claim(
            journey_id=request.journey_id,
            step=request.step,
            iteration=request.iteration,
            channel=request.channel,
            template=request.template,
            recipient=address,
        )
        entry = await self._ledger.claim(claim)
        if entry.is_final:
            # An earlier attempt already settled this message: answer with what was
            # recorded instead of sending it again.
            return _outcome(entry, request)
        reason = self._unavailable(request, channel, address)
        if not reason and await self._suppressions.is_suppressed(request.channel, address):
            reason = "address suppressed after an earlier permanent failure"
        if not reason:
            reason = await self._consent_refusal(request)
        if reason:
            await self._ledger.mark_skipped(claim.key, _UNAVAILABLE + reason)
            return _result(request, Delivery.UNAVAILABLE, detail=reason)
        assert channel is not None
        try:
            provider_id = await channel.deliver(request, address, claim.key)
        except PermanentDeliveryError as err:
            await self._suppressions.add(request.channel, address, str(err))
            await self._ledger.mark_failed(claim.key, str(err))
            return _result(request, Delivery.BOUNCED, detail=str(err))
        except TransientDeliveryError as err:
            # The row stays claimed: the retry (same key) sends it.
            delay = err.retry_after_seconds
            raise ApplicationError(
                str(err),
                type=TRANSIENT_FAILURE,
                next_retry_delay=timedelta(seconds=delay) if delay else None,
            ) from err
        sent_at = datetime.now(UTC)
        await self._ledger.mark_sent(claim.key, provider_message_id=provider_id, sent_at=sent_at)
        activity.logger.info(
            "message sent", extra={"step": request.step, "channel": request.channel}
        )
        return _result(request, Delivery.SENT, message_id=provider_id, at=sent_at)

    async def _consent_refusal(self, request: SendMessageInput) -> str:
        """Why consent forbids this message now, or "" (checked at send time, every attempt)."""
        category = request.category
        if category in ALWAYS_ALLOWED_CATEGORIES:
            return ""
        if await self._consent.allows(request.order.customer.id, request.channel, category):
            return ""
        # The journey then tries the step's next channel, which is refused the
        # same way unless the customer allowed that channel.
        return f"no consent: customer opted out of {category}"

    @staticmethod
    def _unavailable(request: SendMessageInput, channel: Channel | None, address: str) -> str:
        if channel is None:
            return f"no {request.channel} channel in this deployment"
        return channel.unavailable_reason(request) or (
            "" if address else f"no {request.channel} address"
        )


def _result(
    request: SendMessageInput,
    status: Delivery,
    *,
    detail: str = "",
    message_id: str = "",
    at: datetime | None = None,
) -> SentMessage:
    return SentMessage(
        step=request.step,
        channel=request.channel,
        template=request.template,
        sent_at=at or datetime.now(UTC),
        message_id=message_id,
        status=status,
        detail=detail,
    )


def _outcome(entry: LedgerEntry, request: SendMessageInput) -> SentMessage:
    if entry.status == MessageStatus.SENT:
        return _result(
            request,
            Delivery.SENT,
            message_id=entry.provider_message_id or "",
            at=entry.sent_at,
        )
    if entry.status == MessageStatus.SKIPPED:
        return _result(
            request, Delivery.UNAVAILABLE, detail=(entry.error or "").removeprefix(_UNAVAILABLE)
        )
    return _result(request, Delivery.BOUNCED, detail=entry.error or "")
