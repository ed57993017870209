"""Unsubscribe links: ``GET /u/{token}`` asks, ``POST /u/{token}`` unsubscribes.

A GET never changes anything: mail scanners and link previewers fetch every link
in a message, so the page only offers a button. The POST comes from that button
or straight from the customer's mail client (RFC 8058 one-click, body
``List-Unsubscribe=One-Click``), and records "no marketing on any channel" for
the customer the token was signed for.

Tokens are signed for the unsubscribe purpose and accepted for 60 days. A
forged, altered, truncated or other-purpose token gets a 400 page, an expired
one a 410 page; neither writes anything. Pages are generic: they show no
customer data and escape everything they print.

Each link unsubscribes once. Used again (a mail client repeating the POST, a
second click, a replay), it records nothing and says where the customer stands
now: "already unsubscribed" only while that is true; if marketing was allowed
again since (on the preference centre, through the shop), the page says on which
channels, and how to stop them.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from engine.customers.consent import (
    CONSENT_CHANNELS,
    SOURCE_UNSUBSCRIBE_PAGE,
    ConsentLedger,
    CustomerErased,
)
from engine.customers.consent import SOURCE_ONE_CLICK as SOURCE_ONE_CLICK
from engine.customers.pages.common import page_language, translator
from engine.platform.links.tokens import (
    ExpiredLink,
    InvalidLink,
    LinkClaims,
    LinkPurpose,
    LinkSigner,
)
from engine.platform.logging import get_logger
from engine.platform.translations import N_, Translate

log = get_logger(__name__)

# engine.platform.links.urls.unsubscribe_url makes these addresses.
UNSUBSCRIBE_PATH = "/u/{token}"
UNSUBSCRIBE_MAX_AGE = timedelta(days=60)
# What an unsubscribe link opts out of: marketing, on every channel.
UNSUBSCRIBE_CATEGORY = "marketing"
SOURCE_PAGE = SOURCE_UNSUBSCRIBE_PAGE
# RFC 8058's one-click body is 26 bytes and the page's button posts a few more;
# either, in any form encoding, fits many times over.
UNSUBSCRIBE_MAX_BODY_BYTES = 4 * 1024
# How the page names the channels (translated where shown).
CHANNEL_NAMES = {
    "email": N_("email"),
    "sms": N_("SMS"),
    "whatsapp": N_("WhatsApp"),
    "push": N_("push notifications"),
}

# RFC 8058: the mail client posts exactly this field and value.
ONE_CLICK_FIELD = "List-Unsubscribe"
ONE_CLICK_VALUE = "One-Click"
# The confirmation page's button posts this instead.
CONFIRM_FIELD = "confirm"
CONFIRM_VALUE = "unsubscribe"

# Our tokens are a few hundred characters; anything far longer is not one.
MAX_TOKEN_LENGTH = 2000

# Called with the customer id after an opt-out was recorded (the app passes
# JourneyDirectory.notify_preferences_changed); its result is ignored.
OptOutRecorded = Callable[[str], Awaitable[object]]

_HEADERS = {
    # The token is in the URL: keep it out of caches and other sites' Referer.
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}


class UnsubscribeLinks:
    def __init__(
        self,
        consent: ConsentLedger,
        signer: LinkSigner,
        on_consent_changed: OptOutRecorded | None = None,
        on_unsubscribed: Callable[[str], Awaitable[object]] | None = None,
    ) -> None:
        self._consent = consent
        self._signer = signer
        # Tells the customer's running journeys at once, so they skip their marketing.
        self._on_consent_changed = on_consent_changed
        # Credits the opt-out to the journey's message (engine.messaging.engagement);
        # given the journey id of the link, after the opt-out was recorded.
        self._on_unsubscribed = on_unsubscribed

    async def confirm_page(self, request: Request) -> Response:
        """GET: check the token and offer the button; changes nothing."""
        checked = self._verify(request)
        if isinstance(checked, Response):
            return checked
        _ = translator(request)
        return _page(
            request,
            200,
            _("Unsubscribe"),
            _(
                "Click the button to stop receiving marketing messages from us. "
                "You will still get messages about your orders."
            ),
            button=True,
        )

    async def unsubscribe(self, request: Request) -> Response:
        """POST: one-click (RFC 8058) or the page's button; records the opt-out once."""
        checked = self._verify(request)
        if isinstance(checked, Response):
            return checked
        _ = translator(request)
        async with request.form() as form:
            if form.get(ONE_CLICK_FIELD) == ONE_CLICK_VALUE:
                source = SOURCE_ONE_CLICK
            elif form.get(CONFIRM_FIELD) == CONFIRM_VALUE:
                source = SOURCE_PAGE
            else:
                log.warning("unsubscribe post without a one-click or confirm field")
                return _page(
                    request,
                    400,
                    _("Request not understood"),
                    _("This is not an unsubscribe request."),
                )
        erased = False
        try:
            recorded = await self._consent.record_once(
                request.path_params["token"],
                checked.customer_id,
                granted=False,
                channel=None,
                category=UNSUBSCRIBE_CATEGORY,
                source=source,
            )
        except CustomerErased:
            # Their data is gone and nothing is sent to them any more: say so
            # without writing anything that would bring a trace of them back.
            log.info("unsubscribe link of an erased customer", journey_id=checked.journey_id)
            recorded, erased = False, True
        if not recorded:
            # A used token is answered 200, not an error: RFC 8058 mail clients may
            # repeat the POST (retries, a second click). Nothing is written again,
            # so a replay cannot add audit rows or undo a later opt-in.
            log.info("unsubscribe link used again", journey_id=checked.journey_id)
            return await self._used_before(request, checked.customer_id, erased=erased)
        log.info("customer unsubscribed", journey_id=checked.journey_id, source=source)
        if self._on_unsubscribed is not None:
            try:
                await self._on_unsubscribed(checked.journey_id)
            except Exception:  # the opt-out stands; only the report misses it
                log.exception("unsubscribe not credited to a message")
        await self._tell_journeys(checked.customer_id)
        return _page(
            request,
            200,
            _("Unsubscribed"),
            _(
                "You will no longer receive marketing messages from us. "
                "You will still get messages about your orders."
            ),
        )

    async def _used_before(self, request: Request, customer_id: str, *, erased: bool) -> Response:
        """The page for a link used already: the customer's state now, which a later
        opt-in may have changed since the link was used."""
        # An erased customer has no consent left to read, and is sent nothing.
        receiving = (
            []
            if erased
            else [
                channel
                for channel in CONSENT_CHANNELS
                if await self._consent.allows(customer_id, channel, UNSUBSCRIBE_CATEGORY)
            ]
        )
        _ = translator(request)
        if not receiving:
            return _page(
                request,
                200,
                _("Already unsubscribed"),
                _("You are already unsubscribed from marketing messages."),
            )
        return _page(
            request,
            200,
            _("Link already used"),
            _(
                "You already unsubscribed with this link. Since then, our marketing messages "
                "were allowed again by %(channels)s, so they continue. Nothing was "
                "changed: to stop them, use the unsubscribe link in our most recent message."
            )
            % {"channels": _listed(receiving, _)},
        )

    async def _tell_journeys(self, customer_id: str) -> None:
        if self._on_consent_changed is None:
            return
        try:
            await self._on_consent_changed(customer_id)
        except Exception as err:  # any failure: the opt-out is recorded all the same
            # The send activity checks consent at the moment of sending, so a journey
            # that did not hear of it still sends nothing the customer refused.
            log.warning("journeys not told about an unsubscribe", error=str(err))

    def _verify(self, request: Request) -> LinkClaims | Response:
        token = request.path_params["token"]
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            return _invalid(request)
        try:
            return self._signer.verify(token, LinkPurpose.UNSUBSCRIBE, UNSUBSCRIBE_MAX_AGE)
        except ExpiredLink:
            log.info("expired unsubscribe link")
            _ = translator(request)
            return _page(
                request,
                410,
                _("Link expired"),
                _(
                    "This unsubscribe link has expired. "
                    "Please use the link in a more recent message from us."
                ),
            )
        except InvalidLink:
            log.warning("invalid unsubscribe link")
            return _invalid(request)


