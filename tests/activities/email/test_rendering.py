"""Every email in every locale renders, stays safe with hostile data, and keeps its promises."""

from __future__ import annotations

import html
import re
from dataclasses import replace

import pytest
from jinja2 import ChoiceLoader, DictLoader, TemplateNotFound, UndefinedError

from activities.email.rendering import TEMPLATE_DIR, TEMPLATE_NAMES, EmailRenderer, default_loader
from activities.rendering.context import MessageContext
from activities.rendering.formatting import SUPPORTED_LOCALES
from engine.platform.brand import default_brand
from tests.activities.email.samples import (
    BRAND,
    ITEM_NAMES,
    SHIPMENT,
    SHOP,
    cta_tag,
    full_context,
    make_order,
    render,
    render_full,
)
from workflows.orders import Address, LineItem, Recommendation

# Which of the order's items each message names, by position: every item, only
# the first (thank_you), only the item in focus (the last one in full_context),
# or none (messages about feedback, an address or other products).
ALL = (0, 1)
ITEMS_SHOWN: dict[str, tuple[int, ...]] = {
    "order_confirmation": ALL,
    "shipping_notice": ALL,
    "out_for_delivery": ALL,
    "delivered": ALL,
    "order_cancelled": ALL,
    "thank_you": (0,),
    "feedback_request": ALL,
    "feedback_reminder": (),
    "detractor_follow_up": (),
    "passive_thanks": (),
    "review_request": ALL,
    "shipping_delay": ALL,
    "address_changed": (),
    "product_education": (1,),
    "cross_sell": (),
    "replenishment_reminder": (1,),
    "return_confirmation": ALL,
    "refund_confirmation": ALL,
}


# A table with no rows, as an item list without items would leave behind.
EMPTY_TABLE = re.compile(r"<table\b[^>]*>\s*(?:<tbody>\s*</tbody>\s*)?</table>")


def test_every_template_says_which_items_it_names() -> None:
    assert set(ITEMS_SHOWN) == set(TEMPLATE_NAMES)
    assert len(TEMPLATE_NAMES) == len(set(TEMPLATE_NAMES))


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("template", TEMPLATE_NAMES)
def test_every_template_has_text_and_html_in_every_locale(template: str, locale: str) -> None:
    # Checked on disk: the renderer's English fallback would otherwise hide a gap.
    for extension in ("txt.j2", "html.j2"):
        assert (TEMPLATE_DIR / locale / f"{template}.{extension}").is_file()


@pytest.fixture(scope="module")
def renderer() -> EmailRenderer:
    return EmailRenderer(BRAND)


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("template", TEMPLATE_NAMES)
def test_every_template_renders_in_every_locale(
    renderer: EmailRenderer, template: str, locale: str
) -> None:
    email = render_full(renderer, template, make_order(locale=locale))

    assert email.subject
    assert "\n" not in email.subject
    assert "\r" not in email.subject
    assert email.preheader
    # Unescaped: the HTML serialiser writes a French no-break space as &nbsp;.
    assert email.preheader in html.unescape(email.html)
    for body in (email.text, email.html):
        assert "A-10023" in body
        for index in ITEMS_SHOWN[template]:
            assert ITEM_NAMES[index] in body
        for index in set(ALL) - set(ITEMS_SHOWN[template]):
            assert ITEM_NAMES[index] not in body
        assert "{{" not in body
        assert "{%" not in body
    assert f'<html lang="{locale}">' in email.html
    # The shared brand layout: logo, footer address, help link, mobile styles.
    assert BRAND.logo_url in email.html
    assert BRAND.footer_address in email.html
    assert f"{SHOP}/help" in email.html
    assert BRAND.footer_address in email.text
    assert "max-width: 600px" in email.html
    assert "@media only screen and (max-width: 620px)" in email.html


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("template", TEMPLATE_NAMES)
def test_every_template_renders_from_the_order_alone(
    renderer: EmailRenderer, template: str, locale: str
) -> None:
    # What existing callers pass: no shipment, focus item, feedback, dates or codes.
    order = make_order(locale=locale, discount_minor=0)
    email = renderer.render(template, MessageContext(order=order))
    assert "A-10023" in email.text
    assert "A-10023" in email.html
    assert email.preheader


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("template", TEMPLATE_NAMES)
def test_every_template_renders_an_order_without_items(
    renderer: EmailRenderer, template: str, locale: str
) -> None:
    order = replace(make_order(locale=locale), items=[], recommendations=[])
    email = renderer.render(template, MessageContext(order=order))
    assert email.subject
    assert email.preheader
    assert not EMPTY_TABLE.search(email.html)
    assert 'class="card"' not in email.html


