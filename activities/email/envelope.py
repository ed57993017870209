"""One SMTP transaction with our own envelope sender and, when configured, DKIM.

aiosmtplib's ``send_message`` flattens the message itself, drawing a fresh MIME
boundary and choosing the body's transfer encoding by what the server offers: a
signature made beforehand would not match what goes out. Here the message is
flattened once, with the same choices ``send_message`` makes (SMTPUTF8 for a
non-ASCII address, 8-bit bodies only to a server announcing 8BITMIME), signed,
and exactly those bytes are sent with ``sendmail``.
"""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib
from aiosmtplib.email import extract_recipients, extract_sender, flatten_message

from activities.email.dkim_signing import DkimSigner


async def send_as(
    connection: aiosmtplib.SMTP,
    message: EmailMessage,
    *,
    envelope_from: str | None,
    dkim: DkimSigner | None,
) -> str:
    """Send ``message`` to its To/Cc recipients over the connected ``connection``
    with MAIL FROM ``envelope_from`` (None: the From address), signed by ``dkim``
    (None: unsigned); the server's reply to the DATA."""
    sender = envelope_from or extract_sender(message)
    if not sender:
        raise ValueError("no envelope sender and no From header")
    recipients = extract_recipients(message)
    if not recipients:
        raise ValueError("no recipient headers in the message")
    options: list[str] = []
    utf8 = not (sender + "".join(recipients)).isascii()
    if utf8:
        if not connection.supports_extension("smtputf8"):
            raise aiosmtplib.SMTPNotSupported(
                "an address is not ASCII, and the server does not support SMTPUTF8"
            )
        options.append("SMTPUTF8")
    if connection.supports_extension("8bitmime"):
        options.append("BODY=8BITMIME")
        cte_type = "8bit"
    else:
        cte_type = "7bit"
    content = flatten_message(message, utf8=utf8, cte_type=cte_type)
    if dkim is not None:
        content = dkim.sign(content)
    _, reply = await connection.sendmail(sender, recipients, content, mail_options=options)
    return reply
