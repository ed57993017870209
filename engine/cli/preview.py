"""``aftercare preview``: render one message to files, to look at before customers do.

The message is rendered exactly as a journey would render it (same renderer, the
configured brand), for a sample order or one given as JSON, with every optional
detail filled in (a shipment, feedback, a new address...) so that no template
branch stays hidden. ``--locale`` picks the template language, whatever the
order's customer locale. ``--channel sms`` writes the SMS/WhatsApp text instead,
shortened to the plans' default of two segments; ``--channel push`` the push
notification (the FCM request, and the payload a browser's web push subscription
decrypts), ``--channel whatsapp`` the approved WhatsApp template
(the deployment's templates file, the dev stack's when unset).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from aftercare.v1 import journey_pb2 as pb
from google.protobuf import json_format

from activities.email.rendering import TEMPLATE_NAMES, EmailRenderer, RenderedEmail
from activities.push.fcm import PushNotification, message_body
from activities.push.rendering import PUSH_TEMPLATE_NAMES, PushRenderer, PushText
from activities.push.webpush import payload_of
from activities.rendering.context import MessageContext
from activities.rendering.formatting import SUPPORTED_LOCALES, resolve_locale
from activities.sms.rendering import SMS_TEMPLATE_NAMES, SmsRenderer, SmsText
from activities.sms.whatsapp_templates import (
    RenderedContent,
    WhatsAppTemplates,
    WhatsAppTemplatesError,
)
from engine.cli.samples import sample_order, sample_shipment
from engine.devstack.whatsapp_templates import DEV_WHATSAPP_TEMPLATES
from engine.journeys import parsing
from engine.platform.brand import brand_from_settings
from engine.platform.rpc.violations import InvalidRequest
from engine.platform.settings import Settings
from workflows.orders import Feedback, Order, Shipment

DEFAULT_OUT = Path(".aftercare/preview")
CHANNELS: tuple[str, ...] = ("email", "sms", "push", "whatsapp")
# The plans' default cap (sms_max_segments); texts are shortened to fit it.
SMS_MAX_SEGMENTS = 2
SAMPLE_ORDER_ID = "PREVIEW-1001"
# One basket for every locale (coffee beans to run out of, a grinder to explain),
# so the languages can be compared side by side.
SAMPLE_VARIANT = 0
# A score that fits each feedback follow-up; the rest see a happy customer.
_FEEDBACK = {
    "detractor_follow_up": Feedback(score=3, comment="The parcel arrived late and damaged."),
    "passive_thanks": Feedback(score=7, comment="Good coffee, slow delivery."),
}
_DEFAULT_FEEDBACK = Feedback(score=9, comment="Great coffee, quick delivery.")


class PreviewError(Exception):
    """A preview that cannot be made; the message says what to change."""


def check_choice(kind: str, value: str, known: tuple[str, ...]) -> None:
    if value not in known:
        raise PreviewError(f"unknown {kind} {value!r}; known {kind}s: {', '.join(known)}")


def check_template(template: str, locale: str, known: tuple[str, ...], kind: str) -> None:
    check_choice(kind, template, known)
    check_choice("locale", locale, SUPPORTED_LOCALES)


def load_order(file: Path | None, locale: str) -> Order:
    """The order from a JSON file (aftercare.v1.Order), or a sample, in the template ``locale``."""
    try:
        message = (
            json_format.Parse(file.read_text(encoding="utf-8"), pb.Order())
            if file
            else sample_order(SAMPLE_ORDER_ID, SAMPLE_VARIANT)
        )
        order = parsing.valid_order(message, now=datetime.now(UTC))
    except (OSError, json_format.ParseError, InvalidRequest) as err:
        raise PreviewError(f"cannot use order {file}: {err}") from None
    customer = order.customer
    # Keep a regional tag that already fits (de-AT for de): dates stay Austrian.
    if resolve_locale(customer.locale) != locale:
        order = replace(order, customer=replace(customer, locale=locale))
    return order


def preview_context(template: str, order: Order) -> MessageContext:
    """Everything a journey could tell ``template`` about ``order``, made up where needed."""
    consumable = next((item for item in order.items if item.consumption_days > 0), None)
    focus = consumable or (order.items[0] if order.items else None)
    lasts_days = focus.consumption_days * focus.quantity if focus and consumable else 30
    shipment = sample_shipment(order.order_id)
    return MessageContext(
        order=order,
        shipment=Shipment(
            carrier=shipment.carrier,
            tracking_number=shipment.tracking_number,
            tracking_url=shipment.tracking_url,
            estimated_delivery=order.placed_at + timedelta(days=3),
        ),
        focus_item=focus,
        feedback=_FEEDBACK.get(template, _DEFAULT_FEEDBACK),
        new_address=replace(order.shipping_address, line2="Apartment 4B"),
        run_out_at=order.placed_at + timedelta(days=lasts_days),
        referral_code="REF-PREVIEW",
    )


def render_email_preview(
    template: str, locale: str, order_file: Path | None = None
) -> RenderedEmail:
    check_template(template, locale, TEMPLATE_NAMES, "template")
    order = load_order(order_file, locale)
    return EmailRenderer(brand_from_settings(Settings())).render(
        template, preview_context(template, order)
    )


def render_sms_preview(
    template: str,
    locale: str,
    order_file: Path | None = None,
    max_segments: int = SMS_MAX_SEGMENTS,
) -> SmsText:
    check_template(template, locale, SMS_TEMPLATE_NAMES, "sms template")
    order = load_order(order_file, locale)
    renderer = SmsRenderer(brand_from_settings(Settings()))
    try:
        return renderer.render(
            template, preview_context(template, order), max_segments=max_segments
        )
    except ValueError as err:  # the link alone does not fit
        raise PreviewError(str(err)) from None


def write_email_preview(
    rendered: RenderedEmail, out: Path, template: str, locale: str
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    html = out / f"{template}.{locale}.html"
    text = out / f"{template}.{locale}.txt"
    html.write_text(rendered.html, encoding="utf-8")
    text.write_text(rendered.text, encoding="utf-8")
    return [html, text]


def write_sms_preview(text: SmsText, out: Path, template: str, locale: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{template}.{locale}.sms.txt"
    path.write_text(text.body + "\n", encoding="utf-8")
    return path


def preview_command(
    template: Annotated[
        str, typer.Argument(help=f"The message, one of: {', '.join(TEMPLATE_NAMES)}.")
    ],
    locale: Annotated[
        str, typer.Option(help=f"Template language: {', '.join(SUPPORTED_LOCALES)}.")
    ] = "en",
    order: Annotated[
        Path | None, typer.Option(help="Order as JSON (aftercare.v1.Order); a sample otherwise.")
    ] = None,
    channel: Annotated[str, typer.Option(help=f"One of: {', '.join(CHANNELS)}.")] = "email",
    out: Annotated[Path, typer.Option(help="Folder the files are written to.")] = DEFAULT_OUT,
) -> None:
    """Render one message for an order into files (email: HTML and text; sms: the text;
    push: the FCM request; whatsapp: the approved template and its variables)."""
    try:
        check_choice("channel", channel, CHANNELS)
        lines = _preview_on(channel, template, locale, order, out)
    except PreviewError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=2) from None
    for line in lines:
        typer.echo(line)


def _preview_email(template: str, locale: str, order: Path | None, out: Path) -> list[str]:
    rendered = render_email_preview(template, locale, order)
    paths = write_email_preview(rendered, out, template, locale)
    return [
        f"subject:   {rendered.subject}",
        f"preheader: {rendered.preheader}",
        *(str(path) for path in paths),
    ]


def _preview_sms(template: str, locale: str, order: Path | None, out: Path) -> list[str]:
    sms = render_sms_preview(template, locale, order)
    path = write_sms_preview(sms, out, template, locale)
    info = sms.info
    return [
        f"segments:  {info.segments} ({info.encoding}, {info.units} units)",
        f"text:      {sms.body}",
        str(path),
    ]


def _preview_on(
    channel: str, template: str, locale: str, order: Path | None, out: Path
) -> list[str]:
    if channel == "sms":
        return _preview_sms(template, locale, order, out)
    if channel == "push":
        return preview_push(template, locale, order, out)
    if channel == "whatsapp":
        return preview_whatsapp(template, locale, order, out)
    return _preview_email(template, locale, order, out)


# Where a real registration token would go in the FCM request.
SAMPLE_DEVICE_TOKEN = "<device registration token>"


def render_push_preview(template: str, locale: str, order_file: Path | None = None) -> PushText:
    check_template(template, locale, PUSH_TEMPLATE_NAMES, "push template")
    order = load_order(order_file, locale)
    renderer = PushRenderer(brand_from_settings(Settings()))
    return renderer.render(template, preview_context(template, order))


def whatsapp_templates_file(settings: Settings) -> Path:
    return settings.whatsapp_templates_file or DEV_WHATSAPP_TEMPLATES


def render_whatsapp_preview(
    template: str, locale: str, order_file: Path | None = None
) -> tuple[RenderedContent, Path]:
    settings = Settings()
    path = whatsapp_templates_file(settings)
    try:
        templates = WhatsAppTemplates.load(path, brand_from_settings(settings))
    except WhatsAppTemplatesError as err:
        raise PreviewError(str(err)) from None
    check_template(template, locale, (template,), "whatsapp template")
    order = load_order(order_file, locale)
    rendered = templates.render(template, preview_context(template, order))
    if rendered is None:
        raise PreviewError(
            f"no WhatsApp template for {template!r} in {path}: outside the 24-hour "
            "window the step would go to its next channel"
        )
    return rendered, path


def preview_push(template: str, locale: str, order: Path | None, out: Path) -> list[str]:
    push = render_push_preview(template, locale, order)
    notification = PushNotification(title=push.title, body=push.body, link=push.link)
    request = message_body(SAMPLE_DEVICE_TOKEN, notification)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{template}.{locale}.push.json"
    path.write_text(json.dumps(request, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    web_path = out / f"{template}.{locale}.webpush.json"
    payload = json.loads(payload_of(notification))
    web_path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return [
        f"title:     {push.title}",
        f"body:      {push.body}",
        f"link:      {push.link}",
        str(path),
        str(web_path),
    ]


def preview_whatsapp(template: str, locale: str, order: Path | None, out: Path) -> list[str]:
    rendered, source = render_whatsapp_preview(template, locale, order)
    fields = {"ContentSid": rendered.content_sid, "ContentVariables": rendered.content_variables}
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{template}.{locale}.whatsapp.json"
    path.write_text(json.dumps(fields, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    variables = ", ".join(f"{{{{{key}}}}}={value}" for key, value in rendered.values.items())
    return [
        f"template:  {rendered.content_sid} ({rendered.locale}, from {source})",
        f"variables: {variables}",
        str(path),
    ]
