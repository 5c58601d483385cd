"""Labs, machines and bookings for tests, made through the services like real ones."""

from __future__ import annotations

from datetime import date, datetime, time

from machines import services, timeline
from machines.models import Lab, Machine

PARIS = "Europe/Paris"


def make_lab(manager, *, slug: str = "fablab", tz: str = PARIS, hours: str = "09:00-21:00", **rules) -> Lab:
    """A lab open every day during `hours` ("HH:MM-HH:MM"; "00:00-00:00" is all day)."""
    lab = services.lab_create(
        creator=manager, name=slug.replace("-", " ").title(), slug=slug, timezone=tz, **rules
    )
    # As if a site administrator had approved it (tests/machines/test_lab_approval.py).
    Lab.objects.filter(pk=lab.pk).update(approved_at=lab.created_at)
    lab.refresh_from_db()
    opens, closes = (time.fromisoformat(t) for t in hours.split("-"))
    services.lab_set_hours(lab=lab, actor=manager, hours=[(d, opens, closes) for d in range(7)])
    return lab


def add_member(lab: Lab, user) -> None:
    services.membership_join(lab=lab, user=user)


def make_machine(
    lab: Lab, *, slug: str = "laser", kind: str = Machine.Kind.LASER_CUTTER, **fields
) -> Machine:
    actor = lab.memberships.filter(role="manager").first().user
    return services.machine_create(
        lab=lab,
        actor=actor,
        name=fields.pop("name", slug.replace("-", " ").title()),
        slug=slug,
        kind=kind,
        **fields,
    )


def at(lab: Lab, day: date | str, clock: str) -> datetime:
    """`clock` o'clock on `day` in the lab's zone, as an aware UTC datetime."""
    if isinstance(day, str):
        day = date.fromisoformat(day)
    return timeline.wall_clock(day, time.fromisoformat(clock), lab.zone)


def book(machine: Machine, member, day: date | str, start: str, end: str, **kwargs):
    lab = machine.lab
    return services.booking_create(
        machine=machine, member=member, start=at(lab, day, start), end=at(lab, day, end), **kwargs
    )