@pytest.mark.parametrize(
    ("template", "link_key", "label"),
    [
        ("order_confirmation", "track_order", "Track your order"),
        ("shipping_notice", "track_order", "Track your parcel"),
        ("out_for_delivery", "track_order", "Track your parcel"),
        ("delivered", "help", "Get help"),
        ("order_cancelled", "help", "Contact us"),
        ("feedback_request", "feedback", "Rate your order"),
        ("feedback_reminder", "feedback", "Rate your order"),
        ("detractor_follow_up", "help", "Get help"),
        ("passive_thanks", "feedback", "Tell us"),
        ("review_request", "review", "Write a review"),
        ("review_request", "referral", "Invite friends"),
        ("shipping_delay", "help", "Get help"),
        ("address_changed", "help", "Contact us"),
        ("product_education", "guide", "Read the guide"),
        ("replenishment_reminder", "reorder", "Reorder"),
        ("return_confirmation", "order", "View your order"),
        ("refund_confirmation", "help", "Get help"),
    ],
)
def test_cta_is_an_inlined_button_to_the_given_link(
    renderer: EmailRenderer, template: str, link_key: str, label: str
) -> None:
    url = f"https://links.test/{link_key}"
    email = render_full(renderer, template, make_order(), links={link_key: url})
    tag = cta_tag(email.html, url)
    assert 'style="' in tag
    assert "display: inline-block" in tag
    assert f"{label}</a>" in email.html
    assert url in email.text


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("order_confirmation", f"{SHOP}/orders/A%2F10023"),
        ("feedback_request", f"{SHOP}/orders/A%2F10023/feedback"),
        ("review_request", f"{SHOP}/orders/A%2F10023/review"),
        ("delivered", f"{SHOP}/help"),
    ],
)
def test_missing_links_fall_back_to_shop_urls(
    renderer: EmailRenderer, template: str, expected: str
) -> None:
    # No tracking URL from the carrier and no links from the caller.
    email = render(renderer, template, make_order(order_id="A/10023"), shipment=None)
    cta_tag(email.html, expected)
    assert expected in email.text


@pytest.mark.parametrize(
    ("template", "changes", "expected"),
    [
        # The focus item (Espresso beans, ES-1) decides guide and reorder links...
        ("product_education", {}, f"{SHOP}/guides/ES-1"),
        ("replenishment_reminder", {}, f"{SHOP}/reorder/ES-1"),
        # ...and without one, the first item does.
        ("product_education", {"focus_item": None}, f"{SHOP}/guides/SH-1"),
        ("replenishment_reminder", {"focus_item": None}, f"{SHOP}/reorder/SH-1"),
        ("review_request", {}, f"{SHOP}/referral?code=JANE-10"),
        ("review_request", {"referral_code": "A B&C"}, f"{SHOP}/referral?code=A%20B%26C"),
        ("cross_sell", {}, f"{SHOP}/products/FR-1"),  # recommendation without URL
        ("return_confirmation", {}, f"{SHOP}/orders/A-10023"),
    ],
)
def test_new_links_default_to_shop_urls(
    renderer: EmailRenderer, template: str, changes: dict[str, object], expected: str
) -> None:
    email = render_full(renderer, template, make_order(), **changes)
    cta_tag(email.html, expected)
    assert expected in email.text


def test_item_skus_are_escaped_in_default_links(renderer: EmailRenderer) -> None:
    item = LineItem(sku="SK U/1?x", name="Odd", quantity=1, unit_price_minor=100)
    email = render_full(renderer, "product_education", make_order(items=[item]))
    cta_tag(email.html, f"{SHOP}/guides/SK%20U%2F1%3Fx")


def test_carrier_tracking_url_is_the_default_tracking_link(renderer: EmailRenderer) -> None:
    email = render(renderer, "shipping_notice", make_order())
    cta_tag(email.html, SHIPMENT.tracking_url)


