"""Local-time arithmetic: "at 10:00 local", windows and quiet hours, across DST.

Every expected instant is worked out by hand and written as a literal UTC
datetime; the comments give the local reading. Offsets used:

* Europe/Berlin: CET +01:00, CEST +02:00. 2026-03-29 01:00 UTC the clocks go
  02:00 -> 03:00 (02:00-02:59 does not exist); 2026-10-25 01:00 UTC they go
  03:00 -> 02:00 (02:00-02:59 happens twice, CEST first, then CET).
* America/New_York: EST -05:00, EDT -04:00. 2026-03-08 07:00 UTC 02:00 -> 03:00;
  2026-11-01 06:00 UTC 02:00 -> 01:00 (01:00-01:59 twice).
* Pacific/Auckland: NZDT +13:00 (January), NZST +12:00. 2026-04-04 14:00 UTC
  (Sunday 2026-04-05 03:00 NZDT) the clocks go back to 02:00.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest
from pydantic import TypeAdapter

from workflows.timing import (
    at_local_time,
    defer_out_of,
    in_window,
    local_iso,
    next_open,
    parse_clock,
    to_utc,
)

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
AUCKLAND = "Pacific/Auckland"


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def assert_utc(result: datetime, expected: datetime) -> None:
    """Same instant, and carried as datetime.UTC (not merely some zero offset)."""
    assert result == expected
    assert result.tzinfo is UTC


# -- parse_clock ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("07:05", time(7, 5)),
        ("7:05", time(7, 5)),
        ("00:00", time(0, 0)),
        ("0:00", time(0, 0)),
        ("10:00", time(10, 0)),
        ("21:00", time(21, 0)),
        ("23:59", time(23, 59)),
    ],
)
def test_parse_clock_accepts_24_hour_times(text: str, expected: time) -> None:
    assert parse_clock(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "24:00",
        "25:00",
        "7:5",
        "07:5",
        "aa",
        "",
        ":",
        "07:60",
        "007:05",
        "0705",
        "07.05",
        "07:05:00",
        " 07:05",
        "07:05 ",
        "07:05\n",
        "-1:00",
        "+7:05",
        "12:3a",
        "7 pm",
        "\u0661\u0662:\u0663\u0660",  # Arabic-Indic digits "١٢:٣٠"
    ],
)
def test_parse_clock_rejects_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="HH:MM") as error:
        parse_clock(text)
    assert repr(text) in str(error.value)


# -- to_utc --------------------------------------------------------------------------


def test_to_utc_keeps_utc() -> None:
    assert_utc(to_utc(utc(2026, 6, 10, 8)), utc(2026, 6, 10, 8))


def test_to_utc_normalises_pydantic_utc() -> None:
    moment = TypeAdapter(datetime).validate_python("2026-06-10T08:00:00Z")
    assert moment.tzinfo is not UTC  # pydantic's own TzInfo
    assert_utc(to_utc(moment), utc(2026, 6, 10, 8))


def test_to_utc_converts_offsets_and_zones() -> None:
    plus_two = datetime(2026, 3, 30, 10, 0, tzinfo=timezone(timedelta(hours=2)))
    assert_utc(to_utc(plus_two), utc(2026, 3, 30, 8))
    minus_five = datetime(2026, 11, 1, 10, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert_utc(to_utc(minus_five), utc(2026, 11, 1, 15))
    # Auckland's local date is a day ahead of UTC's.
    auckland = datetime(2026, 1, 15, 10, 0, tzinfo=ZoneInfo(AUCKLAND))
    assert_utc(to_utc(auckland), utc(2026, 1, 14, 21))
    # The repeated Berlin hour: fold=0 is CEST, fold=1 is CET.
    first = datetime(2026, 10, 25, 2, 30, tzinfo=ZoneInfo(BERLIN), fold=0)
    second = datetime(2026, 10, 25, 2, 30, tzinfo=ZoneInfo(BERLIN), fold=1)
    assert_utc(to_utc(first), utc(2026, 10, 25, 0, 30))
    assert_utc(to_utc(second), utc(2026, 10, 25, 1, 30))


class _NoOffset(tzinfo):
    """A tzinfo that does not know its offset: the datetime is naive in effect."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


@pytest.mark.parametrize(
    "moment",
    [datetime(2026, 6, 10, 8, 0), datetime(2026, 6, 10, 8, 0, tzinfo=_NoOffset())],
    ids=["naive", "tzinfo-without-offset"],
)
def test_to_utc_rejects_naive(moment: datetime) -> None:
    with pytest.raises(ValueError, match="naive"):
        to_utc(moment)


# -- at_local_time: ordinary days ----------------------------------------------------


