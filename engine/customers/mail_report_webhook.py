"""``POST /mail-reports``: bounces and complaints posted by an email provider.

Providers that receive the reports for us (their bounce and feedback-loop
addresses) post each one as it came, the raw RFC 5322 message as the body
(``message/rfc822``, any content type is taken). The caller authenticates with
``Authorization: Bearer <AFTERCARE_MAIL_FEEDBACK_TOKEN>``; without the setting the
route is not served at all.

Answers: 204 once the report is applied, and also for a report about no message
of ours (logged and ignored: the provider can do nothing about it, and a retry
would change nothing); 400 for a body that is no DSN or ARF report; 401 for a
missing or wrong token (before the body is read); 413 for a body over
``MAIL_REPORT_MAX_BODY_BYTES`` (refused unread by the route).
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from engine.customers.bounces_and_complaints import MailReports, ReportOutcome
from engine.messaging.mail_reports import MAX_REPORT_BYTES
from engine.platform.logging import get_logger

log = get_logger(__name__)

MAIL_REPORTS_PATH = "/mail-reports"
MAIL_REPORT_MAX_BODY_BYTES = MAX_REPORT_BYTES
_BEARER = "bearer "


class MailReportWebhook:
    def __init__(self, reports: MailReports, token: str) -> None:
        if not token:
            raise ValueError("the mail report webhook needs a token")
        self._reports = reports
        self._token = token.encode()

    async def receive(self, request: Request) -> Response:
        if not self._authorised(request.headers.get("authorization", "")):
            log.warning("mail report refused: missing or wrong token")
            return PlainTextResponse(
                "unauthorized", status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        outcome = await self._reports.handle(await request.body())
        if outcome is ReportOutcome.NOT_A_REPORT:
            return PlainTextResponse(
                "the body is no delivery status notification (RFC 3464) "
                "or feedback report (RFC 5965)",
                status_code=400,
            )
        return Response(status_code=204, headers={"X-Mail-Report-Outcome": outcome.value})

    def _authorised(self, header: str) -> bool:
        if header[: len(_BEARER)].lower() != _BEARER:
            return False
        presented = header[len(_BEARER) :].strip().encode()
        return hmac.compare_digest(presented, self._token)
