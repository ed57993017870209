"""Collecting field violations so one INVALID_ARGUMENT names every bad field."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class InvalidRequest(Exception):
    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = violations
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))


_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]*")
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
        elif any(unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn"} for ch in value):
            self.add(path, "must not contain control or unassigned characters")
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

    def amount(self, path: str, value: int) -> int:
        if value < 0:
            self.add(path, "must not be negative")
        return value