@pytest.mark.parametrize(
    ("after", "clock", "tz", "expected"),
    [
        # 08:00 CEST -> 10:00 CEST the same day.
        (utc(2026, 6, 10, 6), "10:00", BERLIN, utc(2026, 6, 10, 8)),
        # Exactly 10:00 CEST: that very instant.
        (utc(2026, 6, 10, 8), "10:00", BERLIN, utc(2026, 6, 10, 8)),
        # One second past 10:00 CEST: tomorrow's.
        (utc(2026, 6, 10, 8, 0, 1), "10:00", BERLIN, utc(2026, 6, 11, 8)),
        # 11:00 CEST -> tomorrow 10:00 CEST.
        (utc(2026, 6, 10, 9), "10:00", BERLIN, utc(2026, 6, 11, 8)),
        # Winter: 08:00 CET -> 10:00 CET.
        (utc(2026, 1, 15, 7), "10:00", BERLIN, utc(2026, 1, 15, 9)),
        # Midnight local: 23:00 CET is 22:00 UTC, so 00:00 CET is 23:00 UTC.
        (utc(2026, 1, 15, 22), "00:00", BERLIN, utc(2026, 1, 15, 23)),
        # New York, 09:00 EDT -> 10:00 EDT.
        (utc(2026, 6, 10, 13), "10:00", NEW_YORK, utc(2026, 6, 10, 14)),
        # New York 21:00 EDT (01:00 UTC on the next UTC day) -> 23:30 EDT.
        (utc(2026, 6, 11, 1), "23:30", NEW_YORK, utc(2026, 6, 11, 3, 30)),
        # Auckland 2026-01-14 23:00 NZDT (10:00 UTC on the 14th): the next 10:00 is
        # 2026-01-15 10:00 NZDT, which is 21:00 UTC on the 14th.
        (utc(2026, 1, 14, 10), "10:00", AUCKLAND, utc(2026, 1, 14, 21)),
        # Auckland 2026-01-15 09:00 NZDT (20:00 UTC on the 14th) -> 10:00 NZDT.
        (utc(2026, 1, 14, 20), "10:00", AUCKLAND, utc(2026, 1, 14, 21)),
        # UTC itself.
        (utc(2026, 6, 10, 10, 30), "10:00", "UTC", utc(2026, 6, 11, 10)),
        # A half-hour zone: 10:00 IST (+05:30) is 04:30 UTC.
        (utc(2026, 6, 10, 0), "10:00", "Asia/Kolkata", utc(2026, 6, 10, 4, 30)),
    ],
)
def test_at_local_time_on_ordinary_days(
    after: datetime, clock: str, tz: str, expected: datetime
) -> None:
    assert_utc(at_local_time(after, clock, tz), expected)


@pytest.mark.parametrize(
    ("delivered", "tz", "expected"),
    [
        # Delivered Thu 2026-03-26 23:15 CET; 3 days on is Mon 2026-03-30 00:15 CEST
        # (the clocks went forward in between): 10:00 CEST that Monday.
        (utc(2026, 3, 26, 22, 15), BERLIN, utc(2026, 3, 30, 8)),
        # Delivered Fri 2026-03-27 06:00 CET; 3 days on is Mon 07:00 CEST: 10:00 CEST.
        # (On Friday 10:00 local was 09:00 UTC; on Monday it is 08:00 UTC.)
        (utc(2026, 3, 27, 5), BERLIN, utc(2026, 3, 30, 8)),
        # Delivered Fri 2026-03-27 15:37 CET; 3 days on is Mon 16:37 CEST, past
        # 10:00, so Tuesday 10:00 CEST.
        (utc(2026, 3, 27, 14, 37), BERLIN, utc(2026, 3, 31, 8)),
        # Delivered Wed 2026-10-28 23:00 EDT (03:00 UTC Thu); 3 days on is Sat
        # 2026-10-31 23:00 EDT; next 10:00 is Sunday's, after the fall-back: EST.
        (utc(2026, 10, 29, 3), NEW_YORK, utc(2026, 11, 1, 15)),
        # Delivered Fri 2026-10-30 16:00 EDT; 3 days on is Mon 2026-11-02 15:00 EST,
        # past 10:00: Tuesday 10:00 EST.
        (utc(2026, 10, 30, 20), NEW_YORK, utc(2026, 11, 3, 15)),
        # Delivered 2026-01-10 23:00 NZDT (10:00 UTC on the 10th); 3 days on is
        # 2026-01-13 23:00 NZDT; 2026-01-14 10:00 NZDT is 21:00 UTC on the 13th.
        (utc(2026, 1, 10, 10), AUCKLAND, utc(2026, 1, 13, 21)),
        # Delivered 2026-01-11 11:00 NZDT (22:00 UTC on the 10th); 3 days on is
        # 2026-01-14 11:00 NZDT; 2026-01-15 10:00 NZDT is 21:00 UTC on the 14th.
        (utc(2026, 1, 10, 22), AUCKLAND, utc(2026, 1, 14, 21)),
        # Delivered Wed 2026-04-01 09:00 NZDT (20:00 UTC on Mar 31); 3 days on is
        # Sat 2026-04-04 09:00 NZDT: 10:00 NZDT, 21:00 UTC on the 3rd.
        (utc(2026, 3, 31, 20), AUCKLAND, utc(2026, 4, 3, 21)),
        # Delivered Wed 2026-04-01 13:00 NZDT (00:00 UTC); 3 days on is Sat 13:00
        # NZDT, past 10:00: Sunday 2026-04-05 10:00, now NZST: 22:00 UTC on the 4th.
        (utc(2026, 4, 1, 0), AUCKLAND, utc(2026, 4, 4, 22)),
    ],
)
def test_three_days_after_delivery_at_ten_local(
    delivered: datetime, tz: str, expected: datetime
) -> None:
    assert_utc(at_local_time(delivered + timedelta(days=3), "10:00", tz), expected)


