"""Delivery status notifications (RFC 3464) and complaint reports (ARF, RFC 5965) as
mail systems write them, built with the stdlib email package.

A DSN is ``multipart/report; report-type=delivery-status`` with a human-readable
part, a ``message/delivery-status`` part (the per-message fields, then one block per
recipient) and the returned message (``message/rfc822``) or its headers
(``text/rfc822-headers``). An ARF report is ``multipart/report;
report-type=feedback-report`` with a human-readable part, a
``message/feedback-report`` part and the reported message (or its headers).
"""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid

REPORTING_MTA = "mx.example.test"


def _headers_only(original: bytes) -> str:
    head = original.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    return head.decode("utf-8", "replace").replace("\r\n", "\n") + "\n"


def _returned(original: bytes, headers_only: bool) -> MIMEBase:
    if headers_only:
        return MIMEText(_headers_only(original), "rfc822-headers")
    return MIMEMessage(message_from_bytes(original, policy=policy.compat32))


def delivery_status_notification(
    original: bytes,
    *,
    to: str,
    final_recipient: str,
    status: str,
    action: str = "failed",
    diagnostic: str = "smtp; 550 5.1.1 <user>: Recipient address rejected: User unknown",
    headers_only: bool = False,
    report_message_id: str | None = None,
) -> bytes:
    """A DSN sent to ``to`` (the original's envelope sender) about ``original``."""
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = f"Mail Delivery System <MAILER-DAEMON@{REPORTING_MTA}>"
    report["To"] = to
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Date"] = formatdate(localtime=False)
    report["Message-ID"] = report_message_id or make_msgid(domain=REPORTING_MTA)
    report["Auto-Submitted"] = "auto-replied"
    report.attach(
        MIMEText(
            "This is the mail system at host mx.example.test.\n\n"
            "I'm sorry to have to inform you that your message could not\n"
            "be delivered to one or more recipients.\n"
        )
    )
    status_part = MIMEBase("message", "delivery-status")
    per_message = Message()
    per_message["Reporting-MTA"] = f"dns; {REPORTING_MTA}"
    per_message["Arrival-Date"] = formatdate(localtime=False)
    per_recipient = Message()
    per_recipient["Final-Recipient"] = f"rfc822; {final_recipient}"
    per_recipient["Original-Recipient"] = f"rfc822;{final_recipient}"
    per_recipient["Action"] = action
    per_recipient["Status"] = status
    per_recipient["Remote-MTA"] = "dns; inbox.example.test"
    per_recipient["Diagnostic-Code"] = diagnostic
    status_part.attach(per_message)
    status_part.attach(per_recipient)
    del status_part["MIME-Version"]
    report.attach(status_part)
    report.attach(_returned(original, headers_only))
    return report.as_bytes()


def complaint_report(
    original: bytes,
    *,
    to: str,
    original_mail_from: str,
    original_rcpt_to: str,
    feedback_type: str = "abuse",
    headers_only: bool = True,
) -> bytes:
    """An ARF report (RFC 5965) sent to ``to`` about ``original``."""
    report = MIMEMultipart("report", report_type="feedback-report")
    report["From"] = "<staff@hotmail.example.test>"
    report["To"] = to
    report["Subject"] = "FW: Your order is on its way"
    report["Date"] = formatdate(localtime=False)
    report["Message-ID"] = make_msgid(domain="hotmail.example.test")
    report.attach(
        MIMEText(
            "This is an email abuse report for an email message received from IP\n"
            "192.0.2.1 on Thu, 8 Mar 2026 14:00:00 EDT.\n"
        )
    )
    fields = MIMEBase("message", "feedback-report")
    fields.set_payload(
        f"Feedback-Type: {feedback_type}\n"
        "User-Agent: SomeGenerator/1.0\n"
        "Version: 1\n"
        f"Original-Mail-From: <{original_mail_from}>\n"
        f"Original-Rcpt-To: <{original_rcpt_to}>\n"
        "Arrival-Date: Thu, 8 Mar 2026 14:00:00 EDT\n"
        "Source-IP: 192.0.2.1\n"
        "Reported-Domain: shop.test\n"
    )
    del fields["MIME-Version"]
    report.attach(fields)
    report.attach(_returned(original, headers_only))
    return report.as_bytes()
