"""Assembly of a MIME email (multipart/alternative: plain text + HTML)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import EmailPolicy, Policy
from email.utils import format_datetime
from typing import Any

from activities.email.rendering import RenderedEmail
from activities.rendering.text import header_safe


class _HeaderClassesOnce(HeaderRegistry):
    """The email package's registry builds a new class (``type()``) for every header
    it parses, a cost paid again for every message; these are the same classes, built
    once per header name."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._classes.get(key)
        if made is None:
            made = self._classes[key] = super().__getitem__(name)
        return made


class _PlainHeadersAsWritten(EmailPolicy):
    """The default policy, except that a header value with nothing to parse, encode
    or fold is kept as it was written.

    The default policy parses every value into a header object when it is set and
    refolds it from the parse tree when the message is written, also for values such
    as ``1.0``, ``quoted-printable`` or ``text/plain; charset="utf-8"`` that come out
    exactly as they went in: for them that work changes no byte, and it is the
    larger part of building and writing a message.

    A value qualifies when it is printable ASCII on one line, with no encoded word to
    decode and room to spare on its line. Address headers always take the full path
    (display names need quoting and encoding), and so does Content-Disposition (the
    email package reads it back as an object).
    """

    def header_store_parse(self, name: str, value: Any) -> tuple[str, Any]:
        if type(value) is str and _written_as_is(name, value, self.max_line_length):
            return (name, _UnfoldedHeader(name, value))
        return super().header_store_parse(name, value)


_ALWAYS_PARSED = frozenset(
    {"from", "to", "cc", "bcc", "reply-to", "sender", "content-disposition"}
    | {"resent-from", "resent-to", "resent-cc", "resent-bcc", "resent-sender"}
)
# Printable ASCII and spaces, not starting or ending with a space, no encoded word.
_PLAIN_VALUE = re.compile(r"(?!.*=\?)[!-~](?:[ -~]*[!-~])?")


def _written_as_is(name: str, value: str, max_line_length: int | None) -> bool:
    room = max_line_length or 78
    return (
        len(name) + 2 + len(value) <= room
        and name.lower() not in _ALWAYS_PARSED
        and _PLAIN_VALUE.fullmatch(value) is not None
    )


# The default policy (RFC 5322 headers, the content manager), with plain values kept
# as written and the header registry above for the rest.
MESSAGE_POLICY = _PlainHeadersAsWritten(header_factory=_HeaderClassesOnce())


def build_email(
    rendered: RenderedEmail,
    *,
    sender: str,
    recipient_email: str,
    recipient_name: str,
    message_id: str,
    journey_id: str,
    step: str,
    list_unsubscribe_url: str | None = None,
) -> EmailMessage:
    message = EmailMessage(policy=MESSAGE_POLICY)
    message["From"] = sender
    # The display name comes from customer data: strip control characters so it
    # can never inject a header line.
    message["To"] = Address(display_name=header_safe(recipient_name), addr_spec=recipient_email)
    message["Subject"] = header_safe(rendered.subject)
    # As the default policy writes a parsed Date back: "+0000", not "GMT".
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    # Opaque ids (no personal data) so support staff and tests can tie a received
    # email back to its journey and step.
    message["X-Aftercare-Journey"] = journey_id
    message["X-Aftercare-Step"] = step
    if list_unsubscribe_url is not None:
        # RFC 2369 + RFC 8058: mail clients show an unsubscribe button that POSTs
        # "List-Unsubscribe=One-Click" to the URL, without opening a page.
        message["List-Unsubscribe"] = _UnfoldedHeader(
            "List-Unsubscribe", f"<{_header_url(list_unsubscribe_url)}>"
        )
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


# RFC 5322 allows 998 characters a line; leave room for the name and brackets.
_MAX_HEADER_URL = 900


class _UnfoldedHeader(str):
    """A header value written on one line, never folded or encoded.

    The email package folds long header values, and a value without spaces (a
    URL with a signed token) it can only fold by turning it into RFC 2047 encoded
    words, which mail clients do not decode in List-Unsubscribe: the button would
    break. A value with a ``name`` and a ``fold`` method is stored and written as
    it is (see ``EmailPolicy.header_store_parse`` and ``_fold``), whatever policy
    the SMTP client serialises with.
    """

    name: str

    def __new__(cls, name: str, value: str) -> _UnfoldedHeader:
        header = super().__new__(cls, value)
        header.name = name
        return header

    def __getnewargs__(self) -> tuple[str, str]:  # type: ignore[override]
        # copy and pickle rebuild the value through __new__.
        return (self.name, str(self))

    def fold(self, *, policy: Policy) -> str:
        return f"{self.name}: {self}{policy.linesep}"


def _header_url(url: str) -> str:
    # A URL in angle brackets must be ASCII without spaces, brackets or control
    # characters (a line break would inject a header); ours never are, so refuse.
    if (
        not url
        or len(url) > _MAX_HEADER_URL
        or not url.isascii()
        or any(char.isspace() or char in "<>" or ord(char) < 32 or ord(char) == 127 for char in url)
    ):
        raise ValueError(f"not usable as a List-Unsubscribe URL: {url!r}")
    return url


def domain_of(address: str) -> str:
    """The domain of an address such as ``Shop <care@shop.example>``."""
    bare = address.rsplit("<", 1)[-1].rstrip(">").strip()
    return bare.rsplit("@", 1)[-1] or "localhost"
