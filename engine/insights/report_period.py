"""The period a report covers, from what people type: ``30d``, ``12h``, ``2w``
(that long before now), or a date or time in ISO 8601 (UTC unless it says)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from engine.insights.report_model import InvalidReportRequest, Period

DEFAULT_DAYS = 30
# A year and a day: a year-on-year view, and a bound on the work one request does.
MAX_PERIOD_DAYS = 366
_RELATIVE = re.compile(r"(?P<amount>\d{1,4})(?P<unit>[hdw])")
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_instant(field: str, text: str, now: datetime) -> datetime:
    """``30d`` (30 days before ``now``), ``2026-11-01`` or ``2026-11-01T08:00[+01:00]``."""
    value = text.strip()
    relative = _RELATIVE.fullmatch(value)
    if relative:
        return now - int(relative["amount"]) * _UNITS[relative["unit"]]
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidReportRequest(
            field, f"{value[:40]!r} is neither a duration like 30d, 12h, 2w nor an ISO date"
        ) from None
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)


def checked_period(since: datetime | None, until: datetime | None, now: datetime) -> Period:
    """The period, with the defaults filled in (until now, since 30 days before
    ``until``); InvalidReportRequest when it ends before it starts or is too long."""
    end = until or now
    start = since or end - timedelta(days=DEFAULT_DAYS)
    if start >= end:
        raise InvalidReportRequest("since", "must be before until")
    if end - start > timedelta(days=MAX_PERIOD_DAYS):
        raise InvalidReportRequest("since", f"the period may span at most {MAX_PERIOD_DAYS} days")
    return Period(start.astimezone(UTC), end.astimezone(UTC))


def parse_period(since: str | None, until: str | None, now: datetime | None = None) -> Period:
    """The period from the words of ``--since`` and ``--until`` (either may be None)."""
    now = now or datetime.now(UTC)
    end = parse_instant("until", until, now) if until else None
    start = parse_instant("since", since, now) if since else None
    return checked_period(start, end, now)
