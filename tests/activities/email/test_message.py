"""The MIME message: the email package's default policy, with header classes made once."""

from __future__ import annotations

from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from email.policy import default

import pytest

from activities.email import message as message_module
from activities.email.message import MESSAGE_POLICY, build_email
from activities.email.rendering import RenderedEmail

RENDERED = RenderedEmail(
    subject="Danke für Ihre Bestellung Nr. 1042 \u2013 sie ist unterwegs, ein langer Betreff",
    preheader="Vorschau",
    text="Hallo Jürgen,\n\nIhre Bestellung ist unterwegs.\n" + "Zeile " * 40 + "\n",
    html="<p>Grüße aus Berlin</p>" + "<p>Absatz</p>" * 200,
)


def built() -> EmailMessage:
    return build_email(
        RENDERED,
        sender="Nordlicht Store <care@shop.test>",
        recipient_email="juergen@example.test",
        recipient_name='Jürgen "JJ" Müller, Jr.',
        message_id="<0f3a@shop.test>",
        journey_id="journey-1042",
        step="shipping_notice",
        list_unsubscribe_url="https://care.shop.test/u/" + "t" * 300,
    )


def wire(message: EmailMessage) -> list[tuple[str, str]]:
    """Every header as it is written, and every part's encoded body (the Date aside:
    it is the time of building)."""
    headers = [
        (name, message.policy.fold(name, value).rstrip())
        for name, value in message.items()
        if name != "Date"
    ]
    parts = [
        (part.get_content_type(), str(part.get_payload()))
        for part in message.walk()
        if not part.is_multipart()
    ]
    return headers + parts


def test_messages_are_what_the_default_policy_makes(monkeypatch: pytest.MonkeyPatch) -> None:
    ours = built()
    monkeypatch.setattr(message_module, "MESSAGE_POLICY", default)
    stock = built()

    assert ours.policy is MESSAGE_POLICY
    assert stock.policy is default
    assert wire(ours) == wire(stock)


def test_header_classes_are_made_once_per_name() -> None:
    registry = MESSAGE_POLICY.header_factory
    assert isinstance(registry, HeaderRegistry)

    assert registry["Subject"] is registry["subject"]
    assert registry["X-Aftercare-Step"] is registry["x-aftercare-step"]
    assert registry["Subject"] is not registry["To"]
