"""Local-time arithmetic for journeys: "at 10:00 local", windows, quiet hours.

Everything here is pure and deterministic, because journey workflows call it: no
wall clock, no randomness, no state of its own, and no I/O beyond the time zone
files ``zoneinfo`` reads. Datetimes go in and come out timezone-aware in UTC
(``datetime.UTC``); the customer's zone is an IANA name such as
``"Pacific/Auckland"``. Times of day are ``"HH:MM"`` (24-hour) strings as in
:mod:`workflows.plans.model`.

Daylight saving time, when a wall time is asked for:

* a wall time that does not exist that day (the clocks spring forward over it)
  becomes the first instant after the gap, e.g. Europe/Berlin 2026-03-29 02:30
  becomes 03:00 CEST (01:00 UTC);
* a wall time that happens twice (the clocks fall back over it) is its first
  occurrence, unless that one is already past, in which case the second one is
  still "the first instant at or after" and is used.

Windows (``start`` inclusive, ``end`` exclusive) are decided by the local wall
time alone: ``start`` after ``end`` wraps midnight (21:00-08:00 holds 23:00 and
07:59, not 08:00), ``start == end`` is the whole day.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "at_local_time",
    "defer_out_of",
    "in_window",
    "local_iso",
    "next_open",
    "parse_clock",
    "to_utc",
]

# "7:05" and "07:05" are fine, "7:5", "24:00" and "07:60" are not.
_CLOCK = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")

# Offset changes (DST and the rest) are searched for in steps this long; no zone
# changes its offset twice within one step.
_SCAN_STEP = timedelta(hours=6)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


def parse_clock(text: str) -> time:
    """``"HH:MM"`` (24-hour, the hour may have one digit) as a :class:`datetime.time`."""
    match = _CLOCK.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid time of day {text!r}: expected 24-hour HH:MM, 00:00 to 23:59")
    return time(int(match.group(1)), int(match.group(2)))


def to_utc(moment: datetime) -> datetime:
    """``moment`` as a datetime whose tzinfo is ``datetime.UTC``; naive ones are refused.

    Any aware datetime is accepted (pydantic's own UTC tzinfo, fixed offsets,
    ZoneInfo), so callers need not care where a value came from.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: a time zone is required")
    return moment.astimezone(UTC)


def at_local_time(after: datetime, clock: str, tz: str) -> datetime:
    """The first instant at or after ``after`` whose wall time in ``tz`` is ``clock``.

    A wall time in a spring-forward gap counts as the first instant after the
    gap; of a wall time that happens twice, the first occurrence not before
    ``after`` is taken. ``clock`` is matched to the second: if ``after`` is
    10:00:30 local, 10:00 is tomorrow's.
    """
    start = to_utc(after)
    wall = parse_clock(clock)
    zone = _zone(tz)
    # From the day before, in case ``after`` lies in a repeated hour that crosses
    # midnight; a few days on covers even a zone that skipped a whole day.
    day = start.astimezone(zone).date() - timedelta(days=1)
    for _ in range(5):
        for instant in _instants(day, wall, zone):
            if instant >= start:
                return instant
        day += timedelta(days=1)
    raise RuntimeError(f"no {clock} in {tz} within days of {start.isoformat()}")  # unreachable


def in_window(moment: datetime, window_start: str, window_end: str, tz: str) -> bool:
    """Whether the wall time of ``moment`` in ``tz`` is in [start, end).

    ``start`` after ``end`` wraps midnight; ``start == end`` is the whole day.
    """
    start = parse_clock(window_start)
    end = parse_clock(window_end)
    wall = to_utc(moment).astimezone(_zone(tz)).time()
    return _wall_in_window(wall, start, end)


