"""The inbound SMTP endpoint for bounces and complaints (aiosmtpd).

Mail to the bounce address (``AFTERCARE_BOUNCE_ADDRESS``; each email's envelope
sender is its VERP form) and to the feedback-loop address a mailbox provider
sends complaints to is routed here by the deployment's MX
(``AFTERCARE_BOUNCE_SMTP_HOST`` / ``_PORT``). Each message is handed to
:class:`~engine.customers.bounces_and_complaints.MailReports` with the addresses it
was delivered to, which carry the VERP token.

The conversation's answers: 250 once a message is taken, whatever it turned out
to be (a report about no message of ours, an auto-reply: logged and ignored, a
bounce of a bounce would help nobody); 451 when applying it failed (the database
is down), so the sending server tries again later; 552 for a message over
``MAX_REPORT_BYTES``. The endpoint takes mail from anyone who can reach it, so it
should be reachable only from the deployment's own mail servers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from engine.customers.bounces_and_complaints import MailReports
from engine.messaging.mail_reports import MAX_REPORT_BYTES
from engine.platform.logging import get_logger

log = get_logger(__name__)


class _ReportHandler:
    """aiosmtpd's handler: each accepted message goes to the reports."""

    def __init__(self, reports: MailReports) -> None:
        self._reports = reports

    async def handle_DATA(  # noqa: N802 (aiosmtpd calls it by this name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        try:
            outcome = await self._reports.handle(content, list(envelope.rcpt_tos))
        except Exception as err:  # any failure: the sender keeps the report and retries
            log.warning("mail report not applied; sender asked to retry", error=str(err))
            return "451 4.3.0 Report not processed, try again later"
        log.debug("mail report taken", outcome=outcome.value)
        return "250 2.0.0 Report accepted"


class BounceMailbox:
    """The SMTP server, on the current event loop."""

    def __init__(self, reports: MailReports, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._handler = _ReportHandler(reports)
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        def protocol() -> Any:
            return SMTP(
                self._handler,
                hostname="aftercare-bounces",
                ident="Aftercare bounce endpoint",
                data_size_limit=MAX_REPORT_BYTES,
            )

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(protocol, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("bounce endpoint listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> BounceMailbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
