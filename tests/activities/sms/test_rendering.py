"""Every SMS text in every locale renders short, personal and safe, with its link last."""

from __future__ import annotations

from dataclasses import replace

import pytest
from jinja2 import DictLoader, TemplateError, TemplateNotFound, UndefinedError

from activities.email.rendering import TEMPLATE_NAMES
from activities.rendering.context import MessageContext
from activities.rendering.formatting import SUPPORTED_LOCALES
from activities.sms.rendering import SMS_TEMPLATE_DIR, SMS_TEMPLATE_NAMES, SmsRenderer, SmsText
from activities.sms.segments import segment_info
from engine.platform.brand import Brand, default_brand
from tests.activities.email.samples import SHIPMENT, SHOP, full_context, make_order
from workflows.orders import LineItem, Order, Shipment
from workflows.plans.catalogue import load_catalogue
from workflows.plans.model import Category
from workflows.vocabulary import Channel

ORDER_URL = f"{SHOP}/orders/A-10023"
HELP_URL = f"{SHOP}/help"
# full_context puts the order's last item, the espresso beans, in focus.
FOCUS_ITEM = "Espresso beans"
REORDER_URL = f"{SHOP}/reorder/ES-1"

# The link each text ends with, given full_context's data.
EXPECTED_LINK: dict[str, str] = {
    "order_confirmation": ORDER_URL,
    "shipping_delay": HELP_URL,
    "shipping_notice": SHIPMENT.tracking_url,
    "out_for_delivery": SHIPMENT.tracking_url,
    "delivered": HELP_URL,
    "order_cancelled": HELP_URL,
    "feedback_request": f"{ORDER_URL}/feedback",
    "replenishment_reminder": REORDER_URL,
}
# Texts that must offer an opt-out, and how each locale words it.
MARKETING = frozenset({"replenishment_reminder"})
OPT_OUT = {
    "en": "Reply STOP to opt out",
    "de": "Antwort STOP zum Abbestellen",
    "fr": "Répondez STOP pour vous désabonner",
    "es": "Responde STOP para darte de baja",
}
SMS_CHANNELS = {Channel.SMS, Channel.WHATSAPP}

ALL_TEXTS = [(name, locale) for name in SMS_TEMPLATE_NAMES for locale in SUPPORTED_LOCALES]
ALL_TEXT_IDS = [f"{name}-{locale}" for name, locale in ALL_TEXTS]


@pytest.fixture(scope="module")
def brand() -> Brand:
    return default_brand(SHOP)


@pytest.fixture(scope="module")
def renderer(brand: Brand) -> SmsRenderer:
    return SmsRenderer(brand)


def render(
    renderer: SmsRenderer, template: str, order: Order, max_segments: int = 2, **changes: object
) -> SmsText:
    context = full_context(order, **changes)
    return renderer.render(template, context, max_segments=max_segments)


def expected_tail(template: str, locale: str) -> str:
    """What the text must end with: its link, and the opt-out for marketing."""
    tail = EXPECTED_LINK[template]
    return f"{tail}\n{OPT_OUT[locale]}" if template in MARKETING else tail


def espresso_order(locale: str, item_name: str) -> Order:
    """The sample order with the item in focus (the last one) renamed."""
    order = make_order(locale=locale)
    items = [*order.items[:-1], replace(order.items[-1], name=item_name)]
    return replace(order, items=items)


# --- The set of templates -------------------------------------------------------------


def test_every_message_a_plan_may_send_by_sms_or_whatsapp_has_an_sms_template() -> None:
    needed: set[str] = set()
    for pinned in load_catalogue().values():
        plan = pinned.plan
        needed |= {step.template for step in plan.steps if SMS_CHANNELS & set(step.channels)}
        if plan.replenishment and SMS_CHANNELS & set(plan.replenishment.channels):
            needed.add(plan.replenishment.template)
    assert {"shipping_notice", "out_for_delivery", "delivered", "replenishment_reminder"} <= needed
    assert needed <= set(SMS_TEMPLATE_NAMES)


def test_every_marketing_message_a_plan_may_send_by_sms_has_an_opt_out() -> None:
    for pinned in load_catalogue().values():
        plan = pinned.plan
        sent = [(s.template, s.category, s.channels) for s in plan.steps]
        if plan.replenishment:
            r = plan.replenishment
            sent.append((r.template, r.category, r.channels))
        for template, category, channels in sent:
            if category == Category.MARKETING and SMS_CHANNELS & set(channels):
                assert template in MARKETING, f"{plan.id}: {template}"


