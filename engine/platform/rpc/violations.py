"""Collecting field violations so one INVALID_ARGUMENT names every bad field."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from engine.platform.redaction import personal_data_in


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class InvalidRequest(Exception):
    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = violations
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))


_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]*")
# Unicode's "other" categories: control, format, surrogate, private use, unassigned.
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
# The only format characters a text may hold: zero-width non-joiner and joiner,
# which Persian, Arabic and Indic scripts need to spell words (and emoji sequences
# use). The rest stay out: bidi embeddings, overrides and isolates (U+202A-202E,
# U+2066-2069) reorder what a reader sees, and zero-width spaces, marks and the BOM
# make texts that look alike compare different.
_JOINERS = frozenset({"\u200c", "\u200d"})
# Violations travel in the response trailers (status message and details), and
# clients refuse trailers over 8 KiB by default: keep them well below that.
MAX_VIOLATIONS = 20
MAX_DESCRIPTION = 120
MAX_SHOWN = 40


def shown(value: str) -> str:
    """``value`` quoted for an error message, cut short: never echo huge input."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


@dataclass
class Violations:
    """Accumulates problems while a request is converted; ``raise_if_any`` at the end."""

    items: list[FieldViolation] = field(default_factory=list)

    def add(self, path: str, description: str) -> None:
        if len(description) > MAX_DESCRIPTION:
            description = description[: MAX_DESCRIPTION - 3] + "..."
        self.items.append(FieldViolation(path, description))

    def raise_if_any(self) -> None:
        if len(self.items) > MAX_VIOLATIONS:
            more = len(self.items) - (MAX_VIOLATIONS - 1)
            listed = self.items[: MAX_VIOLATIONS - 1]
            raise InvalidRequest([*listed, FieldViolation("request", f"{more} more not listed")])
        if self.items:
            raise InvalidRequest(self.items)

    def text(self, path: str, value: str, *, required: bool = True, max_length: int = 200) -> str:
        """A single-line human text: trimmed, no control characters, bounded."""
        value = value.strip()
        if not value:
            if required:
                self.add(path, "is required")
            return value
        if len(value) > max_length:
            self.add(path, f"must be at most {max_length} characters")
        elif not _visible_text(value):
            self.add(
                path,
                "must not contain control, format or unassigned characters "
                "(zero-width joiners only right after a character)",
            )
        return value

    def identifier(self, path: str, value: str, *, max_length: int = 128) -> str:
        """An opaque id: safe in visibility queries, logs and URLs."""
        if not value:
            self.add(path, "is required")
        elif len(value) > max_length or not _IDENTIFIER.fullmatch(value):
            self.add(
                path,
                f"must be 1-{max_length} characters of A-Z a-z 0-9 . _ : @ - "
                "starting with a letter or digit",
            )
        return value

    def customer_id(self, path: str, value: str) -> str:
        """A customer's id: opaque, and never an email address or a phone number.

        It becomes a search attribute (shown to everyone with the Temporal UI, never
        encrypted) and goes into signed links. Refused: what the log redaction would
        hide (``engine.platform.redaction``): an email address, a number with a
        leading '+', a national number written with separators, or 13-15 digits
        that read as a possible international number. Plain numbers of up to 12
        digits stay valid ids: without a country they cannot be told from a shop's
        numeric customer ids. The value is not echoed back."""
        if value and personal_data_in(value):
            self.add(path, "must be an opaque id, not an email address or phone number")
            return value
        return self.identifier(path, value)

    def amount(self, path: str, value: int) -> int:
        if value < 0:
            self.add(path, "must not be negative")
        return value


def _visible_text(value: str) -> bool:
    """No control, unassigned or format characters, but for joiners that follow a
    character they can join (not at the start, after a space or after a joiner: a
    joiner there joins nothing and only makes the text differ invisibly)."""
    previous = ""
    for ch in value:
        if ch in _JOINERS:
            if not previous or previous.isspace() or previous in _JOINERS:
                return False
        elif unicodedata.category(ch) in _INVISIBLE:
            return False
        previous = ch
    return True
