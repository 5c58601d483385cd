"""The lab's week as a grid a person clicks: machines × days, each day a track of hours.

Every block on a track (a booking, a maintenance window, a print job, closed hours, free
time) carries its position and length as percentages of the track, so blocks are drawn
in proportion to time. The page's stylesheet may not be inline (the Content-Security-
Policy allows styles from files only): hub/static/hub/calendar.js places the blocks from
their data attributes, and without scripts they read as a list of times, as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from django.urls import reverse

from machines import labels, selectors, timeline
from machines.models import Booking, Lab, Machine

# A click on free time proposes this long a booking (the services apply the lab's rules).
DEFAULT_BOOKING = timedelta(hours=1)
# When the lab has no opening hours this week, the grid still shows a working day.
QUIET_HOURS = (8, 20)


@dataclass(frozen=True)
class Block:
    kind: str  # closed, free, booking, maintenance, print_job, or now (a line, no width)
    start: datetime  # in the lab's zone
    end: datetime
    left: float  # percent of the track
    width: float
    booking: Booking | None = None
    href: str = ""

    @property
    def start_utc(self) -> str:
        return self.start.astimezone(UTC).isoformat()

    @property
    def end_utc(self) -> str:
        return self.end.astimezone(UTC).isoformat()


@dataclass
class Day:
    date: date
    hours: str  # the one wording of its opening hours (machines.labels.hours_text)
    now_left: float | None  # where "now" falls on its track, if it does
    is_today: bool


@dataclass
class Row:
    machine: Machine
    cells: list[list[Block]] = field(default_factory=list)


@dataclass
class WeekGrid:
    days: list[Day]
    rows: list[Row]
    first_hour: int
    last_hour: int
    ticks: list[tuple[str, float]]  # hour labels along the track

    @property
    def now_in_week(self) -> bool:
        return any(d.now_left is not None for d in self.days)


def _percent(instant: datetime, start: datetime, end: datetime) -> float:
    return round((instant - start).total_seconds() / (end - start).total_seconds() * 100, 3)


def _hour_bounds(open_by_day: dict[date, list[timeline.Interval]], zone) -> tuple[int, int]:
    """The earliest opening and latest closing hour of the week, whole hours around them."""
    first, last = 24, 0
    for day, intervals in open_by_day.items():
        for s, e in intervals:
            local_s, local_e = s.astimezone(zone), e.astimezone(zone)
            first = min(first, local_s.hour if local_s.date() == day else 0)
            end_hours = 24.0 if local_e.date() > day else local_e.hour + local_e.minute / 60
            last = max(last, math.ceil(end_hours))
    return (first, last) if last > first else QUIET_HOURS


def _day_open_spans(day: date, intervals: list[timeline.Interval], zone) -> list[tuple[time, time]]:
    """The day's open intervals as wall-clock spans (a span to the next midnight ends 00:00)."""
    spans = []
    for s, e in intervals:
        local_s, local_e = s.astimezone(zone), e.astimezone(zone)
        opens = time(0) if local_s.date() < day else local_s.time().replace(second=0, microsecond=0)
        closes = time(0) if local_e.date() > day else local_e.time().replace(second=0, microsecond=0)
        spans.append((opens, closes))
    return spans


def _book_href(lab: Lab, machine: Machine, start: datetime, end: datetime) -> str:
    query = urlencode({"start": start.astimezone(UTC).isoformat(), "end": end.astimezone(UTC).isoformat()})
    return f"{reverse('machine-detail', args=[lab.slug, machine.slug])}?{query}#book"


def week_grid(lab: Lab, monday: date, *, now: datetime) -> WeekGrid:
    """The grid of the lab's week from `monday`: per machine and day, its blocks."""
    zone = lab.zone
    days = [monday + timedelta(days=n) for n in range(7)]
    bounds = [
        (timeline.wall_clock(d, time(0), zone), timeline.wall_clock(d + timedelta(days=1), time(0), zone))
        for d in days
    ]
    week_start, week_end = bounds[0][0], bounds[-1][1]
    opened = selectors.open_intervals(lab, week_start, week_end)
    open_by_day = {d: timeline.clip(opened, s, e) for d, (s, e) in zip(days, bounds, strict=True)}
    first_hour, last_hour = _hour_bounds(open_by_day, zone)

    tracks = []
    for d in days:
        start = timeline.wall_clock(d, time(first_hour), zone)
        end = (
            timeline.wall_clock(d + timedelta(days=1), time(0), zone)
            if last_hour == 24
            else timeline.wall_clock(d, time(last_hour), zone)
        )
        tracks.append((start, end))

    def blocks(kind: str, intervals, track, **extra) -> list[Block]:
        start, end = track
        return [
            Block(
                kind=kind,
                start=s.astimezone(zone),
                end=e.astimezone(zone),
                left=_percent(s, start, end),
                width=_percent(e, start, end) - _percent(s, start, end),
                **extra,
            )
            for s, e in timeline.clip(intervals, start, end)
        ]

    closed = [
        blocks("closed", timeline.subtract([track], open_by_day[d]), track)
        for d, track in zip(days, tracks, strict=True)
    ]
    grid_days = []
    for d, track in zip(days, tracks, strict=True):
        start, end = track
        grid_days.append(
            Day(
                date=d,
                hours=labels.hours_text(_day_open_spans(d, open_by_day[d], zone)),
                now_left=_percent(now, start, end) if start <= now < end else None,
                is_today=now.astimezone(zone).date() == d,
            )
        )

    machines = list(lab.machines.order_by("name"))
    taken = list(
        Booking.objects.filter(
            machine__lab=lab, status__in=Booking.ACTIVE, start__lt=week_end, end__gt=week_start
        )
        .select_related("member")
        .order_by("start")
    )
    rows = []
    for machine in machines:
        free = selectors.machine_free_slots(machine, week_start, week_end, now=now)
        row = Row(machine=machine)
        for n, track in enumerate(tracks):
            cell = list(closed[n])
            for s, e in timeline.clip(free, *track):
                cell.extend(
                    blocks(
                        "free",
                        [(s, e)],
                        track,
                        href=_book_href(lab, machine, s, min(e, s + DEFAULT_BOOKING)),
                    )
                )
            for booking in taken:
                if booking.machine_id == machine.pk:
                    cell.extend(blocks(booking.kind, [(booking.start, booking.end)], track, booking=booking))
            cell.sort(key=lambda b: (b.left, b.kind != "closed"))
            now_left = grid_days[n].now_left
            if now_left is not None:
                local_now = now.astimezone(zone)
                cell.append(Block(kind="now", start=local_now, end=local_now, left=now_left, width=0))
            row.cells.append(cell)
        rows.append(row)

    # A day's track is narrow: an hour label ("09") every few hours, on the hours that
    # divide the step, so that labels never crowd.
    span = last_hour - first_hour
    step = 2 if span <= 8 else 3 if span <= 12 else 6
    ticks = [
        (f"{hour:02d}", round((hour - first_hour) / span * 100, 3))
        for hour in range(first_hour, last_hour)
        if hour % step == 0
    ]
    return WeekGrid(days=grid_days, rows=rows, first_hour=first_hour, last_hour=last_hour, ticks=ticks)