def test_sms_templates_are_journey_messages_and_exist_in_every_locale() -> None:
    assert set(SMS_TEMPLATE_NAMES) <= set(TEMPLATE_NAMES)
    assert len(set(SMS_TEMPLATE_NAMES)) == len(SMS_TEMPLATE_NAMES)
    assert set(EXPECTED_LINK) == set(SMS_TEMPLATE_NAMES)
    for locale in SUPPORTED_LOCALES:
        files = {path.name for path in (SMS_TEMPLATE_DIR / locale).iterdir()}
        # Exactly the listed ones: no generic fallback text hides a missing template.
        assert files == {f"{name}.txt.j2" for name in SMS_TEMPLATE_NAMES}, locale


def test_a_message_without_sms_template_is_not_sent_as_something_else(
    renderer: SmsRenderer,
) -> None:
    with pytest.raises(TemplateNotFound):
        render(renderer, "thank_you", make_order())


@pytest.mark.parametrize("template", ["../secret", "Shipping", "", "en/delivered"])
def test_template_names_are_plain_identifiers(renderer: SmsRenderer, template: str) -> None:
    with pytest.raises(ValueError, match="invalid template name"):
        render(renderer, template, make_order())


# --- Every text, every locale ----------------------------------------------------------


@pytest.mark.parametrize(("template", "locale"), ALL_TEXTS, ids=ALL_TEXT_IDS)
def test_every_text_is_short_personal_and_ends_with_its_link(
    renderer: SmsRenderer, brand: Brand, template: str, locale: str
) -> None:
    sms = render(renderer, template, make_order(locale=locale))
    body = sms.body

    assert sms.info == segment_info(body)
    assert sms.info.encoding == "GSM-7"
    assert sms.info.segments <= 2
    # Nothing had to be cut: the same text as with room to spare.
    assert render(renderer, template, make_order(locale=locale), max_segments=10) == sms
    assert body.startswith(f"{brand.name}: ")
    assert "Jane" in body
    assert "Doe" not in body
    assert body.endswith(expected_tail(template, locale))
    # Without its link, the text is a single SMS.
    message = body.rpartition(EXPECTED_LINK[template])[0]
    assert segment_info(message).segments == 1
    # One line, but for the opt-out notice on its own.
    assert body.count("\n") == (1 if template in MARKETING else 0)
    assert ("STOP" in body) == (template in MARKETING)


@pytest.mark.parametrize(("template", "locale"), ALL_TEXTS, ids=ALL_TEXT_IDS)
def test_every_text_names_the_order_or_the_item(
    renderer: SmsRenderer, template: str, locale: str
) -> None:
    body = render(renderer, template, make_order(locale=locale)).body
    if template == "replenishment_reminder":
        assert FOCUS_ITEM in body
    else:
        assert "A-10023" in body


@pytest.mark.parametrize(("template", "locale"), ALL_TEXTS, ids=ALL_TEXT_IDS)
def test_every_text_renders_without_name_shipment_or_dates(
    renderer: SmsRenderer, brand: Brand, template: str, locale: str
) -> None:
    order = make_order(locale=locale, name="")
    sms = render(renderer, template, order, shipment=None, run_out_at=None, focus_item=None)
    assert sms.body.startswith(f"{brand.name}: ")
    assert ": ," not in sms.body
    assert sms.info.segments <= 2


@pytest.mark.parametrize(("template", "locale"), ALL_TEXTS, ids=ALL_TEXT_IDS)
def test_even_one_segment_keeps_the_link(
    renderer: SmsRenderer, brand: Brand, template: str, locale: str
) -> None:
    sms = render(renderer, template, make_order(locale=locale), max_segments=1)
    assert sms.info.segments == 1
    assert sms.info.encoding == "GSM-7"
    assert sms.body.startswith(f"{brand.name}: ")
    assert sms.body.endswith(expected_tail(template, locale))


def test_shipping_notice_names_carrier_and_delivery_date(renderer: SmsRenderer) -> None:
    en = render(renderer, "shipping_notice", make_order()).body
    assert en == (
        "Aftercare Shop: Hi Jane, your order A-10023 is on its way with DHL, expected"
        f" Mar 5, 2025. Track it: {SHIPMENT.tracking_url}"
    )
    de = render(renderer, "shipping_notice", make_order(locale="de")).body
    assert "mit DHL, voraussichtlich am 05.03.2025." in de
    assert de.endswith(f"Sendung verfolgen: {SHIPMENT.tracking_url}")
    fr = render(renderer, "shipping_notice", make_order(locale="fr")).body
    assert fr == (
        "Aftercare Shop: Bonjour Jane, votre commande A-10023 est en route avec DHL, livraison"
        f" prévue le 5 mars 2025. Suivre le colis : {SHIPMENT.tracking_url}"
    )
    es = render(renderer, "shipping_notice", make_order(locale="es")).body
    assert es == (
        "Aftercare Shop: ¡Hola, Jane! Tu pedido A-10023 ya va de camino con DHL, llegada"
        f" prevista el 5 mar 2025. Seguimiento: {SHIPMENT.tracking_url}"
    )