def test_three_days_after_delivery_reads_as_local_ten() -> None:
    due = at_local_time(utc(2026, 3, 26, 22, 15) + timedelta(days=3), "10:00", BERLIN)
    assert local_iso(due, BERLIN) == "2026-03-30T10:00+02:00"


# -- at_local_time: daylight saving time ---------------------------------------------


@pytest.mark.parametrize(
    ("after", "clock", "expected"),
    [
        # From Sun 2026-03-29 00:00 CET.
        (utc(2026, 3, 28, 23), "01:59", utc(2026, 3, 29, 0, 59)),  # 01:59 CET
        (utc(2026, 3, 28, 23), "02:00", utc(2026, 3, 29, 1)),  # gap -> 03:00 CEST
        (utc(2026, 3, 28, 23), "02:30", utc(2026, 3, 29, 1)),  # gap -> 03:00 CEST
        (utc(2026, 3, 28, 23), "02:59", utc(2026, 3, 29, 1)),  # gap -> 03:00 CEST
        (utc(2026, 3, 28, 23), "03:00", utc(2026, 3, 29, 1)),  # 03:00 CEST
        (utc(2026, 3, 28, 23), "03:01", utc(2026, 3, 29, 1, 1)),  # 03:01 CEST
        (utc(2026, 3, 28, 23), "10:00", utc(2026, 3, 29, 8)),  # 10:00 CEST
        # From Sat 2026-03-28 11:00 CET: Sunday 10:00 is already CEST.
        (utc(2026, 3, 28, 10), "10:00", utc(2026, 3, 29, 8)),
        # Exactly at the change (03:00 CEST): the stand-in for 02:30 is now.
        (utc(2026, 3, 29, 1), "02:30", utc(2026, 3, 29, 1)),
        # A second later: Monday 02:30 CEST.
        (utc(2026, 3, 29, 1, 0, 1), "02:30", utc(2026, 3, 30, 0, 30)),
        # From Sat 2026-03-28 03:00 CET, a gap time: Sunday's stand-in, 03:00 CEST.
        (utc(2026, 3, 28, 2), "02:30", utc(2026, 3, 29, 1)),
    ],
)
def test_at_local_time_berlin_spring_forward(
    after: datetime, clock: str, expected: datetime
) -> None:
    assert_utc(at_local_time(after, clock, BERLIN), expected)


@pytest.mark.parametrize(
    ("after", "clock", "expected"),
    [
        # From Sun 2026-10-25 00:00 CEST: the first 02:30 (CEST).
        (utc(2026, 10, 24, 22), "02:30", utc(2026, 10, 25, 0, 30)),
        (utc(2026, 10, 24, 22), "02:00", utc(2026, 10, 25, 0)),  # 02:00 CEST
        (utc(2026, 10, 24, 22), "03:00", utc(2026, 10, 25, 2)),  # 03:00 CET, once
        (utc(2026, 10, 24, 22), "10:00", utc(2026, 10, 25, 9)),  # 10:00 CET
        # Exactly at the first 02:30.
        (utc(2026, 10, 25, 0, 30), "02:30", utc(2026, 10, 25, 0, 30)),
        # From 02:45 CEST, the first 02:30 is past; the second (CET) is still to come.
        (utc(2026, 10, 25, 0, 45), "02:30", utc(2026, 10, 25, 1, 30)),
        # From 02:00 CET (the change itself): the second 02:30.
        (utc(2026, 10, 25, 1), "02:30", utc(2026, 10, 25, 1, 30)),
        # From 02:31 CET both are past: Monday 02:30 CET.
        (utc(2026, 10, 25, 1, 31), "02:30", utc(2026, 10, 26, 1, 30)),
        # From Sat 2026-10-24 11:00 CEST: Sunday 10:00 is CET.
        (utc(2026, 10, 24, 9), "10:00", utc(2026, 10, 25, 9)),
    ],
)
def test_at_local_time_berlin_fall_back(after: datetime, clock: str, expected: datetime) -> None:
    assert_utc(at_local_time(after, clock, BERLIN), expected)


@pytest.mark.parametrize(
    ("after", "clock", "expected"),
    [
        # Spring forward, from Sun 2026-03-08 00:00 EST.
        (utc(2026, 3, 8, 5), "01:30", utc(2026, 3, 8, 6, 30)),  # 01:30 EST
        (utc(2026, 3, 8, 5), "02:30", utc(2026, 3, 8, 7)),  # gap -> 03:00 EDT
        (utc(2026, 3, 8, 5), "10:00", utc(2026, 3, 8, 14)),  # 10:00 EDT
        # From Sat 2026-03-07 11:00 EST: Sunday 10:00 EDT.
        (utc(2026, 3, 7, 16), "10:00", utc(2026, 3, 8, 14)),
        # Fall back, from Sun 2026-11-01 00:00 EDT: the first 01:30 (EDT).
        (utc(2026, 11, 1, 4), "01:30", utc(2026, 11, 1, 5, 30)),
        # From 01:00 EST (the change): the second 01:30 (EST).
        (utc(2026, 11, 1, 6), "01:30", utc(2026, 11, 1, 6, 30)),
        (utc(2026, 11, 1, 4), "10:00", utc(2026, 11, 1, 15)),  # 10:00 EST
        # Saturday evening 2026-10-31 20:00 EDT (00:00 UTC Nov 1): Sunday 08:00 EST.
        (utc(2026, 11, 1, 0), "08:00", utc(2026, 11, 1, 13)),
    ],
)
def test_at_local_time_new_york_dst(after: datetime, clock: str, expected: datetime) -> None:
    assert_utc(at_local_time(after, clock, NEW_YORK), expected)


