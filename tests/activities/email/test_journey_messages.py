"""The later messages of the journey say what they are about: the right item, date,
address, recommendations, feedback and codes, and nothing they should not."""

from __future__ import annotations

import pytest

from activities.email.rendering import EmailRenderer
from activities.rendering.formatting import SUPPORTED_LOCALES
from tests.activities.email.samples import (
    BRAND,
    ITEM_NAMES,
    NEW_ADDRESS,
    REFERRAL_CODE,
    SHOP,
    buttons,
    cta_tag,
    make_order,
    render_full,
    word_count,
)
from workflows.orders import Feedback, LineItem, Recommendation

# Messages added for the complete journey; each must stay short enough for a phone.
JOURNEY_MESSAGES = (
    "shipping_delay",
    "product_education",
    "feedback_reminder",
    "detractor_follow_up",
    "passive_thanks",
    "review_request",
    "cross_sell",
    "replenishment_reminder",
    "return_confirmation",
    "refund_confirmation",
    "address_changed",
)


def message_part(text: str, html: str) -> tuple[str, str]:
    """Text and HTML without the shared footer (which always names help and support)."""
    return text.split("\n--\n")[0], html.split('class="footer"')[0]


@pytest.fixture(scope="module")
def renderer() -> EmailRenderer:
    return EmailRenderer(BRAND)


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("template", JOURNEY_MESSAGES)
def test_journey_messages_are_brief(renderer: EmailRenderer, template: str, locale: str) -> None:
    email = render_full(renderer, template, make_order(locale=locale))
    # The whole text, footer included.
    assert word_count(email.text) < 120


# --- replenishment ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "subject", "run_out"),
    [
        ("en", "Running low on Espresso beans?", "April 15, 2025"),
        ("de", "Wird „Espresso beans“ bald knapp?", "15. April 2025"),
        ("de-AT", "Wird „Espresso beans“ bald knapp?", "15. April 2025"),
        ("fr", "Espresso beans\xa0: bientôt à court\xa0?", "15 avril 2025"),
        ("es", "¿Toca reponer Espresso beans?", "15 de abril de 2025"),
    ],
)
def test_replenishment_names_the_focus_item_and_a_local_run_out_date(
    renderer: EmailRenderer, locale: str, subject: str, run_out: str
) -> None:
    email = render_full(renderer, "replenishment_reminder", make_order(locale=locale))
    assert email.subject == subject
    # 22:30 UTC on 14 April is 15 April for a customer in Berlin.
    assert run_out in email.preheader
    for body in (email.text, email.html):
        assert ITEM_NAMES[1] in body
        assert ITEM_NAMES[0] not in body
        assert run_out in body
        # Not the UTC calendar date.
        assert "April 14" not in body
        assert "14. April" not in body
        assert "14 avril" not in body
        assert "14 de abril" not in body
    cta_tag(email.html, f"{SHOP}/reorder/ES-1")


def test_replenishment_without_a_run_out_date(renderer: EmailRenderer) -> None:
    email = render_full(renderer, "replenishment_reminder", make_order(), run_out_at=None)
    assert "2025" not in email.text
    assert "running low" in email.text
    assert ITEM_NAMES[1] in email.text


def test_replenishment_uses_the_first_item_without_a_focus_item(
    renderer: EmailRenderer,
) -> None:
    email = render_full(renderer, "replenishment_reminder", make_order(), focus_item=None)
    assert email.subject == f"Running low on {ITEM_NAMES[0]}?"
    cta_tag(email.html, f"{SHOP}/reorder/SH-1")


# --- product education -------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "tip"),
    [
        ("coffee", "Grind just before brewing"),
        (" Coffee ", "Grind just before brewing"),
        ("skincare", "small patch of skin"),
        ("apparel", "care label"),
        ("equipment", "quick-start instructions"),
        ("garden", "Store it somewhere dry"),
        ("", "Store it somewhere dry"),
    ],
)
def test_product_education_gives_a_tip_for_the_category(
    renderer: EmailRenderer, category: str, tip: str
) -> None:
    item = LineItem(sku="P-1", name="Thing", quantity=1, unit_price_minor=100, category=category)
    email = render_full(renderer, "product_education", make_order(), focus_item=item)
    assert email.subject == "Getting the most from your Thing"
    assert tip in email.text
    assert tip in email.html
    assert "<ul" in email.html


def test_product_education_defaults_to_the_first_item(renderer: EmailRenderer) -> None:
    email = render_full(renderer, "product_education", make_order(locale="de"), focus_item=None)
    assert ITEM_NAMES[0] in email.subject
    assert "Pflegeetikett" in email.text  # the shirt's apparel tip
    assert "Anleitung lesen</a>" in email.html
    cta_tag(email.html, f"{SHOP}/guides/SH-1")


