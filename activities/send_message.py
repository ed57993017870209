"""The ``send_message`` activity: pick a channel, render, deliver once, record in the ledger.

Channels are tried in the step's order of preference; the first one that can
reach the customer is used. When none can, the ledger records the message as
undeliverable with the reasons, and the journey goes on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.email.message import build_email, domain_of
from activities.email.rendering import EmailContext, EmailRenderer
from activities.email.smtp import PermanentSmtpError, SmtpMailer
from engine.database.ledger import Claim, LedgerEntry, MessageLedger, message_id_for
from engine.database.tables import MessageStatus
from workflows.model import SEND_MESSAGE_ACTIVITY, Channel, SendMessageInput, SentMessage

PERMANENT_FAILURE = "PermanentDeliveryFailure"
UNDELIVERABLE = "undeliverable"


@dataclass(frozen=True)
class LinkBuilder:
    shop_url: str

    def for_request(self, request: SendMessageInput) -> dict[str, str]:
        order_url = f"{self.shop_url}/orders/{request.order.order_id}"
        tracking = request.shipment.tracking_url if request.shipment else ""
        return {
            "order": order_url,
            "track_order": tracking or order_url,
            "help": f"{self.shop_url}/help?order={request.order.order_id}",
        }


@dataclass(frozen=True)
class ChannelChoice:
    channel: Channel | None
    recipient: str
    refusals: list[str]


def referral_code(customer_id: str) -> str:
    """A stable, non-guessable-looking code per customer (no personal data in it)."""
    return "REF-" + hashlib.sha256(customer_id.encode()).hexdigest()[:8].upper()


class MessageActivities:
    def __init__(
        self,
        ledger: MessageLedger,
        renderer: EmailRenderer,
        mailer: SmtpMailer,
        sender_address: str,
        links: LinkBuilder,
    ) -> None:
        self._ledger = ledger
        self._renderer = renderer
        self._mailer = mailer
        self._sender = sender_address
        self._links = links

    @activity.defn(name=SEND_MESSAGE_ACTIVITY)
    async def send_message(self, request: SendMessageInput) -> SentMessage:
        choice = self._choose_channel(request)
        claim = Claim(
            journey_id=request.journey_id,
            step=request.step,
            iteration=request.iteration,
            channel=choice.channel or "none",
            template=request.template,
            recipient=choice.recipient,
        )
        entry = await self._ledger.claim(claim)
        if entry.is_final:
            # An earlier attempt already delivered (or gave up on) this message:
            # answer with what was recorded instead of sending it again.
            return self._outcome(entry)
        if choice.channel is None:
            reason = "; ".join(choice.refusals)
            await self._ledger.mark_skipped(claim.key, f"{UNDELIVERABLE}: {reason}")
            return SentMessage(
                step=request.step,
                channel=None,
                template=request.template,
                sent_at=datetime.now(UTC),
                message_id="",
                status=UNDELIVERABLE,
                detail=reason,
            )
        return await self._send_email(request, claim)

    def _choose_channel(self, request: SendMessageInput) -> ChannelChoice:
        customer = request.order.customer
        refusals: list[str] = []
        for channel in request.channels:
            if channel == Channel.EMAIL:
                if customer.email:
                    return ChannelChoice(channel, customer.email, refusals)
                refusals.append("email: no address")
            else:
                refusals.append(f"{channel}: no provider configured")
        return ChannelChoice(None, "", refusals or ["no channel listed"])

    async def _send_email(self, request: SendMessageInput, claim: Claim) -> SentMessage:
        customer = request.order.customer
        message_id = message_id_for(claim.key, domain_of(self._sender))
        focus = next((i for i in request.order.items if i.sku == request.focus_sku), None)
        rendered = self._renderer.render(
            request.template,
            EmailContext(
                order=request.order,
                shipment=request.shipment,
                links=self._links.for_request(request),
                focus_item=focus,
                feedback=request.feedback,
                skus=tuple(request.skus),
                new_address=request.new_address,
                run_out_at=request.run_out_at,
                referral_code=referral_code(customer.id),
            ),
        )
        email = build_email(
            rendered,
            sender=self._sender,
            recipient_email=customer.email,
            recipient_name=customer.name,
            message_id=message_id,
            journey_id=request.journey_id,
            step=request.step,
        )
        try:
            await self._mailer.send(email)
        except PermanentSmtpError as err:
            await self._ledger.mark_failed(claim.key, str(err))
            raise ApplicationError(str(err), type=PERMANENT_FAILURE, non_retryable=True) from err
        sent_at = datetime.now(UTC)
        await self._ledger.mark_sent(claim.key, provider_message_id=message_id, sent_at=sent_at)
        activity.logger.info("email sent", extra={"step": request.step, "key": claim.key})
        return SentMessage(
            step=request.step,
            channel=Channel.EMAIL,
            template=request.template,
            sent_at=sent_at,
            message_id=message_id,
        )

    @staticmethod
    def _outcome(entry: LedgerEntry) -> SentMessage:
        if entry.status == MessageStatus.SKIPPED:
            return SentMessage(
                step=entry.step,
                channel=None,
                template=entry.template,
                sent_at=entry.sent_at or datetime.now(UTC),
                message_id="",
                status=UNDELIVERABLE,
                detail=(entry.error or "").removeprefix(f"{UNDELIVERABLE}: "),
            )
        if entry.status != MessageStatus.SENT:
            raise ApplicationError(
                f"{entry.step} was already {entry.status}: {entry.error or ''}".strip(),
                type=PERMANENT_FAILURE,
                non_retryable=True,
            )
        return SentMessage(
            step=entry.step,
            channel=Channel(entry.channel),
            template=entry.template,
            sent_at=entry.sent_at or datetime.now(UTC),
            message_id=entry.provider_message_id or "",
        )
