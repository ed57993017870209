"""The MIME message: the email package's default policy, with header classes made once
and plain header values kept as written; what goes on the wire is what the stock
default policy would have written."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import default
from email.utils import format_datetime

import pytest
from aiosmtplib.email import flatten_message

from activities.email import message as message_module
from activities.email.message import MESSAGE_POLICY, build_email
from activities.email.rendering import RenderedEmail

RENDERED = RenderedEmail(
    subject="Danke für Ihre Bestellung Nr. 1042 \u2013 sie ist unterwegs, ein langer Betreff",
    preheader="Vorschau",
    text="Hallo Jürgen,\n\nIhre Bestellung ist unterwegs.\n" + "Zeile " * 40 + "\n",
    html="<p>Grüße aus Berlin</p>" + "<p>Absatz</p>" * 200,
)


UNSUBSCRIBE_URL = "https://care.shop.test/u/" + "t" * 300


def built(
    rendered: RenderedEmail = RENDERED, list_unsubscribe_url: str | None = UNSUBSCRIBE_URL
) -> EmailMessage:
    return build_email(
        rendered,
        sender="Nordlicht Store <care@shop.test>",
        recipient_email="juergen@example.test",
        recipient_name='Jürgen "JJ" Müller, Jr.',
        message_id="<0f3a@shop.test>",
        journey_id="journey-1042",
        step="shipping_notice",
        list_unsubscribe_url=list_unsubscribe_url,
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


BUILT_AT = datetime(2026, 12, 3, 16, 19, 52, tzinfo=UTC)
ASCII_RENDERED = RenderedEmail(
    subject="Thanks for your order #1042",
    preheader="We got it",
    text="Hi Ana,\n\nThanks for your order.\n" + "Item line  costs $12.00\n" * 20,
    html='<p style="color:#333">Item line costs $12.00</p>' * 60,
)


@pytest.mark.parametrize(
    "subject",
    [
        "Thanks for your order #1042",
        "Danke für Ihre Bestellung",  # encoded words
        "Your order #1042 has shipped and is on its way to you, with tracking inside",
        'Two  spaces, a tab\tand (a comment) and "quotes"',
        "Literal =?utf-8?q?not_an_encoded_word?= here",
        "x",
    ],
    ids=[
        "short-ascii",
        "non-ascii",
        "long-folded",
        "odd-ascii",
        "encoded-word-lookalike",
        "one-char",
    ],
)
@pytest.mark.parametrize("unsubscribe", [True, False], ids=["unsubscribe", "no-unsubscribe"])
def test_the_bytes_sent_are_what_the_stock_policy_sends(
    monkeypatch: pytest.MonkeyPatch, subject: str, unsubscribe: bool
) -> None:
    rendered = dataclasses.replace(ASCII_RENDERED, subject=subject)

    def sent(policy: object) -> bytes:
        monkeypatch.setattr(message_module, "MESSAGE_POLICY", policy)
        message = built(rendered, UNSUBSCRIBE_URL if unsubscribe else None)
        # The time of building, in the form build_email writes it.
        message.replace_header("Date", format_datetime(BUILT_AT))
        message.set_boundary("boundary-for-the-comparison")
        return flatten_message(message)  # as aiosmtplib writes it to the server

    ours = sent(MESSAGE_POLICY)
    stock = sent(default)
    assert ours == stock
    assert b"\r\nSubject:" in ours


def test_plain_values_are_kept_as_written_and_others_parsed() -> None:
    message = built()
    assert type(message["X-Aftercare-Step"]) is message_module._UnfoldedHeader
    assert type(message["Message-ID"]) is message_module._UnfoldedHeader
    # Customer text and addresses take the full path.
    assert isinstance(message["To"], BaseHeader)
    assert isinstance(message["Subject"], BaseHeader)  # this one is not ASCII
