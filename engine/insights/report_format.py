"""Numbers of the report as people read them: money, rates, percentage points."""

from __future__ import annotations

from babel.numbers import format_currency, get_currency_precision

from engine.insights.report_model import Uplift


def money(minor_units: int, currency: str, locale: str = "en") -> str:
    """``1234, "EUR"`` -> ``€12.34`` (the currency's own number of decimals)."""
    try:
        digits = get_currency_precision(currency)
    except Exception:  # an unknown code: show it plainly rather than fail the report
        return f"{minor_units} {currency} (minor units)"
    return format_currency(minor_units / 10**digits, currency, locale=locale)


def revenue(amounts: dict[str, int], locale: str = "en") -> str:
    if not amounts:
        return "-"
    return " + ".join(
        money(amount, currency, locale) for currency, amount in sorted(amounts.items())
    )


def share(part: int, whole: int) -> str:
    """``part`` of ``whole`` as a percentage with one decimal; a dash for 0 of 0."""
    if whole <= 0:
        return "-"
    return f"{100 * part / whole:.1f} %"


def rate(value: float) -> str:
    return f"{100 * value:.2f} %"


def points(value: float) -> str:
    """A difference of rates in percentage points, signed."""
    return f"{100 * value:+.2f} pp"


def interval(found: Uplift) -> str:
    return f"{100 * found.ci_low:+.2f} to {100 * found.ci_high:+.2f} pp"


def p_value(value: float) -> str:
    return "< 0.001" if value < 0.001 else f"{value:.3f}"
