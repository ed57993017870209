"""Locale-aware formatting of money and dates, and locale resolution.

Two notions of "locale" meet here. The *template* locale picks which copy
(``en``, ``de``, ``fr`` or ``es``) a customer reads and is always one we have written templates
for (``resolve_locale``). The *formatting* locale may be more specific
(``de_AT`` writes "Jänner", ``en_GB`` writes "3 January") because Babel knows
far more regions than we write copy for; ``formatting_locale`` only keeps the
customer's region when its language matches the template's, so an English
email never shows French month names.

The ``money``, ``date``, ``datetime`` and ``country`` Jinja filters read the currency,
formatting locale and timezone from the template context, so templates write
``{{ item.unit_price_minor | money }}`` instead of repeating them everywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date as babel_format_date
from babel.dates import format_time as babel_format_time
from babel.numbers import format_currency, get_currency_precision
from jinja2 import Environment, pass_context
from jinja2.runtime import Context

SUPPORTED_LOCALES: tuple[str, ...] = ("en", "de", "fr", "es")
DEFAULT_LOCALE = "en"

# Names of the context variables the filters read; the renderer sets them.
CURRENCY_VAR = "currency"
FORMAT_LOCALE_VAR = "format_locale"
TIMEZONE_VAR = "timezone"


def _normalise(tag: str) -> str:
    # Shops send BCP 47 ("de-AT"), Babel wants CLDR ("de_AT").
    return tag.strip().replace("-", "_")


def resolve_locale(tag: str | None) -> str:
    """The supported template locale for a customer tag: ``de-AT`` -> ``de``, ``it`` -> ``en``."""
    if not tag:
        return DEFAULT_LOCALE
    parts = [part.lower() for part in _normalise(tag).split("_") if part]
    # Try the most specific prefix first so a future "de_ch" template would win.
    for size in range(len(parts), 0, -1):
        candidate = "_".join(parts[:size])
        if candidate in SUPPORTED_LOCALES:
            return candidate
    return DEFAULT_LOCALE


@lru_cache(maxsize=512)
def babel_locale(tag: str | None) -> Locale:
    """A Babel locale for any tag; unknown or malformed tags fall back to English."""
    try:
        return Locale.parse(_normalise(tag or DEFAULT_LOCALE))
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse(DEFAULT_LOCALE)


def formatting_locale(tag: str | None, template_locale: str) -> str:
    """The customer's own locale if it speaks the template's language, else the template's."""
    locale = babel_locale(tag)
    if locale.language == babel_locale(template_locale).language:
        return str(locale)
    return template_locale


# Babel applies the locale's number pattern afresh for every amount, and prices repeat.
@lru_cache(maxsize=8192)
def format_money(amount_minor: int, currency: str, locale: str) -> str:
    """Format an amount given in the currency's minor unit (cents, or yen for JPY)."""
    digits = get_currency_precision(currency)
    amount = Decimal(amount_minor).scaleb(-digits)
    return format_currency(amount, currency, locale=babel_locale(locale))


def _zone(tz: str | None) -> ZoneInfo:
    # A bad timezone in shop data must not stop an email; UTC is still correct, just less local.
    # OSError: zoneinfo opens a file named after the zone, and 300 letters are too long.
    try:
        return ZoneInfo(tz or "UTC")
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return ZoneInfo("UTC")


def _localise(value: datetime, tz: str | None) -> datetime:
    # Naive datetimes are taken as UTC, which is what the workflow code stores.
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(_zone(tz))


def format_date(value: datetime, locale: str, tz: str | None, fmt: str = "long") -> str:
    """The calendar date of ``value`` as the customer sees it in timezone ``tz``."""
    return babel_format_date(_localise(value, tz).date(), format=fmt, locale=babel_locale(locale))


def format_datetime(value: datetime, locale: str, tz: str | None, fmt: str = "long") -> str:
    """Date and time (no seconds) in timezone ``tz``, joined the way the locale joins them."""
    local = _localise(value, tz)
    loc = babel_locale(locale)
    date_part = babel_format_date(local.date(), format=fmt, locale=loc)
    time_part = babel_format_time(local.time(), format="short", locale=loc)
    # Babel's own datetime patterns carry seconds; use its joining pattern ("{1}, {0}") only.
    pattern = str(loc.datetime_formats.get(fmt, "{1}, {0}")).replace("'", "")
    return pattern.replace("{1}", date_part).replace("{0}", time_part)


def country_name(code: str, locale: str) -> str:
    """The country's name in the locale ("DE" -> "Germany"/"Deutschland"); the code if unknown."""
    return str(babel_locale(locale).territories.get(code.upper(), code))


@pass_context
def _money_filter(context: Context, amount_minor: int, currency: str | None = None) -> str:
    return format_money(amount_minor, currency or context[CURRENCY_VAR], context[FORMAT_LOCALE_VAR])


@pass_context
def _date_filter(context: Context, value: datetime, fmt: str = "long") -> str:
    return format_date(value, context[FORMAT_LOCALE_VAR], context[TIMEZONE_VAR], fmt)


@pass_context
def _datetime_filter(context: Context, value: datetime, fmt: str = "long") -> str:
    return format_datetime(value, context[FORMAT_LOCALE_VAR], context[TIMEZONE_VAR], fmt)


@pass_context
def _country_filter(context: Context, code: str) -> str:
    return country_name(code, context[FORMAT_LOCALE_VAR])


def register_filters(env: Environment) -> None:
    """Install ``money``, ``date``, ``datetime`` and ``country`` filters on an environment."""
    env.filters["money"] = _money_filter
    env.filters["country"] = _country_filter
    env.filters["date"] = _date_filter
    env.filters["datetime"] = _datetime_filter
