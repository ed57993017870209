"""Checks of request fields that several services share (add to a Violations)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError

from engine.platform.rpc.violations import Violations, shown

DEFAULT_LOCALE = "en"
DEFAULT_TIMEZONE = "UTC"


def locale(v: Violations, path: str, value: str) -> str:
    """A locale Babel knows (``de-DE`` or ``de_DE``), normalised; ``en`` when empty."""
    if not value:
        return DEFAULT_LOCALE
    try:
        return str(Locale.parse(value.replace("-", "_")))
    except (UnknownLocaleError, ValueError, TypeError):
        v.add(path, f"is not a known locale: {shown(value)}")
        return DEFAULT_LOCALE


def timezone(v: Violations, path: str, value: str) -> str:
    """An IANA time zone name; ``UTC`` when empty."""
    if not value:
        return DEFAULT_TIMEZONE
    # OSError: zoneinfo opens a file named after the zone, and 300 letters are too long.
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        v.add(path, f"is not an IANA time zone: {shown(value)}")
    return value