# --- cross-sell ----------------------------------------------------------------------


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_cross_sell_shows_up_to_three_recommendations_as_cards(
    renderer: EmailRenderer, locale: str
) -> None:
    email = render_full(renderer, "cross_sell", make_order(locale=locale))
    for body in (email.text, email.html):
        for name in ("Burr grinder", "Milk frother", "Travel cup"):
            assert name in body
        assert "Descaler" not in body
    assert email.html.count('class="card"') == 3
    assert [tag.split('href="')[1].split('"')[0] for tag in buttons(email.html)] == [
        "https://shop.test/p/burr-grinder",
        f"{SHOP}/products/FR-1",
        "https://shop.test/p/travel-cup",
    ]
    label = {"en": "View", "de": "Ansehen", "fr": "Voir", "es": "Ver"}[locale]
    assert email.html.count(f">{label}</a>") == 3


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_cross_sell_without_recommendations_points_to_the_shop(
    renderer: EmailRenderer, locale: str
) -> None:
    email = render_full(renderer, "cross_sell", make_order(locale=locale, recommendations=[]))
    assert 'class="card"' not in email.html
    assert len(buttons(email.html)) == 1
    cta_tag(email.html, SHOP)
    assert f": {SHOP}\n" in email.text


def test_cross_sell_skips_nameless_recommendations_and_unsafe_urls(
    renderer: EmailRenderer,
) -> None:
    recommendations = [
        Recommendation(sku="N-1", name="  "),
        Recommendation(sku="J-1", name="Grinder", url="javascript:alert(1)"),
    ]
    email = render_full(renderer, "cross_sell", make_order(recommendations=recommendations))
    assert email.html.count('class="card"') == 1
    assert "javascript:" not in email.html
    assert "javascript:" not in email.text
    cta_tag(email.html, f"{SHOP}/products/J-1")
    only_nameless = make_order(recommendations=[Recommendation(sku="N-1", name="")])
    fallback = render_full(renderer, "cross_sell", only_nameless)
    assert 'class="card"' not in fallback.html
    cta_tag(fallback.html, SHOP)


# --- returns and refunds -------------------------------------------------------------


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("template", ["return_confirmation", "refund_confirmation"])
def test_partial_return_and_refund_name_only_those_items(
    renderer: EmailRenderer, template: str, locale: str
) -> None:
    email = render_full(renderer, template, make_order(locale=locale), skus=("ES-1",))
    for body in (email.text, email.html):
        assert ITEM_NAMES[1] in body
        assert ITEM_NAMES[0] not in body
        # An amount for some items is not the order total.
        assert "90.20" not in body
        assert "90,20" not in body


@pytest.mark.parametrize("template", ["return_confirmation", "refund_confirmation"])
def test_whole_order_return_and_refund_name_every_item(
    renderer: EmailRenderer, template: str
) -> None:
    # Naming every SKU is the whole order too.
    for skus in ((), ("SH-1", "ES-1")):
        email = render_full(renderer, template, make_order(), skus=skus)
        for body in (email.text, email.html):
            for name in ITEM_NAMES:
                assert name in body


def test_whole_order_refund_shows_the_order_total(renderer: EmailRenderer) -> None:
    email = render_full(renderer, "refund_confirmation", make_order())
    assert "Refund amount: €90.20" in email.text
    assert "€90.20" in email.html
    german = render_full(renderer, "refund_confirmation", make_order(locale="de"))
    assert "Erstattungsbetrag: 90,20\xa0€" in german.text


def test_return_confirmation_explains_next_steps(renderer: EmailRenderer) -> None:
    email = render_full(renderer, "return_confirmation", make_order(), skus=("ES-1",))
    assert "What happens next:" in email.text
    assert "<ol" in email.html
    assert f"{SHOP}/help" in message_part(email.text, email.html)[0]


@pytest.mark.parametrize("template", ["return_confirmation", "refund_confirmation"])
def test_unknown_skus_name_no_items_and_leave_no_empty_list(
    renderer: EmailRenderer, template: str
) -> None:
    email = render_full(renderer, template, make_order(), skus=("NOPE",))
    for name in ITEM_NAMES:
        assert name not in email.text
    assert "items from your order A-10023." in email.text
    assert 'class="items"' not in email.html


# --- address -------------------------------------------------------------------------


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_address_changed_confirms_the_new_address(renderer: EmailRenderer, locale: str) -> None:
    email = render_full(renderer, "address_changed", make_order(locale=locale))
    for body in (email.text, email.html):
        assert NEW_ADDRESS.line1 in body
        assert "10439 Berlin" in body
        assert "Kastanienallee" not in body
    country = {"en": "Germany", "de": "Deutschland", "fr": "Allemagne", "es": "Alemania"}[locale]
    assert country in email.text
    cta_tag(email.html, f"{SHOP}/help")


def test_address_changed_falls_back_to_the_shipping_address(renderer: EmailRenderer) -> None:
    email = render_full(renderer, "address_changed", make_order(), new_address=None)
    assert "Kastanienallee 12" in email.text
    assert "3rd floor" in email.text


