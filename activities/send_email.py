"""The ``send_email`` activity: render, deliver once, record in the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.email.message import build_email, domain_of
from activities.email.rendering import EmailContext, EmailRenderer
from activities.email.smtp import PermanentSmtpError, SmtpMailer
from engine.database.ledger import Claim, LedgerEntry, MessageLedger, message_id_for
from workflows.model import SEND_EMAIL_ACTIVITY, Channel, SendEmailInput, SentMessage

PERMANENT_FAILURE = "PermanentDeliveryFailure"


@dataclass(frozen=True)
class LinkBuilder:
    shop_url: str

    def for_request(self, request: SendEmailInput) -> dict[str, str]:
        order_url = f"{self.shop_url}/orders/{request.order.order_id}"
        tracking = request.shipment.tracking_url if request.shipment else ""
        return {
            "order": order_url,
            "track_order": tracking or order_url,
            "help": f"{self.shop_url}/help?order={request.order.order_id}",
        }


class EmailActivities:
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

    @activity.defn(name=SEND_EMAIL_ACTIVITY)
    async def send_email(self, request: SendEmailInput) -> SentMessage:
        customer = request.order.customer
        claim = Claim(
            journey_id=request.journey_id,
            step=request.step,
            iteration=request.iteration,
            channel=Channel.EMAIL,
            template=request.template,
            recipient=customer.email,
        )
        entry = await self._ledger.claim(claim)
        if entry.is_final:
            # An earlier attempt already delivered (or gave up on) this message:
            # answer with what was recorded instead of sending it again.
            return self._outcome(entry)

        message_id = message_id_for(claim.key, domain_of(self._sender))
        rendered = self._renderer.render(
            request.template,
            EmailContext(
                order=request.order,
                shipment=request.shipment,
                links=self._links.for_request(request),
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
        if entry.status != "sent":
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