def test_replenishment_reminder_reads_as_written(renderer: SmsRenderer) -> None:
    # The run-out (22:30 UTC on 14 April) is 15 April in Berlin, the customer's timezone.
    en = render(renderer, "replenishment_reminder", make_order()).body
    assert en == (
        "Aftercare Shop: Hi Jane, your Espresso beans may run out around Apr 15, 2025."
        f" Reorder now: {REORDER_URL}\nReply STOP to opt out"
    )
    de = render(renderer, "replenishment_reminder", make_order(locale="de")).body
    assert de == (
        "Aftercare Shop: Hallo Jane, Ihr Vorrat an Espresso beans reicht voraussichtlich"
        f" bis zum 15.04.2025. Jetzt nachbestellen: {REORDER_URL}\nAntwort STOP zum Abbestellen"
    )
    fr = render(renderer, "replenishment_reminder", make_order(locale="fr")).body
    assert fr == (
        "Aftercare Shop: Bonjour Jane, pensez à racheter Espresso beans : vos réserves seront"
        f" sans doute épuisées vers le 15 avr. 2025. Commander : {REORDER_URL}"
        "\nRépondez STOP pour vous désabonner"
    )
    es = render(renderer, "replenishment_reminder", make_order(locale="es")).body
    assert es == (
        "Aftercare Shop: ¡Hola, Jane! Es posible que tus existencias de Espresso beans se acaben"
        f" hacia el 15 abr 2025. Volver a pedir: {REORDER_URL}\nResponde STOP para darte de baja"
    )


@pytest.mark.parametrize(
    ("customer_locale", "expected"),
    [
        ("de-AT", "Bestellung"),
        ("de_CH", "Bestellung"),
        ("fr-FR", "votre commande"),
        ("fr_CA", "votre commande"),
        ("es-MX", "Tu pedido"),
        ("it-IT", "your order"),
        ("", "your order"),
    ],
)
def test_locale_falls_back_to_a_supported_one(
    renderer: SmsRenderer, customer_locale: str, expected: str
) -> None:
    body = render(renderer, "delivered", make_order(locale=customer_locale)).body
    assert expected in body


# --- Customer data ---------------------------------------------------------------------


def test_template_syntax_in_customer_data_stays_literal(renderer: SmsRenderer) -> None:
    order = espresso_order("en", "{{ 7*7 }} beans {% raw %}")
    order = replace(order, customer=replace(order.customer, name="{{7*7}} Doe"))
    body = render(renderer, "replenishment_reminder", order).body
    assert "Hi {{7*7}}," in body
    assert "your {{ 7*7 }} beans {% raw %} may" in body
    assert "49" not in body


def test_nothing_is_html_escaped(renderer: SmsRenderer) -> None:
    body = render(renderer, "replenishment_reminder", espresso_order("en", "Tom & Jerry <Mug>"))
    assert "your Tom & Jerry <Mug> may" in body.body
    assert "&amp;" not in body.body


def test_line_breaks_and_bidi_controls_in_customer_data_are_flattened(
    renderer: SmsRenderer,
) -> None:
    order = espresso_order("en", "Espresso\r\nbeans\u202e\t(1 kg)")
    body = render(renderer, "replenishment_reminder", order).body
    assert "your Espresso beans (1 kg) may" in body
    assert "\u202e" not in body
    assert body.count("\n") == 1  # only before the opt-out


def test_typographic_characters_become_gsm7_lookalikes(renderer: SmsRenderer) -> None:
    # German quotes, an en dash, a no-break space and an ellipsis.
    order = espresso_order("de", "Kaffee \u201eCrema\u201c \u2013 1\u00a0kg\u2026")
    sms = render(renderer, "replenishment_reminder", order)
    assert 'Vorrat an Kaffee "Crema" - 1 kg... reicht' in sms.body
    assert sms.info.encoding == "GSM-7"


def test_unsafe_tracking_link_is_replaced_by_the_order_page(renderer: SmsRenderer) -> None:
    shipment = Shipment(carrier="DHL", tracking_url="javascript:alert(1)")
    body = render(renderer, "shipping_notice", make_order(), shipment=shipment).body
    assert body.endswith(f"Track it: {ORDER_URL}")