def test_unsafe_link_is_replaced_by_the_default(renderer: EmailRenderer) -> None:
    shipment = replace(SHIPMENT, tracking_url="javascript:alert(1)")
    email = render(
        renderer, "shipping_notice", make_order(), shipment, links={"help": "javascript:x"}
    )
    assert "javascript:" not in email.html
    assert "javascript:" not in email.text
    cta_tag(email.html, f"{SHOP}/orders/A-10023")


def test_order_confirmation_shows_prices_totals_and_address(renderer: EmailRenderer) -> None:
    email = render(renderer, "order_confirmation", make_order())
    for body in (email.text, email.html):
        for amount in ("€39.00", "€78.00", "€12.50", "€90.50", "-€5.25", "€4.95", "€15.25"):
            assert amount in body
        assert "€90.20" in body  # total
        assert "Kastanienallee 12" in body
        assert "10435 Berlin" in body
        assert "Germany" in body
        assert "Discount" in body
    assert "2 x €39.00 = €78.00" in email.text


def test_order_confirmation_without_discount_has_no_discount_line(
    renderer: EmailRenderer,
) -> None:
    email = render(renderer, "order_confirmation", make_order(discount_minor=0))
    assert "Discount" not in email.text
    assert "Discount" not in email.html


def test_german_order_confirmation_uses_german_formats(renderer: EmailRenderer) -> None:
    email = render(renderer, "order_confirmation", make_order(locale="de"))
    assert email.subject == "Ihre Bestellung A-10023 ist bestätigt"
    assert "78,00\xa0€" in email.text
    assert "Gesamt: 90,20\xa0€" in email.text
    assert "2. März 2025" in email.text
    assert "Deutschland" in email.text
    assert "Bestellung verfolgen</a>" in email.html


def test_zero_decimal_currency(renderer: EmailRenderer) -> None:
    items = [LineItem(sku="T-1", name="Tea set", quantity=1, unit_price_minor=1500)]
    email = render(renderer, "order_confirmation", make_order(items=items, currency="JPY"))
    assert "¥1,500" in email.text
    assert "¥15.00" not in email.text


def test_shipping_notice_shows_carrier_tracking_number_and_eta(renderer: EmailRenderer) -> None:
    email = render(renderer, "shipping_notice", make_order())
    for body in (email.text, email.html):
        assert "DHL" in body
        assert "JD0146000123" in body
        assert "Wednesday, March 5, 2025" in body


def _hostile_context(value: str, *, name: str) -> MessageContext:
    """Customer and catalogue data carrying ``value`` everywhere a message can show it."""
    items = [
        LineItem(sku="X-1", name=f"{value} Deluxe", quantity=1, unit_price_minor=1000),
        LineItem(sku="X-2", name=f"{value}Mug", quantity=1, unit_price_minor=1000),
    ]
    order = make_order(
        name=name,
        items=items,
        recommendations=[Recommendation(sku="R-1", name=f"{value} Grinder")],
    )
    return full_context(
        order,
        new_address=Address(
            name=name, line1=f"{value} Street 1", city="Berlin", postal_code="1", country_code="DE"
        ),
        referral_code=f"{value}CODE",
    )


@pytest.mark.parametrize("template", TEMPLATE_NAMES)
def test_template_syntax_in_customer_data_stays_literal(
    renderer: EmailRenderer, template: str
) -> None:
    context = _hostile_context("{{ 7*7 }}{% raw %}", name="{{ 7*7 }}")
    email = renderer.render(template, context)
    for part in (email.subject, email.preheader, email.text, email.html):
        assert "49" not in part
    for index in ITEMS_SHOWN[template]:
        item_name = context.order.items[index].name
        assert item_name in email.text
        assert item_name in email.html


def test_template_syntax_stays_literal_in_addresses_codes_and_recommendations(
    renderer: EmailRenderer,
) -> None:
    context = _hostile_context("{{ 7*7 }}{% raw %}", name="{{ 7*7 }}")
    confirmation = renderer.render("order_confirmation", context)
    assert "{{ 7*7 }}\n" in confirmation.text  # the delivery address name, verbatim
    assert "{% raw %}Mug" in confirmation.html
    address = renderer.render("address_changed", context)
    assert "{{ 7*7 }}{% raw %} Street 1" in address.text
    review = renderer.render("review_request", context)
    assert "{{ 7*7 }}{% raw %}CODE" in review.text
    cross_sell = renderer.render("cross_sell", context)
    assert "{{ 7*7 }}{% raw %} Grinder" in cross_sell.html