@pytest.mark.parametrize(
    ("after", "clock", "expected"),
    [
        # From Sat 2026-04-04 01:00 NZDT (12:00 UTC on the 3rd): 10:00 NZDT that day.
        (utc(2026, 4, 3, 12), "10:00", utc(2026, 4, 3, 21)),
        # From Sat 13:00 NZDT: Sunday 10:00, now NZST.
        (utc(2026, 4, 4, 0), "10:00", utc(2026, 4, 4, 22)),
        # From Sun 2026-04-05 01:00 NZDT: the first 02:30 (NZDT).
        (utc(2026, 4, 4, 12), "02:30", utc(2026, 4, 4, 13, 30)),
        # From 02:00 NZST (the change): the second 02:30 (NZST).
        (utc(2026, 4, 4, 14), "02:30", utc(2026, 4, 4, 14, 30)),
        # From Sun 02:00 NZDT: 03:00 happens once, in NZST.
        (utc(2026, 4, 4, 13), "03:00", utc(2026, 4, 4, 15)),
    ],
)
def test_at_local_time_auckland_dst_end(after: datetime, clock: str, expected: datetime) -> None:
    assert_utc(at_local_time(after, clock, AUCKLAND), expected)


def test_at_local_time_accepts_any_aware_input() -> None:
    # 2026-06-10 10:00 at +02:00 is 08:00 UTC, which is 10:00 CEST itself.
    after = datetime(2026, 6, 10, 10, 0, tzinfo=timezone(timedelta(hours=2)))
    assert_utc(at_local_time(after, "10:00", BERLIN), utc(2026, 6, 10, 8))
    pydantic_utc = TypeAdapter(datetime).validate_python("2026-06-10T06:00:00Z")
    assert_utc(at_local_time(pydantic_utc, "10:00", BERLIN), utc(2026, 6, 10, 8))


# -- in_window -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "start", "end", "expected"),
    [
        # Quiet hours 21:00-08:00 wrap midnight (summer, CEST).
        (utc(2026, 6, 10, 21), "21:00", "08:00", True),  # 23:00
        (utc(2026, 6, 10, 22), "21:00", "08:00", True),  # 00:00
        (utc(2026, 6, 10, 5, 59), "21:00", "08:00", True),  # 07:59
        (utc(2026, 6, 10, 5, 59, 59), "21:00", "08:00", True),  # 07:59:59
        (utc(2026, 6, 10, 6), "21:00", "08:00", False),  # 08:00, end excluded
        (utc(2026, 6, 10, 12), "21:00", "08:00", False),  # 14:00
        (utc(2026, 6, 10, 18, 59), "21:00", "08:00", False),  # 20:59
        (utc(2026, 6, 10, 19), "21:00", "08:00", True),  # 21:00, start included
        # Winter (CET): the same local edges one UTC hour later.
        (utc(2026, 1, 15, 6, 59), "21:00", "08:00", True),  # 07:59
        (utc(2026, 1, 15, 7), "21:00", "08:00", False),  # 08:00
        (utc(2026, 1, 15, 19, 59), "21:00", "08:00", False),  # 20:59
        (utc(2026, 1, 15, 20), "21:00", "08:00", True),  # 21:00
        # A plain daytime window.
        (utc(2026, 6, 10, 6, 59), "09:00", "17:00", False),  # 08:59
        (utc(2026, 6, 10, 7), "09:00", "17:00", True),  # 09:00
        (utc(2026, 6, 10, 14, 59), "09:00", "17:00", True),  # 16:59
        (utc(2026, 6, 10, 15), "09:00", "17:00", False),  # 17:00
        # start == end: the whole day.
        (utc(2026, 6, 10, 8), "10:00", "10:00", True),  # 10:00
        (utc(2026, 6, 10, 7, 59), "10:00", "10:00", True),  # 09:59
        (utc(2026, 6, 10, 22), "00:00", "00:00", True),  # 00:00
        (utc(2026, 6, 10, 21, 59), "00:00", "00:00", True),  # 23:59
        # A window ending at midnight: 18:00-00:00 wraps and holds 23:59 only.
        (utc(2026, 6, 10, 21, 59), "18:00", "00:00", True),  # 23:59
        (utc(2026, 6, 10, 22), "18:00", "00:00", False),  # 00:00
    ],
)
def test_in_window_berlin(moment: datetime, start: str, end: str, expected: bool) -> None:
    assert in_window(moment, start, end, BERLIN) is expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        # Sat 2026-03-28, CET: 07:30 quiet, 08:30 not.
        (utc(2026, 3, 28, 6, 30), True),
        (utc(2026, 3, 28, 7, 30), False),
        # Sun 2026-03-29 across the spring-forward.
        (utc(2026, 3, 29, 0, 59), True),  # 01:59 CET
        (utc(2026, 3, 29, 1), True),  # 03:00 CEST
        (utc(2026, 3, 29, 5, 59), True),  # 07:59 CEST
        (utc(2026, 3, 29, 6), False),  # 08:00 CEST
        (utc(2026, 3, 29, 6, 30), False),  # 08:30 CEST (was quiet at this UTC time a day ago)
        (utc(2026, 3, 29, 18, 59), False),  # 20:59 CEST
        (utc(2026, 3, 29, 19), True),  # 21:00 CEST
        # Sat 2026-10-24, CEST: 08:30 not quiet.
        (utc(2026, 10, 24, 6, 30), False),
        # Sun 2026-10-25 across the fall-back.
        (utc(2026, 10, 25, 0, 30), True),  # 02:30 CEST
        (utc(2026, 10, 25, 1, 30), True),  # 02:30 CET
        (utc(2026, 10, 25, 6, 30), True),  # 07:30 CET (was not quiet a day ago)
        (utc(2026, 10, 25, 6, 59), True),  # 07:59 CET
        (utc(2026, 10, 25, 7), False),  # 08:00 CET
        (utc(2026, 10, 25, 19, 59), False),  # 20:59 CET
        (utc(2026, 10, 25, 20), True),  # 21:00 CET
    ],
)
def test_in_window_quiet_hours_across_berlin_dst(moment: datetime, expected: bool) -> None:
    assert in_window(moment, "21:00", "08:00", BERLIN) is expected


