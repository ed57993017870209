"""Emails point at the customer pages of the HTTP app: the footer at the preference
centre (``/p/``) next to the unsubscribe link, feedback requests at the feedback
page with each score of the 0-10 scale picked (``/f/...?score=N``)."""

from __future__ import annotations

import re

import pytest

from activities.email.rendering import EmailRenderer
from activities.rendering.context import MessageContext
from activities.rendering.formatting import SUPPORTED_LOCALES
from engine.platform.brand import default_brand
from tests.activities.email.samples import make_order

SHOP = "https://shop.test"
LINKS = {
    "preferences": "https://care.shop.example/p/pref-token",
    "unsubscribe": "https://care.shop.example/u/unsub-token",
    "feedback": "https://care.shop.example/f/fb-token",
}


@pytest.fixture(scope="module")
def renderer() -> EmailRenderer:
    return EmailRenderer(default_brand(SHOP))


def hrefs(html: str) -> list[str]:
    return [href.replace("&amp;", "&") for href in re.findall(r'href="([^"]+)"', html)]


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("template", ["feedback_request", "feedback_reminder"])
def test_feedback_emails_offer_every_score_as_a_link(
    renderer: EmailRenderer, template: str, locale: str
) -> None:
    email = renderer.render(template, MessageContext(order=make_order(locale=locale), links=LINKS))

    scored = [href for href in hrefs(email.html) if "?score=" in href]
    assert scored == [f"{LINKS['feedback']}?score={score}" for score in range(11)]
    # The plain button (no score picked) stays, and the text version links the page.
    assert LINKS["feedback"] in hrefs(email.html)
    assert LINKS["feedback"] in email.text


def test_a_feedback_link_that_has_a_query_gets_the_score_appended() -> None:
    renderer = EmailRenderer(default_brand(SHOP))
    links = {**LINKS, "feedback": "https://shop.test/rate?order=A-1"}
    email = renderer.render("feedback_request", MessageContext(order=make_order(), links=links))
    assert "https://shop.test/rate?order=A-1&score=10" in hrefs(email.html)


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("template", ["order_confirmation", "cross_sell", "thank_you"])
def test_the_footer_links_the_preference_centre_and_unsubscribe(
    renderer: EmailRenderer, template: str, locale: str
) -> None:
    email = renderer.render(template, MessageContext(order=make_order(locale=locale), links=LINKS))

    assert LINKS["preferences"] in hrefs(email.html)
    assert LINKS["unsubscribe"] in hrefs(email.html)
    assert LINKS["preferences"] in email.text


def test_without_signed_links_the_footer_falls_back_to_the_shop(renderer: EmailRenderer) -> None:
    email = renderer.render("order_confirmation", MessageContext(order=make_order()))
    assert f"{SHOP}/account/email-preferences" in hrefs(email.html)