@pytest.mark.parametrize("template", TEMPLATE_NAMES)
def test_markup_in_customer_data_is_escaped_in_html(renderer: EmailRenderer, template: str) -> None:
    context = _hostile_context("<script>alert(1)</script>", name='Jane "<b>" Doe')
    email = renderer.render(template, context)
    assert "<script>" not in email.html
    assert "<b>" not in email.html
    if ITEMS_SHOWN[template] or template in ("address_changed", "cross_sell"):
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html
        # Plain text is not HTML: it carries the data as the customer wrote it.
        assert "<script>alert(1)</script>" in email.text


@pytest.mark.parametrize("template", TEMPLATE_NAMES)
def test_line_breaks_in_customer_data_never_reach_the_subject(
    renderer: EmailRenderer, template: str
) -> None:
    order = make_order(
        name="Eve\r\nBcc: victim@example.test",
        order_id="A-1\r\nX-Injected: yes",
        items=[LineItem(sku="X", name="Mug\nBcc: x@example.test", quantity=1, unit_price_minor=1)],
        recommendations=[Recommendation(sku="R", name="Cup\r\nBcc: x@example.test")],
    )
    email = render_full(renderer, template, order, referral_code="C\r\nBcc: x@example.test")
    for header in (email.subject, email.preheader):
        assert "\r" not in header
        assert "\n" not in header
        assert not re.search(r"[\x00-\x1f\x7f]", header)


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_thank_you_is_short_and_personal(renderer: EmailRenderer, locale: str) -> None:
    email = render(renderer, "thank_you", make_order(locale=locale))
    assert len(email.text.split()) < 100
    assert "Jane" in email.subject
    assert "Jane" in email.text
    assert "Doe" not in email.text
    assert ITEM_NAMES[0] in email.text


@pytest.mark.parametrize(
    ("customer_locale", "expected_subject", "expected_lang"),
    [
        ("de-AT", "Ihre Bestellung A-10023 ist bestätigt", "de"),
        ("de_DE", "Ihre Bestellung A-10023 ist bestätigt", "de"),
        ("fr", "Votre commande A-10023 est confirmée", "fr"),
        ("fr-CA", "Votre commande A-10023 est confirmée", "fr"),
        ("es", "Tu pedido A-10023 está confirmado", "es"),
        ("es_MX", "Tu pedido A-10023 está confirmado", "es"),
        ("it", "Your order A-10023 is confirmed", "en"),
        ("en-GB", "Your order A-10023 is confirmed", "en"),
        ("", "Your order A-10023 is confirmed", "en"),
    ],
)
def test_locale_falls_back_to_a_supported_one(
    renderer: EmailRenderer, customer_locale: str, expected_subject: str, expected_lang: str
) -> None:
    email = render(renderer, "order_confirmation", make_order(locale=customer_locale))
    assert email.subject == expected_subject
    assert f'<html lang="{expected_lang}">' in email.html


def test_regional_formats_follow_the_customer_locale(renderer: EmailRenderer) -> None:
    email = render(renderer, "order_confirmation", make_order(locale="de-AT"))
    assert "€\xa078,00" in email.text  # Austrian currency placement
    it_email = render(renderer, "order_confirmation", make_order(locale="it"))
    assert "€78.00" in it_email.text  # English copy keeps English formats
    swiss = render(renderer, "order_confirmation", make_order(locale="fr-CH"))
    assert "Total: 90,20\xa0€" in swiss.text  # the summary's colon is the shared macro's


@pytest.mark.parametrize(
    ("locale", "subject", "amounts", "placed", "country", "button"),
    [
        (
            "fr",
            "Votre commande A-10023 est confirmée",
            ("2 x 39,00\xa0€ = 78,00\xa0€", "Remise: -5,25\xa0€", "Total: 90,20\xa0€"),
            "2 mars 2025",
            "Allemagne",
            "Suivre votre commande</a>",
        ),
        (
            "es",
            "Tu pedido A-10023 está confirmado",
            ("2 x 39,00\xa0€ = 78,00\xa0€", "Descuento: -5,25\xa0€", "Total: 90,20\xa0€"),
            "2 de marzo de 2025",
            "Alemania",
            "Seguir tu pedido</a>",
        ),
    ],
)
def test_french_and_spanish_order_confirmations_use_their_formats(
    renderer: EmailRenderer,
    locale: str,
    subject: str,
    amounts: tuple[str, ...],
    placed: str,
    country: str,
    button: str,
) -> None:
    email = render(renderer, "order_confirmation", make_order(locale=locale))
    assert email.subject == subject
    for amount in amounts:
        assert amount in email.text
    assert placed in email.text
    assert country in email.text
    assert button in email.html