@pytest.mark.parametrize(
    ("moment", "tz", "expected"),
    [
        # Auckland 2026-01-15 09:00 NZDT: open, though 20:00 UTC would not be.
        (utc(2026, 1, 14, 20), AUCKLAND, True),
        # Auckland 2026-01-14 20:30 NZDT: closed, though 07:30 UTC would be open.
        (utc(2026, 1, 14, 7, 30), AUCKLAND, False),
        # Auckland 2026-01-15 07:59 NZDT (18:59 UTC on the 14th): closed.
        (utc(2026, 1, 14, 18, 59), AUCKLAND, False),
        # Auckland 2026-01-15 08:00 NZDT: open.
        (utc(2026, 1, 14, 19), AUCKLAND, True),
        # New York 2026-03-08 08:00 EDT (12:00 UTC) open; 07:59 EDT closed.
        (utc(2026, 3, 8, 12), NEW_YORK, True),
        (utc(2026, 3, 8, 11, 59), NEW_YORK, False),
        # New York 2026-11-01 07:59 EST (12:59 UTC) closed; 08:00 EST open.
        (utc(2026, 11, 1, 12, 59), NEW_YORK, False),
        (utc(2026, 11, 1, 13), NEW_YORK, True),
    ],
)
def test_in_window_reads_local_time(moment: datetime, tz: str, expected: bool) -> None:
    assert in_window(moment, "08:00", "20:00", tz) is expected


def test_in_window_accepts_any_aware_input() -> None:
    # 23:00 at +02:00 is 21:00 UTC, 23:00 CEST.
    moment = datetime(2026, 6, 10, 23, 0, tzinfo=timezone(timedelta(hours=2)))
    assert in_window(moment, "21:00", "08:00", BERLIN) is True
    pydantic_utc = TypeAdapter(datetime).validate_python("2026-06-10T12:00:00Z")
    assert in_window(pydantic_utc, "21:00", "08:00", BERLIN) is False


# -- next_open -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "start", "end", "tz", "expected"),
    [
        # Inside: the moment itself, seconds and all.
        (utc(2026, 6, 10, 10, 15, 30), "09:00", "17:00", BERLIN, utc(2026, 6, 10, 10, 15, 30)),
        # Exactly at the start: inside.
        (utc(2026, 6, 10, 7), "09:00", "17:00", BERLIN, utc(2026, 6, 10, 7)),
        # 07:00 CEST: opens at 09:00 CEST.
        (utc(2026, 6, 10, 5), "09:00", "17:00", BERLIN, utc(2026, 6, 10, 7)),
        # Exactly at the end (17:00 CEST): tomorrow 09:00.
        (utc(2026, 6, 10, 15), "09:00", "17:00", BERLIN, utc(2026, 6, 11, 7)),
        # A wrapping window 21:00-08:00, from 14:00 CEST: 21:00 CEST.
        (utc(2026, 6, 10, 12), "21:00", "08:00", BERLIN, utc(2026, 6, 10, 19)),
        # ... from 23:00 CEST: inside.
        (utc(2026, 6, 10, 21), "21:00", "08:00", BERLIN, utc(2026, 6, 10, 21)),
        # start == end: always open.
        (utc(2026, 6, 10, 3, 17), "10:00", "10:00", BERLIN, utc(2026, 6, 10, 3, 17)),
        # Sat 2026-03-28 18:00 CET -> Sun 09:00 CEST.
        (utc(2026, 3, 28, 17), "09:00", "17:00", BERLIN, utc(2026, 3, 29, 7)),
        # Sat 2026-10-24 18:00 CEST -> Sun 09:00 CET.
        (utc(2026, 10, 24, 16), "09:00", "17:00", BERLIN, utc(2026, 10, 25, 8)),
        # Auckland 2026-01-14 20:30 NZDT -> 2026-01-15 09:00 NZDT (20:00 UTC, 14th).
        (utc(2026, 1, 14, 7, 30), "09:00", "17:00", AUCKLAND, utc(2026, 1, 14, 20)),
        # Auckland Sat 2026-04-04 18:00 NZDT -> Sun 09:00 NZST (21:00 UTC on the 4th).
        (utc(2026, 4, 4, 5), "09:00", "17:00", AUCKLAND, utc(2026, 4, 4, 21)),
        # New York Sat 2026-03-07 18:00 EST -> Sun 09:00 EDT.
        (utc(2026, 3, 7, 23), "09:00", "17:00", NEW_YORK, utc(2026, 3, 8, 13)),
        # New York Sat 2026-10-31 18:00 EDT -> Sun 09:00 EST.
        (utc(2026, 10, 31, 22), "09:00", "17:00", NEW_YORK, utc(2026, 11, 1, 14)),
    ],
)
def test_next_open(moment: datetime, start: str, end: str, tz: str, expected: datetime) -> None:
    assert_utc(next_open(moment, start, end, tz), expected)


