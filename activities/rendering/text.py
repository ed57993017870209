"""Customer data made safe to print on one line, and links made safe to follow.

Names, item names and codes come from shops and carriers; whatever they hold,
a subject line, an SMS or a greeting built from them stays one line that reads
as it says, and a link in a message never runs script or splits a header.
"""

from __future__ import annotations

import re

# C0/C1 controls (CR, LF, TAB, NUL...) and Unicode line/paragraph separators
# could split or fold a header; they become a single space.
_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# Bidi overrides let a subject display differently from what it says.
_BIDI_CONTROLS = re.compile(r"[\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile(r" {2,}")

_SAFE_URL_SCHEMES = ("https://", "http://", "mailto:")


def header_safe(text: str) -> str:
    """Make text safe for a single header line: no control characters, one space at most."""
    flattened = _LINE_BREAKING.sub(" ", _BIDI_CONTROLS.sub("", text))
    return _SPACES.sub(" ", flattened).strip()


def first_name(full_name: str) -> str:
    """The first word of a name, used in greetings; empty when there is no name."""
    words = header_safe(full_name).split(" ")
    return words[0] if words else ""


def is_safe_url(url: str) -> bool:
    """A web or mail link without control characters: no ``javascript:``, no header splitting."""
    return url.lower().startswith(_SAFE_URL_SCHEMES) and not _LINE_BREAKING.search(url)
