"""What the redaction hides (email addresses, phone numbers) and what it must keep
(provider codes, dates, addresses of machines, opaque ids): provider error texts go
through it before they reach exceptions, logs and tables, and every log line does."""

from __future__ import annotations

import time

import pytest

from engine.platform.redaction import EMAIL, PHONE, personal_data_in, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # What SMTP servers say, echoing the recipient (Postfix, Exim, aiosmtplib's repr).
        (
            "550 5.1.1 <jane.doe@example.com>: Recipient address rejected: User unknown",
            f"550 5.1.1 <{EMAIL}>: Recipient address rejected: User unknown",
        ),
        (
            "[SMTPRecipientRefused(450, '4.2.0 Greylisted', 'Jane.Doe+tag@Example.TEST')]",
            f"[SMTPRecipientRefused(450, '4.2.0 Greylisted', '{EMAIL}')]",
        ),
        ("to=jörg.müller@bücher.example", f"to={EMAIL}"),
        ("To=jane%40example.com&x=1", f"To={EMAIL}&x=1"),
        ("mailto:o.k-1_2@mail.shop.example.co.uk.", f"mailto:{EMAIL}."),
    ],
)
def test_email_addresses_are_hidden_and_the_rest_kept(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Twilio quotes the number as it was sent (E.164), WhatsApp with its prefix.
        (
            "The 'To' number +4915112345678 is not a valid phone number. (Twilio error 21211)",
            f"The 'To' number {PHONE} is not a valid phone number. (Twilio error 21211)",
        ),
        ("whatsapp:+14155238886 is outside the window", f"whatsapp:{PHONE} is outside the window"),
        ("To=%2B4915112345678&Body=hi", f"To={PHONE}&Body=hi"),
        # Written as people write them: every digit goes, not only the first group.
        ("call +1 (415) 555-0100 now", f"call {PHONE} now"),
        ("+44 20 7946 0958", PHONE),
        ("(415) 555-0100", PHONE),
        ("415-555-0100 or 415.555.0100", f"{PHONE} or {PHONE}"),
        ("Tel. 030 12345678, mobil 0151-12345678", f"Tel. {PHONE}, mobil {PHONE}"),
        ("06 12 34 56 78", PHONE),
        ("030/1234567", PHONE),
        # Without a '+', but only a country code and a possible number can make 13-15 digits.
        ("number 4915112345678 refused", f"number {PHONE} refused"),
    ],
)
def test_phone_numbers_are_hidden(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "550 5.1.1 no such user",
        "451 4.3.0 try again later",
        "Attempt to send to unsubscribed recipient (Twilio error 21610)",
        "Twilio answered 429: Too Many Requests (code 20429), Retry-After 120",
        "HTTP 500 after 30 s",
        "2026-12-06T10:00:00+00:00 and 2026-12-06 10:00:00 and 06.12.2026 and 06/12/2026",
        "127.0.0.1:50051 and [::1]:8233",
        "run 0195f1e4-7a3b-7c2d-8e9f-0123456789ab",
        "order-A-100234, customer cus_123, customer 12345678, customer 123456789012",
        "SM0123456789abcdef0123456789abcdef queued",
        "temporalio 1.35.0, took 0.0012345 s, 1234567 bytes",
        "epoch ms 1764000000000",  # 13 digits, and no possible number: +1 has 10 more
        "user@localhost and postgres@127.0.0.1",  # no public address (no domain name)
        "a snowflake id 1234567890123456789",  # past E.164's 15 digits
        "cus_4915112345678 and ref-0151-1234",  # parts of an identifier, not numbers
        "\x1b[36mcolour\x1b[0m",
    ],
)
def test_what_is_not_personal_data_is_kept(text: str) -> None:
    assert redact(text) == text
    assert not personal_data_in(text)


def test_redaction_is_idempotent() -> None:
    text = "jane@example.com, +4915112345678, (415) 555-0100"
    once = redact(text)
    assert redact(once) == once
    assert personal_data_in(text)
    assert not personal_data_in(once)


@pytest.mark.parametrize(
    "text",
    [
        "a" * 200_000,
        "a" * 200_000 + " @",
        "1-" * 100_000,
        "+" + "1 " * 100_000,
        ("x" * 60 + "@") * 5_000,
    ],
)
def test_huge_hostile_text_is_handled_quickly(text: str) -> None:
    # Log lines can carry hostile input; the patterns must stay linear in the text.
    started = time.perf_counter()
    redact(text)
    assert time.perf_counter() - started < 2.0