@pytest.mark.parametrize(
    ("moment", "start", "end", "tz", "expected"),
    [
        # Berlin Sun 2026-03-29 00:00 CET, window from 02:30 (in the gap): opens at
        # the first instant after the gap, 03:00 CEST.
        (utc(2026, 3, 28, 23), "02:30", "05:00", BERLIN, utc(2026, 3, 29, 1)),
        # Even a window wholly inside the gap "opens" then, as specified.
        (utc(2026, 3, 28, 23), "02:00", "02:30", BERLIN, utc(2026, 3, 29, 1)),
        # New York Sun 2026-03-08 00:00 EST, window 02:00-06:00: 03:00 EDT.
        (utc(2026, 3, 8, 5), "02:00", "06:00", NEW_YORK, utc(2026, 3, 8, 7)),
        # Berlin 02:45 CEST on 2026-10-25, window 02:20-02:40: the second 02:20 (CET).
        (utc(2026, 10, 25, 0, 45), "02:20", "02:40", BERLIN, utc(2026, 10, 25, 1, 20)),
        # Berlin 02:20 CEST, window 01:30-02:15: at 03:00 CEST the clocks go back to
        # 02:00 CET, which is inside, before any 01:30 comes round again.
        (utc(2026, 10, 25, 0, 20), "01:30", "02:15", BERLIN, utc(2026, 10, 25, 1)),
        # Berlin 02:30 CEST, window 02:00-02:10: the second 02:00 is the change itself.
        (utc(2026, 10, 25, 0, 30), "02:00", "02:10", BERLIN, utc(2026, 10, 25, 1)),
        # New York 01:45 EDT on 2026-11-01, window 01:00-01:30: 01:00 EST.
        (utc(2026, 11, 1, 5, 45), "01:00", "01:30", NEW_YORK, utc(2026, 11, 1, 6)),
    ],
)
def test_next_open_across_dst(
    moment: datetime, start: str, end: str, tz: str, expected: datetime
) -> None:
    assert_utc(next_open(moment, start, end, tz), expected)


def test_next_open_returns_inside_moment_as_utc() -> None:
    moment = datetime(2026, 6, 10, 12, 15, tzinfo=timezone(timedelta(hours=2)))
    assert_utc(next_open(moment, "09:00", "17:00", BERLIN), utc(2026, 6, 10, 10, 15))
    pydantic_utc = TypeAdapter(datetime).validate_python("2026-06-10T10:15:00Z")
    assert_utc(next_open(pydantic_utc, "09:00", "17:00", BERLIN), utc(2026, 6, 10, 10, 15))


# -- defer_out_of (quiet hours) ------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        # Outside: unchanged.
        (utc(2026, 6, 10, 12), utc(2026, 6, 10, 12)),  # 14:00 CEST
        (utc(2026, 6, 10, 18, 59), utc(2026, 6, 10, 18, 59)),  # 20:59 CEST
        (utc(2026, 6, 10, 6), utc(2026, 6, 10, 6)),  # 08:00 CEST, the end itself
        # Inside: to 08:00.
        (utc(2026, 6, 10, 19), utc(2026, 6, 11, 6)),  # 21:00 CEST, the start itself
        (utc(2026, 6, 10, 20), utc(2026, 6, 11, 6)),  # 22:00 CEST
        (utc(2026, 6, 10, 22), utc(2026, 6, 11, 6)),  # 00:00 CEST
        (utc(2026, 6, 10, 4), utc(2026, 6, 10, 6)),  # 06:00 CEST
        (utc(2026, 6, 10, 5, 59, 59), utc(2026, 6, 10, 6)),  # 07:59:59 CEST
        # Winter.
        (utc(2026, 1, 15, 21), utc(2026, 1, 16, 7)),  # 22:00 CET -> 08:00 CET
        # Spring-forward night: Sat 22:00 CET -> Sun 08:00 CEST (9 hours, not 10).
        (utc(2026, 3, 28, 21), utc(2026, 3, 29, 6)),
        (utc(2026, 3, 29, 0, 59), utc(2026, 3, 29, 6)),  # 01:59 CET
        (utc(2026, 3, 29, 1), utc(2026, 3, 29, 6)),  # 03:00 CEST
        (utc(2026, 3, 28, 6, 30), utc(2026, 3, 28, 7)),  # Sat 07:30 CET -> 08:00 CET
        # Fall-back night: Sat 22:00 CEST -> Sun 08:00 CET (11 hours, not 10).
        (utc(2026, 10, 24, 20), utc(2026, 10, 25, 7)),
        (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 7)),  # 02:30 CEST
        (utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 7)),  # 02:30 CET
        (utc(2026, 10, 25, 6, 30), utc(2026, 10, 25, 7)),  # 07:30 CET
        (utc(2026, 10, 25, 7), utc(2026, 10, 25, 7)),  # 08:00 CET, outside
    ],
)
def test_defer_out_of_quiet_hours_berlin(moment: datetime, expected: datetime) -> None:
    assert_utc(defer_out_of(moment, "21:00", "08:00", BERLIN), expected)


