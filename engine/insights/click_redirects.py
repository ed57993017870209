"""``GET /c/{token}``: a click on a tracked link, recorded, then redirected.

The token (``engine.platform.links.clicks``) names the ledger message, the link
and its target. A token we did not sign, or one altered in any part, gets an error
page (400), never a redirect; so does a genuine token whose target's host is not
allowed (any more) by ``AFTERCARE_CLICK_ALLOWED_HOSTS``: there is no open redirect
here. A token for a message the ledger does not know gets 404.

**Machines, not people.** Mail security scanners (Microsoft Defender Safe Links,
Mimecast, Proofpoint, Barracuda...) and link previews follow every link of a message
as it arrives. A click is recorded as ``automated`` (kept, but not counted as a
person's click by the report) when any of these holds:

- it is a ``HEAD`` request (browsers follow links with GET);
- it comes within ``scanner_window`` (10 s by default) of the message's hand-over to
  the provider, or of its delivery report, sooner than a person opens and reads it;
- its User-Agent is empty or names a known scanner, preview bot or HTTP library
  (``SCANNER_AGENTS``).

Scanners that fetch later with a browser's User-Agent cannot be told apart this
way: the report's click figures are an upper bound of people's clicks.

Recording never stands between a customer and their page: if the database fails,
the click is logged and lost, and the redirect still happens.

**Opens** (``GET /o/{token}``, served only with ``AFTERCARE_OPEN_TRACKING`` on): the
pixel of an HTML email, recorded as ``opened`` (by the same machine rule, less the
delivery window: mail-privacy proxies such as Apple's load every image on arrival
with an ordinary browser's User-Agent, so opens are inflated and the report shows
none). The answer is always the same transparent image.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from engine.messaging.engagement import record_engagement
from engine.messaging.ledger import LedgerEntry, MessageLedger
from engine.platform.database.tables import EngagementKind
from engine.platform.links.clicks import ClickSigner, host_allowed
from engine.platform.links.tokens import InvalidLink
from engine.platform.logging import get_logger

log = get_logger(__name__)

CLICK_PATH = "/c/{token}"
OPEN_PATH = "/o/{token}"
# A transparent 1x1 GIF.
PIXEL = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
DEFAULT_SCANNER_WINDOW = timedelta(seconds=10)
# Lower-case fragments of User-Agents that are not a person's browser.
SCANNER_AGENTS = (
    "barracuda",
    "mimecast",
    "proofpoint",
    "safelinks",
    "symantec",
    "forcepoint",
    "trendmicro",
    "sophos",
    "fortiguard",
    "microsoft office",
    "ms-office",
    "bingpreview",
    "googleimageproxy",
    "google-safety",
    "yahoomailproxy",
    "facebookexternalhit",
    "facebot",
    "twitterbot",
    "slackbot",
    "linkedinbot",
    "whatsapp",
    "telegrambot",
    "skypeuripreview",
    "discordbot",
    "applebot",
    "bot/",
    "spider",
    "crawler",
    "python-requests",
    "python-httpx",
    "aiohttp",
    "curl/",
    "wget/",
    "go-http-client",
    "okhttp",
    "java/",
    "headlesschrome",
)


def looks_automated(
    method: str,
    user_agent: str,
    entry: LedgerEntry,
    now: datetime,
    scanner_window: timedelta = DEFAULT_SCANNER_WINDOW,
) -> bool:
    """Whether a click is most likely a machine's (the rule in the module's docstring)."""
    if method.upper() == "HEAD":
        return True
    agent = user_agent.strip().lower()
    if not agent or any(fragment in agent for fragment in SCANNER_AGENTS):
        return True
    arrivals = [at for at in (entry.sent_at, entry.delivery_updated_at) if at is not None]
    return any(timedelta(0) <= now - at < scanner_window for at in arrivals)


class ClickRedirects:
    """The ``/c/{token}`` route."""

    def __init__(
        self,
        ledger: MessageLedger,
        signer: ClickSigner,
        allowed_hosts: tuple[str, ...],
        *,
        scanner_window: timedelta = DEFAULT_SCANNER_WINDOW,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._ledger = ledger
        self._signer = signer
        self._allowed = allowed_hosts
        self._scanner_window = scanner_window
        self._clock = clock or (lambda: datetime.now(UTC))

    async def follow(self, request: Request) -> Response:
        try:
            claims = self._signer.verify(str(request.path_params.get("token", "")))
        except InvalidLink:
            return _error_page(400, "This link is not valid.")
        if not host_allowed(claims.target, self._allowed):
            log.warning("click to a host not allowed refused", link=claims.link)
            return _error_page(400, "This link does not lead anywhere we can send you.")
        entry = await self._ledger.get(claims.message_key)
        if entry is None:
            return _error_page(404, "This link belongs to no message we know.")
        now = self._clock()
        automated = looks_automated(
            request.method,
            request.headers.get("user-agent", ""),
            entry,
            now,
            self._scanner_window,
        )
        try:
            await record_engagement(
                self._ledger.sessions,
                message_id=entry.message_id,
                kind=EngagementKind.CLICKED,
                occurred_at=now,
                automated=automated,
                detail=claims.link,
            )
        except Exception:  # the customer's page comes first; the click is lost
            log.exception("click not recorded", link=claims.link)
        return RedirectResponse(
            claims.target,
            status_code=302,
            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        )


class OpenPixels:
    """The ``/o/{token}`` route (opens, when enabled)."""

    def __init__(self, ledger: MessageLedger, signer: ClickSigner) -> None:
        self._ledger = ledger
        self._signer = signer

    async def opened(self, request: Request) -> Response:
        try:
            key = self._signer.verify_open(str(request.path_params.get("token", "")))
            entry = await self._ledger.get(key)
            if entry is not None:
                automated = looks_automated(
                    request.method,
                    request.headers.get("user-agent", ""),
                    entry,
                    datetime.now(UTC),
                    timedelta(0),
                )
                await record_engagement(
                    self._ledger.sessions,
                    message_id=entry.message_id,
                    kind=EngagementKind.OPENED,
                    automated=automated,
                )
        except InvalidLink:
            pass  # the same image: a pixel tells nobody whether its token was good
        except Exception:
            log.exception("open not recorded")
        return Response(
            PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store, private"}
        )


def _error_page(status: int, message: str) -> Response:
    body = (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>Link not valid</title><p>{escape(message)}</p></html>"
    )
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})
