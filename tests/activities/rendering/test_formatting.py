"""Money, dates and locale resolution as customers in different places should see them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from jinja2 import Environment

from activities.rendering.formatting import (
    babel_locale,
    country_name,
    format_date,
    format_datetime,
    format_money,
    formatting_locale,
    register_filters,
    resolve_locale,
)

# 23:30 UTC on 2 March is already 3 March in Berlin but still 2 March in New York.
LATE_EVENING_UTC = datetime(2025, 3, 2, 23, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("amount_minor", "currency", "locale", "expected"),
    [
        (123450, "EUR", "en", "€1,234.50"),
        (123450, "EUR", "de", "1.234,50\xa0€"),
        (123450, "EUR", "de_AT", "€\xa01.234,50"),
        # French groups thousands with a narrow no-break space, Spanish with a dot.
        (123450, "EUR", "fr", "1\u202f234,50\xa0€"),
        (123450, "EUR", "es", "1.234,50\xa0€"),
        (-525, "EUR", "fr", "-5,25\xa0€"),
        (5, "EUR", "en", "€0.05"),
        (-525, "EUR", "en", "-€5.25"),
        (1500, "JPY", "en", "¥1,500"),
        (150000, "JPY", "de", "150.000\xa0¥"),
        (1234567, "KWD", "en", "KWD1,234.567"),
        (999, "USD", "en-US", "$9.99"),
    ],
)
def test_format_money_respects_minor_digits(
    amount_minor: int, currency: str, locale: str, expected: str
) -> None:
    assert format_money(amount_minor, currency, locale) == expected


def test_jpy_has_no_decimals() -> None:
    assert "." not in format_money(1500, "JPY", "en")
    assert "," not in format_money(1500, "JPY", "de")


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("de", "de"),
        ("de-AT", "de"),
        ("de_CH", "de"),
        ("DE-at", "de"),
        ("en", "en"),
        ("en-GB", "en"),
        ("fr", "fr"),
        ("fr-CA", "fr"),
        ("es", "es"),
        ("es_MX", "es"),
        ("it", "en"),
        ("pt-BR", "en"),
        ("", "en"),
        (None, "en"),
        ("not a locale!", "en"),
    ],
)
def test_resolve_locale(tag: str | None, expected: str) -> None:
    assert resolve_locale(tag) == expected


@pytest.mark.parametrize(
    ("tag", "template_locale", "expected"),
    [
        ("de-AT", "de", "de_AT"),
        ("en-GB", "en", "en_GB"),
        ("fr", "en", "en"),
        ("fr-CA", "fr", "fr_CA"),
        ("es-MX", "es", "es_MX"),
        ("es-MX", "fr", "fr"),
        ("xx-YY", "en", "en"),
    ],
)
def test_formatting_locale_keeps_the_region_only_for_the_same_language(
    tag: str, template_locale: str, expected: str
) -> None:
    assert formatting_locale(tag, template_locale) == expected


def test_babel_locale_falls_back_to_english() -> None:
    assert str(babel_locale("xx-YY")) == "en"
    assert str(babel_locale("de-AT")) == "de_AT"


@pytest.mark.parametrize(
    ("locale", "tz", "expected"),
    [
        ("en", "Europe/Berlin", "March 3, 2025"),
        ("en", "America/New_York", "March 2, 2025"),
        ("de", "Europe/Berlin", "3. März 2025"),
        ("de_AT", "Europe/Vienna", "3. März 2025"),
        ("en_GB", "Asia/Tokyo", "3 March 2025"),
        ("fr", "Europe/Paris", "3 mars 2025"),
        ("es", "Europe/Madrid", "3 de marzo de 2025"),
        ("en", "Not/AZone", "March 2, 2025"),
    ],
)
def test_format_date_uses_the_customer_timezone(locale: str, tz: str, expected: str) -> None:
    assert format_date(LATE_EVENING_UTC, locale, tz) == expected


def test_format_date_full_names_the_weekday() -> None:
    assert format_date(LATE_EVENING_UTC, "de", "Europe/Berlin", "full") == "Montag, 3. März 2025"


def test_format_date_full_in_french_and_spanish() -> None:
    assert format_date(LATE_EVENING_UTC, "fr", "Europe/Paris", "full") == "lundi 3 mars 2025"
    spanish = format_date(LATE_EVENING_UTC, "es", "Europe/Madrid", "full")
    assert spanish == "lunes, 3 de marzo de 2025"


def test_format_datetime_in_customer_timezone_without_seconds() -> None:
    assert format_datetime(LATE_EVENING_UTC, "de", "Europe/Berlin") == "3. März 2025, 00:30"
    english = format_datetime(LATE_EVENING_UTC, "en", "America/New_York")
    # CLDR puts a narrow no-break space before AM/PM.
    assert english.replace("\u202f", " ") == "March 2, 2025, 6:30 PM"


def test_naive_datetimes_are_taken_as_utc() -> None:
    naive = LATE_EVENING_UTC.replace(tzinfo=None)
    assert format_datetime(naive, "de", "UTC") == "2. März 2025, 23:30"
    assert format_date(naive, "de", "Europe/Berlin") == "3. März 2025"


def test_country_name() -> None:
    assert country_name("AT", "de") == "Österreich"
    assert country_name("de", "en") == "Germany"
    assert country_name("ZZZ", "en") == "ZZZ"


def test_filters_read_currency_locale_and_timezone_from_the_context() -> None:
    env = Environment(autoescape=True)
    register_filters(env)
    template = env.from_string(
        "{{ 1250 | money }}|{{ 1250 | money('JPY') }}|{{ when | date }}|{{ when | datetime }}"
        "|{{ 'CH' | country }}"
    )
    rendered = template.render(
        currency="EUR", format_locale="de", timezone="Europe/Berlin", when=LATE_EVENING_UTC
    )
    assert rendered == "12,50\xa0€|1.250\xa0¥|3. März 2025|3. März 2025, 00:30|Schweiz"
