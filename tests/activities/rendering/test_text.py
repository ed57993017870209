"""Customer data printed on one line, and links checked before a message carries them."""

from __future__ import annotations

import pytest

from activities.rendering.text import first_name, header_safe, is_safe_url


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


@pytest.mark.parametrize(
    "url",
    ["https://shop.test/orders/1", "HTTP://shop.test", "mailto:help@shop.test"],
)
def test_web_and_mail_links_are_safe(url: str) -> None:
    assert is_safe_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "data:text/html,<script>",
        "//shop.test/relative",
        "",
        "https://shop.test/a\r\nBcc: x@example.test",
        "https://shop.test/a\u2028b",
    ],
)
def test_other_schemes_and_line_breaks_are_not(url: str) -> None:
    assert not is_safe_url(url)
