"""Half-open time intervals [start, end) and the lab's wall clock turned into them.

Pure functions, no database: selectors feed them rows, tests feed them literals. Every
datetime here is aware; the lab's opening hours are wall-clock times in its zone, so
"09:00" is 08:00 UTC in Paris winter and 07:00 UTC in summer, and a day may have 23 or
25 hours.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

Interval = tuple[datetime, datetime]


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, with overlapping or touching intervals joined."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def subtract(intervals: Iterable[Interval], holes: Iterable[Interval]) -> list[Interval]:
    """What of `intervals` is left once `holes` are cut out of it."""
    holes = merge(holes)
    result: list[Interval] = []
    first = 0  # both lists are sorted: holes ending before an interval cannot touch a later one
    for start, end in merge(intervals):
        while first < len(holes) and holes[first][1] <= start:
            first += 1
        cursor = start
        for hole_start, hole_end in holes[first:]:
            if hole_start >= end:
                break
            if hole_start > cursor:
                result.append((cursor, hole_start))
            cursor = max(cursor, hole_end)
            if cursor >= end:
                break
        if cursor < end:
            result.append((cursor, end))
    return result


def clip(intervals: Iterable[Interval], start: datetime, end: datetime) -> list[Interval]:
    return [(max(s, start), min(e, end)) for s, e in intervals if e > start and s < end]


def contains(intervals: Iterable[Interval], start: datetime, end: datetime) -> bool:
    """Whether [start, end) lies inside one of the (merged) intervals."""
    return any(s <= start and end <= e for s, e in merge(intervals))


def local_days(start: datetime, end: datetime, zone: ZoneInfo) -> list[date]:
    """The lab's calendar days that [start, end) touches, with one day of margin each side."""
    first = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def wall_clock(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The instant `at` o'clock on `day` in `zone`, in UTC.

    A wall-clock time that does not exist (skipped by a spring-forward change) maps to
    the instant the clocks jumped over it, and an ambiguous one (autumn) to its first
    occurrence: opening at 02:30 on a night that skips 02:00–03:00 means opening at 03:00.
    """
    naive = datetime.combine(day, at)
    instant = naive.replace(tzinfo=zone).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == naive:
        return instant
    # Skipped: the jump lies between the two readings of the wall time (fold 1 uses the
    # offset after the change, so it is the earlier instant). Find it to the second.
    low = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = instant
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)  # jumps happen on whole seconds: [jump, jump + 1s)


def opening_intervals(
    weekly: Iterable[tuple[int, time, time]], zone: ZoneInfo, start: datetime, end: datetime
) -> list[Interval]:
    """Opening hours (weekday 0 = Monday, opens, closes; closes 00:00 = midnight) as UTC
    intervals overlapping [start, end), merged across midnight."""
    by_day: dict[int, list[tuple[time, time]]] = {}
    for weekday, opens, closes in weekly:
        by_day.setdefault(weekday, []).append((opens, closes))
    intervals = []
    for day in local_days(start, end, zone):
        for opens, closes in by_day.get(day.weekday(), ()):
            close_day = day + timedelta(days=1) if closes == time(0) else day
            intervals.append((wall_clock(day, opens, zone), wall_clock(close_day, closes, zone)))
    return clip(merge(intervals), start, end)


def minutes(interval: Interval) -> float:
    return (interval[1] - interval[0]).total_seconds() / 60


def week_start(instant: datetime, zone: ZoneInfo) -> date:
    """The Monday of the lab's week that holds `instant`."""
    day = instant.astimezone(zone).date()
    return day - timedelta(days=day.weekday())
