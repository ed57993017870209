"""Every email in every locale renders, stays safe with hostile data, and keeps its promises."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from jinja2 import ChoiceLoader, DictLoader, TemplateNotFound, UndefinedError

from activities.email.brand import Brand, default_brand
from activities.email.formatting import SUPPORTED_LOCALES
from activities.email.rendering import (
    TEMPLATE_NAMES,
    EmailContext,
    EmailRenderer,
    RenderedEmail,
    default_loader,
    first_name,
    header_safe,
)
from workflows.model import Address, Customer, LineItem, Order, Shipment

SHOP = "https://shop.test"

BRAND = Brand(
    name="Nordlicht",
    sender_name="Nordlicht Store",
    logo_url=f"{SHOP}/logo.png",
    primary_color="#0f766e",
    text_color="#111827",
    background_color="#f3f4f6",
    footer_address="Nordlicht GmbH, Hauptstraße 5, 10115 Berlin",
    support_email="help@shop.test",
    shop_url=SHOP,
)

SHIPMENT = Shipment(
    carrier="DHL",
    tracking_number="JD0146000123",
    tracking_url="https://carrier.test/track?n=JD0146000123",
    estimated_delivery=datetime(2025, 3, 5, 12, 0, tzinfo=UTC),
)

ITEM_NAMES = ("Linen shirt", "Ceramic mug")


def make_order(
    *,
    name: str = "Jane Doe",
    locale: str = "en",
    order_id: str = "A-10023",
    items: list[LineItem] | None = None,
    currency: str = "EUR",
    discount_minor: int = 525,
) -> Order:
    customer = Customer(
        id="c-1", name=name, email="jane@example.test", locale=locale, timezone="Europe/Berlin"
    )
    return Order(
        order_id=order_id,
        customer=customer,
        items=items
        or [
            LineItem(sku="SH-1", name=ITEM_NAMES[0], quantity=2, unit_price_minor=3900),
            LineItem(sku="MG-1", name=ITEM_NAMES[1], quantity=1, unit_price_minor=1250),
        ],
        currency=currency,
        subtotal_minor=9050,
        shipping_minor=495,
        tax_minor=1525,
        total_minor=9050 + 495 - discount_minor,  # prices include tax
        discount_minor=discount_minor,
        shipping_address=Address(
            name=name,
            line1="Kastanienallee 12",
            line2="3rd floor",
            city="Berlin",
            postal_code="10435",
            country_code="DE",
        ),
        placed_at=datetime(2025, 3, 2, 10, 15, tzinfo=UTC),
    )


@pytest.fixture(scope="module")
def renderer() -> EmailRenderer:
    return EmailRenderer(BRAND)


def render(
    renderer: EmailRenderer,
    template: str,
    order: Order,
    shipment: Shipment | None = SHIPMENT,
    links: dict[str, str] | None = None,
) -> RenderedEmail:
    return renderer.render(
        template, EmailContext(order=order, shipment=shipment, links=links or {})
    )


def cta_tag(html: str, href: str) -> str:
    """The opening <a> tag of the bulletproof button pointing at ``href``."""
    tags: list[str] = re.findall(r"<a\b[^>]*>", html)
    for tag in tags:
        if 'class="button-link"' in tag and f'href="{href}"' in tag:
            return tag
    raise AssertionError(f"no CTA button to {href}")


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("template", TEMPLATE_NAMES)
def test_every_template_renders_in_every_locale(
    renderer: EmailRenderer, template: str, locale: str
) -> None:
    email = render(renderer, template, make_order(locale=locale))

    assert email.subject
    assert "\n" not in email.subject
    assert "\r" not in email.subject
    assert email.preheader
    assert email.preheader in email.html
    for body in (email.text, email.html):
        assert "A-10023" in body
        # The thank-you note names only the first item, to stay short.
        names = ITEM_NAMES[:1] if template == "thank_you" else ITEM_NAMES
        for item_name in names:
            assert item_name in body
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


@pytest.mark.parametrize("template", TEMPLATE_NAMES)
def test_every_template_renders_without_a_shipment(renderer: EmailRenderer, template: str) -> None:
    email = render(renderer, template, make_order(discount_minor=0), shipment=None)
    assert "A-10023" in email.text


@pytest.mark.parametrize(
    ("template", "link_key", "label"),
    [
        ("order_confirmation", "track_order", "Track your order"),
        ("shipping_notice", "track_order", "Track your parcel"),
        ("out_for_delivery", "track_order", "Track your parcel"),
        ("delivered", "help", "Get help"),
        ("order_cancelled", "help", "Contact us"),
        ("feedback_request", "feedback", "Rate your order"),
        ("review_request", "review", "Write a review"),
    ],
)
def test_cta_is_an_inlined_button_to_the_given_link(
    renderer: EmailRenderer, template: str, link_key: str, label: str
) -> None:
    url = f"https://links.test/{link_key}"
    email = render(renderer, template, make_order(), links={link_key: url})
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


def test_template_syntax_in_customer_data_stays_literal(renderer: EmailRenderer) -> None:
    items = [
        LineItem(sku="X-1", name="{{ 7*7 }} Deluxe", quantity=1, unit_price_minor=1000),
        LineItem(sku="X-2", name="{% raw %}Mug", quantity=1, unit_price_minor=1000),
    ]
    order = make_order(name="{{ 7*7 }}", items=items)
    for template in TEMPLATE_NAMES:
        email = render(renderer, template, order)
        for part in (email.subject, email.preheader, email.text, email.html):
            assert "49" not in part
        assert "{{ 7*7 }} Deluxe" in email.text
        assert "{{ 7*7 }} Deluxe" in email.html
    confirmation = render(renderer, "order_confirmation", order)
    assert "{{ 7*7 }}\n" in confirmation.text  # the delivery address name, verbatim
    assert "{% raw %}Mug" in confirmation.html


def test_markup_in_customer_data_is_escaped_in_html(renderer: EmailRenderer) -> None:
    items = [
        LineItem(sku="X-1", name="<script>alert(1)</script>", quantity=1, unit_price_minor=100),
    ]
    order = make_order(name='Jane "<b>" Doe', items=items)
    for template in TEMPLATE_NAMES:
        email = render(renderer, template, order)
        assert "<script>" not in email.html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html
        assert "<b>" not in email.html
        # Plain text is not HTML: it carries the name as the customer wrote it.
        assert "<script>alert(1)</script>" in email.text


@pytest.mark.parametrize("template", TEMPLATE_NAMES)
def test_line_breaks_in_customer_data_never_reach_the_subject(
    renderer: EmailRenderer, template: str
) -> None:
    order = make_order(
        name="Eve\r\nBcc: victim@example.test",
        order_id="A-1\r\nX-Injected: yes",
        items=[LineItem(sku="X", name="Mug\nBcc: x@example.test", quantity=1, unit_price_minor=1)],
    )
    email = render(renderer, template, order)
    for header in (email.subject, email.preheader):
        assert "\r" not in header
        assert "\n" not in header
        assert not re.search(r"[\x00-\x1f\x7f]", header)


def test_header_safe_collapses_control_characters() -> None:
    assert header_safe("Hello\r\nBcc: x") == "Hello Bcc: x"
    assert header_safe("  a\t\tb\x00c\x7f  ") == "a b c"
    assert header_safe("line\u2028sep\u2029para\x85") == "line sep para"
    assert header_safe("invoice\u202egpj.exe") == "invoicegpj.exe"
    assert header_safe("12,50\xa0€") == "12,50\xa0€"


def test_first_name() -> None:
    assert first_name("Jane Doe") == "Jane"
    assert first_name("  ") == ""
    assert first_name("\r\nEve\nBcc") == "Eve"


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
        ("fr", "Your order A-10023 is confirmed", "en"),
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
    fr_email = render(renderer, "order_confirmation", make_order(locale="fr"))
    assert "€78.00" in fr_email.text  # English copy keeps English formats


def _renderer_with(templates: dict[str, str]) -> EmailRenderer:
    return EmailRenderer(BRAND, loader=ChoiceLoader([DictLoader(templates), default_loader()]))


BROKEN_TEXT = (
    '{% extends "en/base.txt.j2" %}'
    "{% block subject %}Hello{% endblock %}{% block preheader %}Hi{% endblock %}"
    "{% block body %}{{ BODY }}{% endblock %}"
)
BROKEN_HTML = '{% extends "en/base.html.j2" %}{% block content %}ok{% endblock %}'


@pytest.mark.parametrize("expression", ["no_such_variable", "order.no_such_field", "links.typo"])
def test_undefined_variables_raise(expression: str) -> None:
    renderer = _renderer_with(
        {
            "en/broken.txt.j2": BROKEN_TEXT.replace("BODY", expression),
            "en/broken.html.j2": BROKEN_HTML,
        }
    )
    with pytest.raises(UndefinedError):
        render(renderer, "broken", make_order())


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
    EmailRenderer(brand).render("delivered", EmailContext(order=make_order()))
