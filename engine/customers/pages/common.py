"""What the customer-facing pages share: Jinja2 templates in the brand's look,
safe response headers, token checks and the same-origin check for form posts.

Pages never show customer data beyond what the customer chooses on them, and
every template is autoescaped. The signed token in the URL is the customer's
only credential, so responses are never cached and the token is never sent to
another site: the referrer policy keeps it on our own origin (same-origin, not
no-referrer, because browsers then send ``Origin: null`` with our own forms and
the same-origin check could no longer tell them from a foreign page).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from engine.platform.brand import Brand
from engine.platform.links.tokens import (
    ExpiredLink,
    InvalidLink,
    LinkClaims,
    LinkPurpose,
    LinkSigner,
)
from engine.platform.links.urls import LANGUAGE_PARAM
from engine.platform.logging import get_logger
from engine.platform.translations import (
    N_,
    Translate,
    available_languages,
    choose_language,
    translations,
)

log = get_logger(__name__)

TEMPLATE_DIR = Path(__file__).parent / "templates"
# The customer-facing texts' gettext catalogs (babel.cfg, docs/localisation.md).
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locales"
LANGUAGES = available_languages(LOCALE_DIR)

# What a link page says about a link it cannot act on, per kind of link: whole
# sentences, because languages inflect "this ... link" differently.
_EXPIRED = {
    LinkPurpose.UNSUBSCRIBE: N_(
        "This unsubscribe link has expired. Please use the link in a more recent "
        "message from us. Nothing was changed."
    ),
    LinkPurpose.PREFERENCES: N_(
        "This preferences link has expired. Please use the link in a more recent "
        "message from us. Nothing was changed."
    ),
    LinkPurpose.FEEDBACK: N_(
        "This feedback link has expired. Please use the link in a more recent "
        "message from us. Nothing was changed."
    ),
}
_INVALID = {
    LinkPurpose.UNSUBSCRIBE: N_("This unsubscribe link is not valid. Nothing was changed."),
    LinkPurpose.PREFERENCES: N_("This preferences link is not valid. Nothing was changed."),
    LinkPurpose.FEEDBACK: N_("This feedback link is not valid. Nothing was changed."),
}
# Our tokens are a few hundred characters; anything far longer is not one.
MAX_TOKEN_LENGTH = 2000
# The hidden form field that repeats the token (it must equal the one in the path).
TOKEN_FIELD = "token"

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}


def page_language(request: Request) -> str:
    """The language a page answers in: the one its link names (``?lang=``, the
    language of the message that carried the link), else the browser's most
    wanted one we have (``Accept-Language``), else English."""
    return choose_language(
        LANGUAGES,
        asked=request.query_params.get(LANGUAGE_PARAM),
        accept_language=request.headers.get("accept-language", ""),
    )


def translator(request: Request) -> Translate:
    """``gettext`` in the request's page language."""
    return translations(LOCALE_DIR, page_language(request)).gettext


class Pages:
    """Renders the page templates for one brand, in every language we have."""

    def __init__(self, brand: Brand) -> None:
        self._brand = brand
        self._environments = {language: _environment(language) for language in LANGUAGES}

    @property
    def brand(self) -> Brand:
        return self._brand

    def render(
        self, request: Request, template: str, status: int = 200, **variables: Any
    ) -> Response:
        """``template`` in the request's language (``_`` in it translates)."""
        language = page_language(request)
        page = (
            self._environments[language]
            .get_template(template)
            .render(brand=self._brand, lang=language, **variables)
        )
        return HTMLResponse(page, status_code=status, headers=PAGE_HEADERS)

    def message(self, request: Request, status: int, title: str, text: str) -> Response:
        """A page with a heading and one paragraph (confirmations and errors); the
        caller translates ``title`` and ``text``."""
        return self.render(request, "message.html.j2", status, title=title, text=text)


def _environment(language: str) -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    # newstyle: ``_("... %(name)s", name=value)`` formats and escapes like the rest.
    environment.install_gettext_translations(  # type: ignore[attr-defined]
        translations(LOCALE_DIR, language), newstyle=True
    )
    return environment


class SameOrigin:
    """Whether a form post comes from one of our own pages.

    A browser says where a post comes from in ``Sec-Fetch-Site`` and ``Origin``;
    a post from another site is refused. A client that sends neither (curl, an
    old browser) is not a browser being tricked by another site, and still has
    to present the signed token in the form, which a foreign page cannot know.
    """

    def __init__(self, public_base_url: str) -> None:
        parts = urlsplit(public_base_url)
        self._origin = f"{parts.scheme}://{parts.netloc}".lower()

    @property
    def origin(self) -> str:
        return self._origin

    def allows(self, request: Request) -> bool:
        site = request.headers.get("sec-fetch-site")
        if site is not None and site.lower() not in ("same-origin", "none"):
            return False
        origin = request.headers.get("origin")
        return origin is None or origin.rstrip("/").lower() == self._origin


def verify_token(
    signer: LinkSigner,
    pages: Pages,
    request: Request,
    purpose: LinkPurpose,
    max_age: timedelta,
) -> LinkClaims | Response:
    """The path token's claims, or the 400 / 410 page to answer with (nothing changes)."""
    token = request.path_params.get("token")
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        return invalid_link(pages, request, purpose)
    try:
        return signer.verify(token, purpose, max_age)
    except ExpiredLink:
        log.info("expired link", purpose=purpose.value)
        _ = translator(request)
        return pages.message(request, 410, _("Link expired"), _(_EXPIRED[purpose]))
    except InvalidLink:
        log.warning("invalid link", purpose=purpose.value)
        return invalid_link(pages, request, purpose)


def invalid_link(pages: Pages, request: Request, purpose: LinkPurpose) -> Response:
    _ = translator(request)
    return pages.message(request, 400, _("Invalid link"), _(_INVALID[purpose]))


def cross_site(pages: Pages, request: Request) -> Response:
    _ = translator(request)
    return pages.message(
        request,
        403,
        _("Request refused"),
        _(
            "This form was sent from another website. Nothing was changed. "
            "Please open the link from our message again."
        ),
    )


def form_token_matches(form: Mapping[str, Any], token: str) -> bool:
    return form.get(TOKEN_FIELD) == token


@dataclass(frozen=True)
class LinkGate:
    """The checks every page behind a signed link makes before it acts: the token
    in the path (purpose and age), and for a form post its origin and the token
    repeated in the form. Each answers with the page to show, or lets the call on."""

    signer: LinkSigner
    pages: Pages
    same_origin: SameOrigin
    purpose: LinkPurpose
    max_age: timedelta
    # How the logs name the page.
    what: str

    def claims(self, request: Request) -> LinkClaims | Response:
        """The path token's claims, or the 400 / 410 page to answer with."""
        return verify_token(self.signer, self.pages, request, self.purpose, self.max_age)

    def post_claims(self, request: Request) -> LinkClaims | Response:
        """As :meth:`claims`, and a post from another site is refused (403)."""
        claims = self.claims(request)
        if isinstance(claims, Response):
            return claims
        if not self.same_origin.allows(request):
            log.warning("form from another site refused", page=self.what)
            return cross_site(self.pages, request)
        return claims

    def form_refusal(
        self, request: Request, form: Mapping[str, Any], token: str
    ) -> Response | None:
        """The 400 page when the form does not repeat the path's token, else None."""
        if form_token_matches(form, token):
            return None
        log.warning("form without its token", page=self.what)
        return invalid_link(self.pages, request, self.purpose)