# --- feedback ------------------------------------------------------------------------


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_detractor_follow_up_is_service_only(renderer: EmailRenderer, locale: str) -> None:
    email = render_full(renderer, "detractor_follow_up", make_order(locale=locale))
    assert BRAND.support_email in message_part(email.text, email.html)[0]
    assert BRAND.support_email in message_part(email.text, email.html)[1]
    for body in (email.text, email.html):
        # No marketing: no products, reviews, referrals, reorders or guides.
        for unwanted in (
            "/review",
            "/referral",
            "/products/",
            "/reorder",
            "/guides",
            REFERRAL_CODE,
            "Burr grinder",
            ITEM_NAMES[0],
        ):
            assert unwanted not in body
        # The comment is acknowledged, never quoted back.
        assert "crushed" not in body
    assert buttons(email.html) == [cta_tag(email.html, f"{SHOP}/help")]
    acknowledgement = {
        "en": "tell us what went wrong",
        "de": "uns zu schildern, was schiefgelaufen ist",
        "fr": "nous expliquer ce qui n\u2019a pas fonctionné",
        "es": "contarnos qué salió mal",
    }[locale]
    assert acknowledgement in email.text


def test_detractor_follow_up_without_a_comment_does_not_mention_one(
    renderer: EmailRenderer,
) -> None:
    for feedback in (Feedback(score=2), None):
        email = render_full(renderer, "detractor_follow_up", make_order(), feedback=feedback)
        assert "what went wrong" not in email.text
        assert "personally" in email.text


@pytest.mark.parametrize(
    ("locale", "score_text"),
    [
        ("en", "with a 8 out of 10"),
        ("de", "mit 8 von 10 Punkten"),
        ("fr", "avec une note de 8 sur 10"),
        ("es", "con un 8 sobre 10"),
    ],
)
def test_passive_thanks_asks_what_would_make_it_a_ten(
    renderer: EmailRenderer, locale: str, score_text: str
) -> None:
    email = render_full(
        renderer, "passive_thanks", make_order(locale=locale), feedback=Feedback(score=8)
    )
    assert score_text in email.text
    assert "10" in email.preheader
    cta_tag(email.html, f"{SHOP}/orders/A-10023/feedback")


def test_passive_thanks_without_feedback_leaves_out_the_score(renderer: EmailRenderer) -> None:
    email = render_full(renderer, "passive_thanks", make_order(), feedback=None)
    assert "out of 10" not in email.text
    assert "made it a 10" in email.text


def test_feedback_reminder_is_a_single_polite_nudge(renderer: EmailRenderer) -> None:
    email = render_full(renderer, "feedback_reminder", make_order())
    assert "only reminder" in email.text
    assert "Already answered?" in email.text
    assert len(buttons(email.html)) == 1
    cta_tag(email.html, f"{SHOP}/orders/A-10023/feedback")


# --- review and referral -------------------------------------------------------------


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_review_request_carries_the_referral_code(renderer: EmailRenderer, locale: str) -> None:
    email = render_full(renderer, "review_request", make_order(locale=locale))
    assert REFERRAL_CODE in email.text
    assert f"<strong>{REFERRAL_CODE}</strong>" in email.html
    hrefs = [tag.split('href="')[1].split('"')[0] for tag in buttons(email.html)]
    assert hrefs == [f"{SHOP}/orders/A-10023/review", f"{SHOP}/referral?code={REFERRAL_CODE}"]


def test_review_request_without_a_code_has_no_referral_section(
    renderer: EmailRenderer,
) -> None:
    email = render_full(renderer, "review_request", make_order(), referral_code="")
    assert "/referral" not in email.html
    assert "/referral" not in email.text
    assert "friends" not in email.text
    cta_tag(email.html, f"{SHOP}/orders/A-10023/review")


# --- shipping delay ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "apology", "no_action"),
    [
        ("en", "We're sorry", "There's nothing you need to do."),
        ("de", "es tut uns leid", "Sie müssen nichts weiter tun."),
        ("fr", "Nous sommes désolés", "Vous n\u2019avez rien à faire."),
        ("es", "Lo sentimos", "No tienes que hacer nada."),
    ],
)
def test_shipping_delay_apologises_and_needs_no_action(
    renderer: EmailRenderer, locale: str, apology: str, no_action: str
) -> None:
    email = render_full(renderer, "shipping_delay", make_order(locale=locale))
    for body in (email.text, email.html):
        assert apology in body
        assert no_action in body
    cta_tag(email.html, f"{SHOP}/help")


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("template", ["return_confirmation", "refund_confirmation"])
def test_the_items_of_a_return_or_refund_start_on_a_line_of_their_own(
    renderer: EmailRenderer, template: str, locale: str
) -> None:
    email = render_full(renderer, template, make_order(locale=locale), skus=("ES-1",))
    assert "\n- 1 x Espresso beans\n" in email.text
    assert ":- " not in email.text