@pytest.mark.parametrize(
    ("moment", "tz", "expected"),
    [
        # New York Sat 2026-03-07 22:00 EST -> Sun 08:00 EDT.
        (utc(2026, 3, 8, 3), NEW_YORK, utc(2026, 3, 8, 12)),
        # New York Sun 2026-03-08 07:30 EDT -> 08:00 EDT.
        (utc(2026, 3, 8, 11, 30), NEW_YORK, utc(2026, 3, 8, 12)),
        # New York Sat 2026-10-31 23:00 EDT -> Sun 08:00 EST.
        (utc(2026, 11, 1, 3), NEW_YORK, utc(2026, 11, 1, 13)),
        # New York Sun 2026-11-01 01:30 EST (second pass) -> 08:00 EST.
        (utc(2026, 11, 1, 6, 30), NEW_YORK, utc(2026, 11, 1, 13)),
        # Auckland 2026-01-14 22:00 NZDT -> 2026-01-15 08:00 NZDT, 19:00 UTC on the 14th.
        (utc(2026, 1, 14, 9), AUCKLAND, utc(2026, 1, 14, 19)),
        # Auckland 2026-01-15 01:00 NZDT (12:00 UTC on the 14th) -> 08:00 NZDT.
        (utc(2026, 1, 14, 12), AUCKLAND, utc(2026, 1, 14, 19)),
        # Auckland 2026-01-15 09:00 NZDT: outside, unchanged.
        (utc(2026, 1, 14, 20), AUCKLAND, utc(2026, 1, 14, 20)),
        # Auckland Sat 2026-04-04 22:00 NZDT -> Sun 08:00 NZST, 20:00 UTC on the 4th.
        (utc(2026, 4, 4, 9), AUCKLAND, utc(2026, 4, 4, 20)),
        # Auckland Sun 2026-04-05 02:30 NZST (second pass) -> 08:00 NZST.
        (utc(2026, 4, 4, 14, 30), AUCKLAND, utc(2026, 4, 4, 20)),
    ],
)
def test_defer_out_of_quiet_hours_elsewhere(moment: datetime, tz: str, expected: datetime) -> None:
    assert_utc(defer_out_of(moment, "21:00", "08:00", tz), expected)


def test_defer_out_of_non_wrapping_quiet_hours() -> None:
    # Quiet over lunch, 12:00-14:00 CEST: 12:30 -> 14:00, 11:59 and 14:00 unchanged.
    assert_utc(
        defer_out_of(utc(2026, 6, 10, 10, 30), "12:00", "14:00", BERLIN), utc(2026, 6, 10, 12)
    )
    assert_utc(
        defer_out_of(utc(2026, 6, 10, 9, 59), "12:00", "14:00", BERLIN), utc(2026, 6, 10, 9, 59)
    )
    assert_utc(defer_out_of(utc(2026, 6, 10, 12), "12:00", "14:00", BERLIN), utc(2026, 6, 10, 12))


def test_defer_out_of_accepts_any_aware_input() -> None:
    pydantic_utc = TypeAdapter(datetime).validate_python("2026-06-10T20:00:00Z")
    assert_utc(defer_out_of(pydantic_utc, "21:00", "08:00", BERLIN), utc(2026, 6, 11, 6))
    outside = datetime(2026, 6, 10, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert_utc(defer_out_of(outside, "21:00", "08:00", BERLIN), utc(2026, 6, 10, 12))


def test_defer_out_of_refuses_all_day_quiet_hours() -> None:
    with pytest.raises(ValueError, match="whole day"):
        defer_out_of(utc(2026, 6, 10, 12), "21:00", "21:00", BERLIN)


# -- local_iso -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "tz", "expected"),
    [
        (utc(2026, 3, 30, 8), BERLIN, "2026-03-30T10:00+02:00"),
        (utc(2026, 1, 15, 9), BERLIN, "2026-01-15T10:00+01:00"),
        (utc(2026, 10, 25, 0, 30), BERLIN, "2026-10-25T02:30+02:00"),
        (utc(2026, 10, 25, 1, 30), BERLIN, "2026-10-25T02:30+01:00"),
        (utc(2026, 3, 29, 1), BERLIN, "2026-03-29T03:00+02:00"),
        (utc(2026, 6, 10, 8, 0, 59), BERLIN, "2026-06-10T10:00+02:00"),  # seconds cut
        (utc(2026, 11, 1, 15), NEW_YORK, "2026-11-01T10:00-05:00"),
        (utc(2026, 11, 1, 5, 30), NEW_YORK, "2026-11-01T01:30-04:00"),
        (utc(2026, 1, 14, 21), AUCKLAND, "2026-01-15T10:00+13:00"),
        (utc(2026, 4, 4, 22), AUCKLAND, "2026-04-05T10:00+12:00"),
        (utc(2026, 6, 10, 4, 30), "Asia/Kolkata", "2026-06-10T10:00+05:30"),
        (utc(2026, 6, 10, 8), "UTC", "2026-06-10T08:00+00:00"),
    ],
)
def test_local_iso(moment: datetime, tz: str, expected: str) -> None:
    assert local_iso(moment, tz) == expected