def next_open(moment: datetime, window_start: str, window_end: str, tz: str) -> datetime:
    """``moment`` if it is inside the window, else the next instant the window opens.

    The window opens when the wall clock reaches ``window_start`` (a start in a
    spring-forward gap: the first instant after the gap), or when a change of
    offset makes the wall clock jump into the window (a fall-back can move it
    back into a window that ends just after the change).
    """
    start = parse_clock(window_start)
    end = parse_clock(window_end)
    zone = _zone(tz)
    begin = to_utc(moment)
    if _wall_in_window(begin.astimezone(zone).time(), start, end):
        return begin
    opening = at_local_time(begin, window_start, tz)
    for change in _offset_changes(begin, opening, zone):
        if _wall_in_window(change.astimezone(zone).time(), start, end):
            return change
    return opening


def defer_out_of(moment: datetime, quiet_start: str, quiet_end: str, tz: str) -> datetime:
    """``moment`` if it is outside the quiet hours, else the instant they end.

    That is :func:`next_open` of the complementary window [``quiet_end``,
    ``quiet_start``). Quiet hours with ``quiet_start == quiet_end`` would be the
    whole day, leaving no time to send at all, and are refused with ValueError.
    """
    if parse_clock(quiet_start) == parse_clock(quiet_end):
        raise ValueError(
            f"quiet hours {quiet_start}-{quiet_end} cover the whole day: nothing could be sent"
        )
    return next_open(moment, quiet_end, quiet_start, tz)


def local_iso(moment: datetime, tz: str) -> str:
    """``moment`` as ISO 8601 local time with its offset, to the minute.

    E.g. ``"2026-03-30T10:00+02:00"``; seconds are cut off, not rounded.
    """
    return to_utc(moment).astimezone(_zone(tz)).isoformat(timespec="minutes")


# -- helpers -------------------------------------------------------------------------


def _zone(tz: str) -> ZoneInfo:
    """The zone named ``tz``; unknown or malformed names raise ValueError."""
    # OSError: zoneinfo opens a file named after the zone, and 300 letters are too long.
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError) as error:
        raise ValueError(f"unknown time zone {tz!r}") from error


def _wall_in_window(wall: time, start: time, end: time) -> bool:
    if start == end:
        return True
    if start < end:
        return start <= wall < end
    return wall >= start or wall < end


def _instants(day: date, wall: time, zone: ZoneInfo) -> list[datetime]:
    """The UTC instants at which the wall clock in ``zone`` shows ``wall`` on ``day``.

    One as a rule; two, earlier first, in a fall-back; in a spring-forward gap,
    none really, so the first instant after the gap stands in for it.
    """
    local = datetime.combine(day, wall)
    first = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return [first]
    if first < second:
        return [first, second]
    # In a gap, fold=0 reads the wall time with the offset from before the
    # change and fold=1 with the one after (PEP 495), so the change lies between.
    return [_change_between(second, first, zone)]


def _offset(instant: datetime, zone: ZoneInfo) -> timedelta | None:
    return instant.astimezone(zone).utcoffset()


def _change_between(low: datetime, high: datetime, zone: ZoneInfo) -> datetime:
    """The instant in (low, high] at which the offset of ``zone`` changes.

    The offsets at ``low`` and ``high`` must differ, with one change between them;
    changes happen on whole seconds (tz data has no finer resolution).
    """
    before = _offset(low, zone)
    # Whole seconds since the epoch: the floor of ``low`` still has the old offset
    # and the ceiling of ``high`` the new one, as no change falls between them.
    low_s = (low - _EPOCH) // _SECOND
    high_s = -((_EPOCH - high) // _SECOND)
    while high_s - low_s > 1:
        mid_s = (low_s + high_s) // 2
        if _offset(_EPOCH + mid_s * _SECOND, zone) == before:
            low_s = mid_s
        else:
            high_s = mid_s
    return _EPOCH + high_s * _SECOND


def _offset_changes(begin: datetime, end: datetime, zone: ZoneInfo) -> list[datetime]:
    """The instants in (begin, end] at which the offset of ``zone`` changes, in order."""
    changes: list[datetime] = []
    low = begin
    while low < end:
        high = min(low + _SCAN_STEP, end)
        if _offset(low, zone) != _offset(high, zone):
            changes.append(_change_between(low, high, zone))
        low = high
    return changes
