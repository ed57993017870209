"""The preference centre: ``GET /p/{token}`` shows, ``POST /p/{token}`` changes.

The page shows, for every channel (email, SMS, WhatsApp) and every category that
needs consent (relationship, feedback, marketing), whether the customer allows
it now; transactional messages are shown as always on. The form sends the whole
grid (a checked box is "allowed"); only cells that differ from the current
decision are recorded, each as one ``consent_events`` row with source
``preference_centre``, so the audit trail holds what the customer changed and
nothing else.

The link is signed for the preferences purpose and reusable until it expires
(60 days): customers come back to change their mind. GET changes nothing; a POST
must come from our own page (same-origin) and repeat the token in the form. A
bad form (unknown field, a value a checkbox never sends) is answered 400 naming
the field, and nothing is recorded.
"""

from __future__ import annotations

from datetime import timedelta

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from engine.customers.consent import SOURCE_PREFERENCE_CENTRE, ConsentLedger, CustomerErased
from engine.customers.consent_changes import ConsentChanged, tell_journeys
from engine.customers.pages.common import TOKEN_FIELD, LinkGate, Pages, SameOrigin, translator
from engine.platform.links.tokens import LinkPurpose, LinkSigner
from engine.platform.logging import get_logger
from engine.platform.translations import N_, Translate

log = get_logger(__name__)

# engine.platform.links.urls.preferences_url makes these addresses.
PREFERENCES_PATH = "/p/{token}"
PREFERENCES_MAX_AGE = timedelta(days=60)
SOURCE = SOURCE_PREFERENCE_CENTRE
# The form is the token (at most 2,000 characters) and nine checkboxes: about
# 2.5 KB url-encoded, under 4 KB as multipart. 16 KiB is room enough.
PREFERENCES_MAX_BODY_BYTES = 16 * 1024
CHANNELS = ("email", "sms", "whatsapp")
CATEGORIES = ("relationship", "feedback", "marketing")
CHECKED = "on"  # what a checked HTML checkbox without a value attribute sends

# Shown translated (the template's ``_``).
CHANNEL_LABELS = {"email": N_("Email"), "sms": N_("SMS"), "whatsapp": N_("WhatsApp")}
CATEGORY_LABELS = {
    "relationship": (N_("Thank-yous and tips"), N_("after delivery, about what you bought")),
    "feedback": (N_("Feedback requests"), N_("how did we do?")),
    "marketing": (
        N_("Offers and reminders"),
        N_("recommendations, reorder reminders, reviews"),
    ),
}

Grid = dict[tuple[str, str], bool]


class PreferenceCentre:
    def __init__(
        self,
        consent: ConsentLedger,
        signer: LinkSigner,
        pages: Pages,
        same_origin: SameOrigin,
        on_consent_changed: ConsentChanged | None = None,
    ) -> None:
        self._consent = consent
        self._pages = pages
        self._gate = LinkGate(
            signer,
            pages,
            same_origin,
            LinkPurpose.PREFERENCES,
            PREFERENCES_MAX_AGE,
            what="preferences",
        )
        self._on_consent_changed = on_consent_changed

    async def show(self, request: Request) -> Response:
        """GET: the customer's current choices; changes nothing."""
        claims = self._gate.claims(request)
        if isinstance(claims, Response):
            return claims
        return self._form(request, await self._current(claims.customer_id))

    async def save(self, request: Request) -> Response:
        """POST: record every cell the customer switched, then tell their journeys."""
        claims = self._gate.post_claims(request)
        if isinstance(claims, Response):
            return claims
        token: str = request.path_params["token"]
        current = await self._current(claims.customer_id)
        _ = translator(request)
        async with request.form() as form:
            if (refusal := self._gate.form_refusal(request, form, token)) is not None:
                return refusal
            wanted = _wanted(form, _)
        if isinstance(wanted, str):
            return self._form(request, current, status=400, error=wanted)

        changes = [(cell, allowed) for cell, allowed in wanted.items() if current[cell] != allowed]
        try:
            for (channel, category), allowed in changes:
                await self._consent.record(
                    claims.customer_id,
                    granted=allowed,
                    channel=channel,
                    category=category,
                    source=SOURCE,
                )
        except CustomerErased:
            # Checked before the first write, so nothing was recorded about them.
            log.info("preferences link of an erased customer", journey_id=claims.journey_id)
            return self._pages.message(
                request,
                410,
                _("Link no longer valid"),
                _("This link no longer works. Nothing was changed."),
            )
        if not changes:
            return self._form(
                request, current, notice=_("Nothing changed: these were your choices.")
            )
        log.info("preferences changed", journey_id=claims.journey_id, changes=len(changes))
        await tell_journeys(self._on_consent_changed, claims.customer_id, SOURCE)
        return self._form(request, wanted, notice=_("Saved. Your choices apply from now on."))

    async def _current(self, customer_id: str) -> Grid:
        # ``allows`` is the rule sends are checked by, so the page shows exactly
        # what the next send will decide.
        return {
            (channel, category): await self._consent.allows(customer_id, channel, category)
            for channel in CHANNELS
            for category in CATEGORIES
        }

    def _form(
        self,
        request: Request,
        grid: Grid,
        *,
        status: int = 200,
        notice: str = "",
        error: str = "",
    ) -> Response:
        return self._pages.render(
            request,
            "preferences.html.j2",
            status,
            token=request.path_params["token"],
            token_field=TOKEN_FIELD,
            grid=grid,
            channels=CHANNELS,
            categories=CATEGORIES,
            channel_labels=CHANNEL_LABELS,
            category_labels=CATEGORY_LABELS,
            notice=notice,
            error=error,
        )


def _wanted(form: FormData, _: Translate) -> Grid | str:
    """The grid the form asks for, or what is wrong with it (naming the field)."""
    cells = {
        f"{channel}.{category}": (channel, category)
        for channel in CHANNELS
        for category in CATEGORIES
    }
    checked: set[tuple[str, str]] = set()
    for name, value in form.multi_items():
        if name == TOKEN_FIELD:
            continue
        cell = cells.get(name)
        if cell is None:
            return _("Unknown field %(name)s. Nothing was changed.") % {"name": repr(name[:60])}
        if value != CHECKED:
            return _("Field %(name)s must be %(value)s when checked. Nothing was changed.") % {
                "name": repr(name),
                "value": repr(CHECKED),
            }
        checked.add(cell)
    return {cell: cell in checked for cell in cells.values()}