def test_local_iso_accepts_any_aware_input() -> None:
    moment = datetime(2026, 3, 30, 3, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert local_iso(moment, BERLIN) == "2026-03-30T10:00+02:00"


# -- errors --------------------------------------------------------------------------

NAIVE = datetime(2026, 6, 10, 12, 0)


@pytest.mark.parametrize(
    "call",
    [
        lambda: at_local_time(NAIVE, "10:00", BERLIN),
        lambda: in_window(NAIVE, "21:00", "08:00", BERLIN),
        lambda: next_open(NAIVE, "09:00", "17:00", BERLIN),
        lambda: defer_out_of(NAIVE, "21:00", "08:00", BERLIN),
        lambda: local_iso(NAIVE, BERLIN),
    ],
    ids=["at_local_time", "in_window", "next_open", "defer_out_of", "local_iso"],
)
def test_naive_datetimes_are_refused(call: object) -> None:
    assert callable(call)
    with pytest.raises(ValueError, match="naive"):
        call()


@pytest.mark.parametrize("tz", ["Mars/Olympus_Mons", "", "Europe/berlin ", "../etc/passwd"])
def test_unknown_time_zones_are_refused(tz: str) -> None:
    moment = utc(2026, 6, 10, 12)
    for call in (
        lambda: at_local_time(moment, "10:00", tz),
        lambda: in_window(moment, "21:00", "08:00", tz),
        lambda: next_open(moment, "09:00", "17:00", tz),
        lambda: defer_out_of(moment, "21:00", "08:00", tz),
        lambda: local_iso(moment, tz),
    ):
        with pytest.raises(ValueError, match="time zone"):
            call()


@pytest.mark.parametrize(
    "call",
    [
        lambda: at_local_time(utc(2026, 6, 10), "24:00", BERLIN),
        lambda: in_window(utc(2026, 6, 10), "21:00", "8", BERLIN),
        lambda: next_open(utc(2026, 6, 10), "9:0", "17:00", BERLIN),
        lambda: defer_out_of(utc(2026, 6, 10), "21:00", "08:60", BERLIN),
    ],
    ids=["at_local_time", "in_window", "next_open", "defer_out_of"],
)
def test_bad_clock_strings_are_refused(call: object) -> None:
    assert callable(call)
    with pytest.raises(ValueError, match="HH:MM"):
        call()


# -- invariants over whole DST days --------------------------------------------------


def _wall(moment: datetime, tz: str) -> time:
    return moment.astimezone(ZoneInfo(tz)).time()


def _wall_in(wall: time, start: time, end: time) -> bool:
    if start == end:
        return True
    if start < end:
        return start <= wall < end
    return wall >= start or wall < end


@pytest.mark.parametrize(
    ("tz", "day"),
    [
        (BERLIN, utc(2026, 3, 28, 12)),
        (BERLIN, utc(2026, 10, 24, 12)),
        (NEW_YORK, utc(2026, 3, 7, 17)),
        (NEW_YORK, utc(2026, 10, 31, 16)),
        (AUCKLAND, utc(2026, 4, 3, 23)),
    ],
)
@pytest.mark.parametrize(("quiet_start", "quiet_end"), [("21:00", "08:00"), ("01:30", "02:15")])
def test_defer_out_of_lands_on_the_first_sendable_minute(
    tz: str, day: datetime, quiet_start: str, quiet_end: str
) -> None:
    """Every 20 minutes over 36 hours around a change: the result is outside the
    quiet hours, UTC, not before the moment, and no whole minute between the
    moment and the result (scanned one by one, read straight from zoneinfo) was
    outside them."""
    start, end = time.fromisoformat(quiet_start), time.fromisoformat(quiet_end)
    for step in range(0, 36 * 60, 20):
        moment = day + timedelta(minutes=step)
        result = defer_out_of(moment, quiet_start, quiet_end, tz)
        assert result.tzinfo is UTC
        assert result >= moment
        assert not _wall_in(_wall(result, tz), start, end)
        probe = moment
        while probe < result:
            assert _wall_in(_wall(probe, tz), start, end), (moment, probe, result)
            probe += timedelta(minutes=1)


def test_a_zone_name_too_long_for_a_file_name_is_an_unknown_zone() -> None:
    # zoneinfo opens a file named after the zone: 300 letters fail with OSError there.
    with pytest.raises(ValueError, match="unknown time zone"):
        local_iso(datetime(2026, 1, 1, tzinfo=UTC), "a" * 300)
