"""Interval arithmetic and wall-clock conversion, without a database."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from machines import timeline

PARIS = ZoneInfo("Europe/Paris")


def h(hour: int, minute: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 6, day, hour, minute, tzinfo=UTC)


def test_touching_intervals_merge():
    assert timeline.merge([(h(12), h(14)), (h(9), h(12)), (h(15), h(16))]) == [(h(9), h(14)), (h(15), h(16))]


def test_subtracting_holes_leaves_the_gaps():
    assert timeline.subtract([(h(9), h(18))], [(h(10), h(11)), (h(17), h(19)), (h(7), h(8))]) == [
        (h(9), h(10)),
        (h(11), h(17)),
    ]


def test_subtracting_many_holes_from_many_intervals_matches_a_minute_by_minute_count():
    """`subtract` walks the sorted holes once: holes that end before an interval, span two
    intervals, or start after the last one must all still count."""
    intervals = [(h(9, day=d), h(12, day=d)) for d in range(1, 8)] + [
        (h(14, day=d), h(18, day=d)) for d in range(1, 8)
    ]
    holes = [(h(8, day=1), h(10, day=1)), (h(11, day=2), h(15, day=2)), (h(17, day=3), h(10, day=4))]
    holes += [(h(9, 30, day=5), h(9, 45, day=5)), (h(10, day=5), h(11, day=5)), (h(20, day=7), h(23, day=7))]
    free = timeline.subtract(intervals, holes)

    def minutes_in(spans):
        return {
            s + timedelta(minutes=n) for s, e in spans for n in range(int((e - s) / timedelta(minutes=1)))
        }

    assert minutes_in(free) == minutes_in(intervals) - minutes_in(holes)
    assert free == timeline.merge(free)  # sorted, disjoint


def test_a_range_must_lie_inside_one_interval():
    assert timeline.contains([(h(9), h(12)), (h(12), h(14))], h(11), h(13))
    assert not timeline.contains([(h(9), h(12)), (h(13), h(14))], h(11), h(13))


def test_a_skipped_wall_clock_time_is_the_moment_of_the_jump():
    assert timeline.wall_clock(date(2026, 3, 29), time(2, 30), PARIS) == datetime(
        2026, 3, 29, 1, 0, tzinfo=UTC
    )
    assert timeline.wall_clock(date(2026, 3, 29), time(3, 0), PARIS) == datetime(
        2026, 3, 29, 1, 0, tzinfo=UTC
    )


def test_an_ambiguous_wall_clock_time_is_its_first_occurrence():
    assert timeline.wall_clock(date(2026, 10, 25), time(2, 30), PARIS) == datetime(
        2026, 10, 25, 0, 30, tzinfo=UTC
    )


def test_all_day_opening_joins_across_midnight_and_has_23_hours_on_the_spring_day():
    weekly = [(d, time(0), time(0)) for d in range(7)]
    start = timeline.wall_clock(date(2026, 3, 29), time(0), PARIS)
    end = timeline.wall_clock(date(2026, 3, 30), time(0), PARIS)
    assert timeline.opening_intervals(weekly, PARIS, start, end) == [(start, end)]
    assert (end - start).total_seconds() == 23 * 3600


def test_the_week_starts_on_the_lab_s_monday():
    # Sunday 23:30 UTC is already Monday in Paris.
    assert timeline.week_start(datetime(2026, 3, 22, 23, 30, tzinfo=UTC), PARIS) == date(2026, 3, 23)
