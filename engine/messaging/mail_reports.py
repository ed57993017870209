"""Reading the reports mail systems send back about our emails, with the stdlib parser.

Two kinds, both ``multipart/report`` (RFC 6522):

* a delivery status notification (RFC 3464), ``report-type=delivery-status``: a
  human-readable part, a ``message/delivery-status`` part (one block of
  per-message fields, then one block per recipient: ``Final-Recipient``,
  ``Action``, ``Status``, ``Diagnostic-Code``) and, optionally, the returned
  message or its headers (``message/rfc822``, ``text/rfc822-headers``);
* a complaint (ARF, RFC 5965), ``report-type=feedback-report``: a human-readable
  part, a ``message/feedback-report`` part (``Feedback-Type``, ``User-Agent``,
  ``Version``, ``Original-Mail-From``, ``Original-Rcpt-To``...) and the reported
  message or its headers.

What identifies our message in a report: the addresses the report was sent to
and the original envelope sender (``Original-Mail-From``, the returned
message's ``Return-Path``), which carry its VERP token
(``engine.messaging.bounce_address``), and the returned message's
``Message-ID``. Everything else in a report is the receiving system's say-so.

Anything that is not such a report (an auto-reply, a newsletter) parses to None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message
from email.parser import HeaderParser

# RFC 3464 2.3.4: class.subject.detail, the class 2 (success), 4 (persistent
# transient failure) or 5 (permanent failure).
_STATUS = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})")
# Mail systems rarely hold more; a bigger body is not worth reading.
MAX_REPORT_BYTES = 1024 * 1024


@dataclass(frozen=True)
class RecipientOutcome:
    """One recipient block of a delivery status notification."""

    final_recipient: str  # the address, without its "rfc822;" type
    action: str  # failed, delayed, delivered, relayed, expanded (lower case)
    status: str  # "5.1.1"; "" when missing or malformed
    diagnostic: str = ""

    @property
    def is_hard_bounce(self) -> bool:
        """Permanently refused: the address must not be mailed again."""
        return self.action == "failed" and self.status.startswith("5.")

    @property
    def is_soft_bounce(self) -> bool:
        """Not delivered yet for a passing reason (full mailbox, greylisting)."""
        return self.action in ("failed", "delayed") and self.status.startswith("4.")


@dataclass(frozen=True)
class DeliveryStatusReport:
    recipients: tuple[RecipientOutcome, ...]
    # What names our message: the returned message's Message-ID, and the addresses
    # that may carry its VERP token.
    original_message_id: str | None
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class ComplaintReport:
    feedback_type: str  # abuse, fraud, virus, other, not-spam (lower case)
    original_recipient: str | None
    original_message_id: str | None
    addresses: tuple[str, ...]

    @property
    def is_complaint(self) -> bool:
        # "not-spam" is a recipient taking a complaint back (RFC 6650 does not
        # define it, yet some mailbox providers send it); every other type is one.
        return self.feedback_type != "not-spam"


MailReport = DeliveryStatusReport | ComplaintReport


def parse_mail_report(raw: bytes) -> MailReport | None:
    """The report in ``raw`` (a whole message as received), or None when it is none."""
    if len(raw) > MAX_REPORT_BYTES:
        return None
    message = message_from_bytes(raw, policy=policy.compat32)
    if message.get_content_type() != "multipart/report":
        return None
    report_type = str(message.get_param("report-type", "") or "").lower()
    payload = message.get_payload()
    if not isinstance(payload, list):
        return None
    parts = [part for part in payload if isinstance(part, Message)]
    delivered_to = _addresses_of(message, ("To", "Delivered-To", "X-Original-To", "Envelope-To"))
    if report_type == "delivery-status":
        return _delivery_status(parts, delivered_to)
    if report_type == "feedback-report":
        return _feedback(parts, delivered_to)
    return None


def _delivery_status(parts: list[Message], delivered_to: list[str]) -> DeliveryStatusReport | None:
    status_part = _first(parts, "message/delivery-status")
    if status_part is None:
        return None
    blocks = status_part.get_payload()
    if not isinstance(blocks, list) or not blocks:
        return None
    # The first block is about the message, the rest one per recipient.
    recipients = tuple(
        outcome
        for block in blocks[1:]
        if isinstance(block, Message) and (outcome := _recipient_outcome(block)) is not None
    )
    if not recipients:
        return None
    original = _original_headers(parts)
    addresses = list(delivered_to)
    if original is not None:
        addresses += _addresses_of(original, ("Return-Path",))
    return DeliveryStatusReport(
        recipients=recipients,
        original_message_id=_message_id(original),
        addresses=tuple(addresses),
    )


def _feedback(parts: list[Message], delivered_to: list[str]) -> ComplaintReport | None:
    report_part = _first(parts, "message/feedback-report")
    if report_part is None:
        return None
    fields = _fields_of(report_part)
    if fields is None or not fields.get("Feedback-Type"):
        return None
    original = _original_headers(parts)
    addresses = [*delivered_to, *_addresses_of(fields, ("Original-Mail-From",))]
    if original is not None:
        addresses += _addresses_of(original, ("Return-Path",))
    return ComplaintReport(
        feedback_type=str(fields["Feedback-Type"]).strip().lower(),
        original_recipient=_bare(fields.get("Original-Rcpt-To")),
        original_message_id=_message_id(original),
        addresses=tuple(addresses),
    )


def _first(parts: list[Message], content_type: str) -> Message | None:
    return next((part for part in parts if part.get_content_type() == content_type), None)


def _fields_of(part: Message) -> Message | None:
    """The header-like fields of a report part: the email package parses an unknown
    ``message/*`` part as an embedded message, its fields as that message's headers."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload:
        first = payload[0]
        return first if isinstance(first, Message) else None
    if isinstance(payload, str):
        return HeaderParser().parsestr(payload)
    return None


def _recipient_outcome(block: Message) -> RecipientOutcome | None:
    recipient = _bare(block.get("Final-Recipient")) or _bare(block.get("Original-Recipient"))
    action = str(block.get("Action", "")).strip().lower()
    if not recipient or not action:
        return None
    found = _STATUS.search(str(block.get("Status", "")))
    return RecipientOutcome(
        final_recipient=recipient,
        action=action,
        status=found.group(0) if found else "",
        diagnostic=" ".join(str(block.get("Diagnostic-Code", "")).split())[:500],
    )


def _original_headers(parts: list[Message]) -> Message | None:
    """The headers of the returned (or reported) message, whole or headers only."""
    for part in parts[1:]:
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        if kind == "text/rfc822-headers":
            text = part.get_payload(decode=True)
            if isinstance(text, bytes):
                return HeaderParser().parsestr(text.decode("utf-8", "replace"))
    return None


def _message_id(headers: Message | None) -> str | None:
    if headers is None:
        return None
    value = " ".join(str(headers.get("Message-ID", "")).split())
    return value or None


def _addresses_of(headers: Message, names: tuple[str, ...]) -> list[str]:
    found: list[str] = []
    for name in names:
        for value in headers.get_all(name, []):
            found += [address for part in str(value).split(",") if (address := _bare(part))]
    return found


def _bare(value: object) -> str | None:
    """``rfc822; Jane@Example.test`` or ``<jane@example.test>`` -> ``jane@example.test``."""
    if value is None:
        return None
    text = str(value).strip()
    if ";" in text:
        text = text.split(";", 1)[1]
    text = text.strip().strip("<>").strip()
    if "<" in text:  # "Name <address>"
        text = text.rsplit("<", 1)[1].rstrip(">").strip()
    return text.lower() if "@" in text else None
