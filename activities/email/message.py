"""Assembly of a MIME email (multipart/alternative: plain text + HTML)."""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate

from activities.email.rendering import RenderedEmail, header_safe


def build_email(
    rendered: RenderedEmail,
    *,
    sender: str,
    recipient_email: str,
    recipient_name: str,
    message_id: str,
    journey_id: str,
    step: str,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    # The display name comes from customer data: strip control characters so it
    # can never inject a header line.
    message["To"] = Address(display_name=header_safe(recipient_name), addr_spec=recipient_email)
    message["Subject"] = header_safe(rendered.subject)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    # Opaque ids (no personal data) so support staff and tests can tie a received
    # email back to its journey and step.
    message["X-Aftercare-Journey"] = journey_id
    message["X-Aftercare-Step"] = step
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


def domain_of(address: str) -> str:
    """The domain of an address such as ``Shop <care@shop.example>``."""
    bare = address.rsplit("<", 1)[-1].rstrip(">").strip()
    return bare.rsplit("@", 1)[-1] or "localhost"