def test_links_passed_by_the_caller_are_used(renderer: SmsRenderer) -> None:
    links = {"feedback": "https://survey.test/s/42"}
    body = render(renderer, "feedback_request", make_order(), links=links).body
    assert body.endswith("Rate it: https://survey.test/s/42")


# --- Too long --------------------------------------------------------------------------

LONG_ITEM = " ".join(
    ["Single-origin organic espresso beans from a small cooperative in the highlands"] * 5
)


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_a_very_long_item_name_is_trimmed_and_the_reorder_link_survives(
    renderer: SmsRenderer, brand: Brand, locale: str
) -> None:
    order = espresso_order(locale, LONG_ITEM)
    full = render(renderer, "replenishment_reminder", order, max_segments=10).body
    assert segment_info(full).segments > 2

    sms = render(renderer, "replenishment_reminder", order, max_segments=2)
    assert sms.info.segments == 2
    assert sms.info.encoding == "GSM-7"
    assert sms.body.startswith(f"{brand.name}: ")
    label = {
        "en": "Reorder now:",
        "de": "Jetzt nachbestellen:",
        "fr": "Commander :",
        "es": "Volver a pedir:",
    }[locale]
    kept, ellipsis, rest = sms.body.partition("...")
    assert ellipsis
    # Link, label and opt-out are whole; only the item name was shortened.
    assert rest == f" {label} {expected_tail('replenishment_reminder', locale)}"
    assert full.startswith(kept)
    assert full[len(kept)] == " "  # cut between words
    assert "Single-origin organic espresso" in kept


def test_a_name_outside_the_gsm_alphabet_makes_a_shorter_ucs2_text(
    renderer: SmsRenderer,
) -> None:
    order = make_order(name="Łukasz Nowak")
    full = render(renderer, "shipping_notice", order, max_segments=10)
    assert full.info.encoding == "UCS-2"
    assert full.info.segments == 3  # 141 units; two UCS-2 segments carry 134

    sms = render(renderer, "shipping_notice", order, max_segments=2)
    assert sms.info.encoding == "UCS-2"
    assert sms.info.segments == 2
    assert sms.body.startswith("Aftercare Shop: Hi Łukasz,")
    assert sms.body.endswith(f"… Track it: {SHIPMENT.tracking_url}")


def test_a_link_too_long_for_the_cap_is_an_error(renderer: SmsRenderer) -> None:
    shipment = Shipment(tracking_url="https://carrier.test/track?n=" + "9" * 300)
    with pytest.raises(ValueError, match="suffix alone"):
        render(renderer, "shipping_notice", make_order(), shipment=shipment)


# --- Template conventions --------------------------------------------------------------


def custom_renderer(brand: Brand, source: str) -> SmsRenderer:
    return SmsRenderer(brand, loader=DictLoader({"en/custom.txt.j2": source}))


def test_an_undefined_variable_fails_loudly(brand: Brand) -> None:
    renderer = custom_renderer(brand, "{% block message %}Hi {{ frist_name }}{% endblock %}")
    with pytest.raises(UndefinedError):
        renderer.render("custom", MessageContext(order=make_order()), max_segments=2)


def test_a_template_without_message_is_an_error(brand: Brand) -> None:
    renderer = custom_renderer(brand, "{% block link %}{{ links.shop }}{% endblock %}")
    with pytest.raises(TemplateError, match="'message'"):
        renderer.render("custom", MessageContext(order=make_order()), max_segments=2)


def test_an_empty_message_is_an_error(brand: Brand) -> None:
    renderer = custom_renderer(brand, "{% block message %}\n  \n{% endblock %}")
    with pytest.raises(TemplateError, match="empty message"):
        renderer.render("custom", MessageContext(order=make_order()), max_segments=2)


def test_a_text_may_have_no_link(brand: Brand) -> None:
    renderer = custom_renderer(brand, "{% block message %}{{ brand.name }}: hi{% endblock %}")
    sms = renderer.render("custom", MessageContext(order=make_order()), max_segments=1)
    assert sms.body == f"{brand.name}: hi"


def test_the_item_in_focus_defaults_to_the_first(renderer: SmsRenderer) -> None:
    order = make_order(
        items=[LineItem(sku="TE-1", name="Green tea", quantity=1, unit_price_minor=900)]
    )
    sms = renderer.render("replenishment_reminder", MessageContext(order=order), max_segments=2)
    assert "your Green tea may be running low by now." in sms.body
    assert sms.body.endswith(f"{SHOP}/reorder/TE-1\nReply STOP to opt out")