def _renderer_with(templates: dict[str, str]) -> EmailRenderer:
    return EmailRenderer(BRAND, loader=ChoiceLoader([DictLoader(templates), default_loader()]))


BROKEN_TEXT = (
    '{% extends "en/base.txt.j2" %}'
    "{% block subject %}Hello{% endblock %}{% block preheader %}Hi{% endblock %}"
    "{% block body %}{{ BODY }}{% endblock %}"
)
BROKEN_HTML = '{% extends "en/base.html.j2" %}{% block content %}ok{% endblock %}'


@pytest.mark.parametrize(
    "expression",
    [
        "no_such_variable",
        "order.no_such_field",
        "links.typo",
        "focus_item.no_such_field",
        "feedback.score",  # no feedback in this context: None has no score
        "run_out_at.day",
        "recommendations.typo",
    ],
)
def test_undefined_variables_raise(expression: str) -> None:
    renderer = _renderer_with(
        {
            "en/broken.txt.j2": BROKEN_TEXT.replace("BODY", expression),
            "en/broken.html.j2": BROKEN_HTML,
        }
    )
    with pytest.raises(UndefinedError):
        render(renderer, "broken", make_order())


def test_journey_variables_reach_templates() -> None:
    expressions = (
        "{{ focus_item.name }}|{{ feedback.score }}|{{ skus | join(',') }}|"
        "{{ affected_items | map(attribute='name') | join(',') }}|{{ whole_order }}|"
        "{{ new_address.line1 }}|{{ delivery_address.line1 }}|{{ run_out_at | date }}|"
        "{{ referral_code }}|{{ recommendations | map(attribute='name') | join(',') }}"
    )
    renderer = _renderer_with(
        {
            "en/vars.txt.j2": BROKEN_TEXT.replace("{{ BODY }}", expressions),
            "en/vars.html.j2": BROKEN_HTML,
        }
    )
    email = renderer.render("vars", full_context(make_order(), skus=("ES-1",)))
    assert email.text.splitlines()[0] == (
        "Espresso beans|4|ES-1|Espresso beans|False|Schönhauser Allee 80|"
        "Schönhauser Allee 80|April 15, 2025|JANE-10|Burr grinder,Milk frother,Travel cup"
    )


def test_undefined_variable_in_html_raises() -> None:
    renderer = _renderer_with(
        {
            "en/broken.txt.j2": BROKEN_TEXT.replace("BODY", "order.order_id"),
            "en/broken.html.j2": BROKEN_HTML.replace("ok", "{{ nope }}"),
        }
    )
    with pytest.raises(UndefinedError):
        render(renderer, "broken", make_order())


def test_untranslated_template_falls_back_to_english() -> None:
    renderer = _renderer_with(
        {
            "en/only_en.txt.j2": BROKEN_TEXT.replace("BODY", "order.order_id"),
            "en/only_en.html.j2": BROKEN_HTML,
        }
    )
    email = render(renderer, "only_en", make_order(locale="de"))
    assert email.subject == "Hello"
    assert "Questions?" in email.text


def test_unknown_and_malformed_template_names_are_rejected(renderer: EmailRenderer) -> None:
    with pytest.raises(TemplateNotFound):
        render(renderer, "no_such_message", make_order())
    for bad in ("../layout", "en/order_confirmation", "Order", ""):
        with pytest.raises(ValueError, match="invalid template name"):
            render(renderer, bad, make_order())


def test_brand_rejects_values_that_could_break_out_of_css() -> None:
    with pytest.raises(ValueError, match="primary_color"):
        replace(BRAND, primary_color="red;}</style><script>")
    with pytest.raises(ValueError, match="shop_url"):
        replace(BRAND, shop_url="javascript:alert(1)")


def test_default_brand_uses_the_given_shop_url() -> None:
    brand = default_brand("https://example.test/")
    assert brand.shop_url == "https://example.test"
    assert brand.sender_name
    assert brand.support_email
    EmailRenderer(brand).render("delivered", MessageContext(order=make_order()))