def _listed(channels: list[str], _: Translate) -> str:
    names = [
        _(CHANNEL_NAMES[channel]) if channel in CHANNEL_NAMES else channel for channel in channels
    ]
    if len(names) == 1:
        return names[0]
    return _("%(first)s and %(last)s") % {"first": ", ".join(names[:-1]), "last": names[-1]}


def _invalid(request: Request) -> Response:
    _ = translator(request)
    return _page(
        request,
        400,
        _("Invalid link"),
        _("This unsubscribe link is not valid. Nothing was changed."),
    )


def _page(
    request: Request, status: int, title: str, message: str, *, button: bool = False
) -> Response:
    # No action attribute: the form posts back to the URL the page was served at,
    # whatever prefix a proxy in front of us adds.
    _ = translator(request)
    form = (
        '<form method="post">'
        f'<input type="hidden" name="{CONFIRM_FIELD}" value="{CONFIRM_VALUE}">'
        f'<button type="submit">{html.escape(_("Unsubscribe"))}</button>'
        "</form>"
        if button
        else ""
    )
    body = (
        "<!doctype html>\n"
        f'<html lang="{page_language(request)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex, nofollow">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:32rem;margin:3rem auto;"
        "padding:0 1rem;line-height:1.5}button{font-size:1rem;padding:.5rem 1rem}</style>"
        "</head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>{form}"
        "</body></html>\n"
    )
    return HTMLResponse(body, status_code=status, headers=_HEADERS)
