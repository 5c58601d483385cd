"""A plain booking on PostgreSQL is one statement that checks the rules itself.

`booking_create` writes a booking with no quota, approval or credit through
`timeline_lock_insert` with the rules as its condition (`bookings.PLAIN_BOOKING`). That
condition may refuse what Python accepts (Python then decides, and the booking still
goes through), never the reverse: each test here runs the statement alone, without the
Python checks behind it, and checks what it writes. Then the race the statement must
survive: a manager's change committed while it waits for the machine's row.
"""

from __future__ import annotations

import threading
import time as clock
from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from hub.exceptions import Conflict, ValidationError
from machines import services
from machines.models import Booking, LabMembership, Machine, PrintSettings
from machines.services import bookings
from machines.services.timeline import timeline_lock_insert
from tests.concurrency import on_postgres
from tests.factories import UserFactory
from tests.machines.factories import at, make_lab, make_machine

pytestmark = on_postgres

# Wednesday 25 March 2026, in the frozen week (NOW is Monday 23, 08:00 UTC): no clock
# change within a day of it. Europe/Paris moves its clocks forward on Sunday 29 March.
WEDNESDAY = date(2026, 3, 25)


def statement_books(machine, member, start, end, *, qualified: bool = False) -> bool:
    """The one statement alone: whether it wrote the booking."""
    row = Booking(
        machine=machine,
        member=member,
        created_by=member,
        kind=Booking.Kind.BOOKING,
        status=Booking.Status.APPROVED,
        start=start,
        end=end,
    )
    where = bookings.PLAIN_QUALIFIED_BOOKING if qualified else bookings.PLAIN_BOOKING
    params = bookings._plain_booking_params(machine, member, start, end)
    written = params is not None and timeline_lock_insert(row, where=where, params=params)
    assert written == Booking.objects.filter(machine=machine).exists()
    return written


def wednesday(lab, clock_from: str, clock_to: str) -> tuple[datetime, datetime]:
    return at(lab, WEDNESDAY, clock_from), at(lab, WEDNESDAY, clock_to)


@pytest.mark.django_db
def test_the_statement_books_a_plain_booking_and_leaves_the_version(lab, member, printer):
    assert statement_books(printer, member, *wednesday(lab, "10:00", "12:00"))
    assert Machine.objects.get(pk=printer.pk).timeline_version == 0


def _not_a_member(lab, alice, member, printer):
    return printer, UserFactory(username="stranger"), wednesday(lab, "10:00", "12:00")


def _waiting_to_join(lab, alice, member, printer):
    LabMembership.objects.filter(lab=lab, user=member).update(status=LabMembership.Status.PENDING)
    return printer, member, wednesday(lab, "10:00", "12:00")


def _lab_asks_for_approval(lab, alice, member, printer):
    services.lab_update(lab=lab, actor=alice, requires_approval=True)
    return printer, member, wednesday(lab, "10:00", "12:00")


def _machine_asks_for_approval(lab, alice, member, printer):
    Machine.objects.filter(pk=printer.pk).update(requires_approval=True)
    return printer, member, wednesday(lab, "10:00", "12:00")


def _lab_quota(lab, alice, member, printer):
    services.lab_update(lab=lab, actor=alice, weekly_quota_minutes=600)
    return printer, member, wednesday(lab, "10:00", "12:00")


def _machine_quota(lab, alice, member, printer):
    Machine.objects.filter(pk=printer.pk).update(weekly_quota_minutes=600)
    return printer, member, wednesday(lab, "10:00", "12:00")


def _credits(lab, alice, member, printer):
    PrintSettings.objects.create(lab=lab, credits_enabled=True)
    return printer, member, wednesday(lab, "10:00", "12:00")


def _too_short(lab, alice, member, printer):
    return printer, member, wednesday(lab, "10:00", "10:14")


def _too_long(lab, alice, member, printer):
    return printer, member, wednesday(lab, "10:00", "14:01")


def _shorter_than_the_machine_s_minimum(lab, alice, member, printer):
    Machine.objects.filter(pk=printer.pk).update(min_booking_minutes=180)
    return printer, member, wednesday(lab, "10:00", "12:00")


def _too_soon(lab, alice, member, printer):
    services.lab_update(lab=lab, actor=alice, min_notice_minutes=3 * 24 * 60)
    return printer, member, wednesday(lab, "10:00", "12:00")


def _past(lab, alice, member, printer):
    return printer, member, (at(lab, "2026-03-22", "10:00"), at(lab, "2026-03-22", "12:00"))


def _beyond_the_horizon(lab, alice, member, printer):
    services.lab_update(lab=lab, actor=alice, max_horizon_days=1)
    return printer, member, wednesday(lab, "10:00", "12:00")


def _closed(lab, alice, member, printer):
    services.closure_create(
        lab=lab, actor=alice, start=at(lab, WEDNESDAY, "11:59"), end=at(lab, WEDNESDAY, "13:00")
    )
    return printer, member, wednesday(lab, "10:00", "12:00")


def _before_opening(lab, alice, member, printer):
    return printer, member, wednesday(lab, "08:45", "10:00")


def _after_closing(lab, alice, member, printer):
    return printer, member, wednesday(lab, "20:00", "21:15")


def _past_the_midnight_the_lab_closes_at(lab, alice, member, printer):
    services.lab_set_hours(lab=lab, actor=alice, hours=[(d, time(9), time(0)) for d in range(7)])
    return printer, member, (at(lab, WEDNESDAY, "23:00"), at(lab, "2026-03-26", "01:00"))


def _until_midnight_in_a_lab_that_closes_at_nine(lab, alice, member, printer):
    return printer, member, (at(lab, WEDNESDAY, "20:00"), at(lab, "2026-03-26", "00:00"))


def _the_lab_moved_to_another_zone(lab, alice, member, printer):
    # The caller's copy of the machine still has the lab in Paris.
    type(lab).objects.filter(pk=lab.pk).update(timezone="Asia/Tokyo")
    return printer, member, wednesday(lab, "10:00", "12:00")


def _out_of_order(lab, alice, member, printer):
    Machine.objects.filter(pk=printer.pk).update(status=Machine.Status.OUT_OF_ORDER)
    return printer, member, wednesday(lab, "10:00", "12:00")


def _needs_a_training_the_caller_s_copy_does_not_know_of(lab, alice, member, printer):
    Machine.objects.filter(pk=printer.pk).update(requires_qualification=True)
    return printer, member, wednesday(lab, "10:00", "12:00")


def _the_day_before_the_clocks_change(lab, alice, member, printer):
    return printer, member, (at(lab, "2026-03-28", "10:00"), at(lab, "2026-03-28", "12:00"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "breaks_a_rule",
    [
        _not_a_member,
        _waiting_to_join,
        _lab_asks_for_approval,
        _machine_asks_for_approval,
        _lab_quota,
        _machine_quota,
        _credits,
        _too_short,
        _too_long,
        _shorter_than_the_machine_s_minimum,
        _too_soon,
        _past,
        _beyond_the_horizon,
        _closed,
        _before_opening,
        _after_closing,
        _past_the_midnight_the_lab_closes_at,
        _until_midnight_in_a_lab_that_closes_at_nine,
        _the_lab_moved_to_another_zone,
        _out_of_order,
        _needs_a_training_the_caller_s_copy_does_not_know_of,
        _the_day_before_the_clocks_change,
    ],
)
def test_the_statement_writes_nothing_when_a_rule_is_not_met(lab, alice, member, printer, breaks_a_rule):
    machine, who, (start, end) = breaks_a_rule(lab, alice, member, printer)
    assert not statement_books(machine, who, start, end)


@pytest.mark.django_db
def test_a_manager_books_without_approval_and_a_closure_that_ends_as_the_booking_starts_is_no_obstacle(
    lab, alice, member, printer
):
    services.lab_update(lab=lab, actor=alice, requires_approval=True)
    services.closure_create(
        lab=lab, actor=alice, start=at(lab, WEDNESDAY, "09:00"), end=at(lab, WEDNESDAY, "10:00")
    )
    assert statement_books(printer, alice, *wednesday(lab, "10:00", "12:00"))


@pytest.mark.django_db
def test_the_statement_books_until_the_midnight_a_lab_closes_at(lab, alice, member, printer):
    services.lab_set_hours(lab=lab, actor=alice, hours=[(d, time(9), time(0)) for d in range(7)])
    assert statement_books(printer, member, at(lab, WEDNESDAY, "20:00"), at(lab, "2026-03-26", "00:00"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("trained_on", "expires_on", "books"),
    [
        (date(2026, 1, 1), None, True),
        (date(2026, 1, 1), date(2026, 3, 24), False),  # expired before the booking's day
        (date(2026, 3, 24), None, False),  # trained after today
        (None, None, False),
    ],
)
def test_the_statement_checks_the_qualification_today_and_on_the_booking_s_day(
    lab, alice, member, laser, trained_on, expires_on, books
):
    if trained_on is not None:
        services.qualification_record(
            lab=lab, actor=alice, member=member, machine=laser, trained_on=trained_on, expires_on=expires_on
        )
    assert statement_books(laser, member, *wednesday(lab, "10:00", "12:00"), qualified=True) is books


@pytest.mark.django_db
def test_hours_that_close_in_the_skipped_hour_close_at_the_jump(alice, frozen):
    """02:30 does not exist in Paris on 29 March 2026: the lab closes at the jump (01:00
    UTC, `timeline.wall_clock`), and PostgreSQL's own reading of 02:30 (an hour later)
    must not let the statement book past it."""
    lab = make_lab(alice, hours="00:00-02:30")
    member = UserFactory(username="member")
    services.membership_join(lab=lab, user=member)
    machine = make_machine(lab, slug="saw")
    start = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    assert not statement_books(machine, member, start, start + timedelta(minutes=40))
    with pytest.raises(ValidationError, match="outside Fablab's opening hours"):
        services.booking_create(
            machine=machine, member=member, start=start, end=start + timedelta(minutes=40)
        )


@pytest.mark.django_db
def test_hours_that_close_in_the_repeated_hour_close_at_its_first_pass(alice, frozen):
    """02:30 comes twice in Paris on 25 October 2026: the lab closes at the first (00:30
    UTC, `timeline.wall_clock`). A booking that ends at 02:10 on the second pass reads as
    inside the hours on the wall clock, and must not be booked by the statement."""
    lab = make_lab(alice, hours="00:00-02:30", max_horizon_days=365)
    member = UserFactory(username="member")
    services.membership_join(lab=lab, user=member)
    machine = make_machine(lab, slug="saw")
    start, end = datetime(2026, 10, 25, 0, 40, tzinfo=UTC), datetime(2026, 10, 25, 1, 10, tzinfo=UTC)
    assert not statement_books(machine, member, start, end)
    with pytest.raises(ValidationError, match="outside Fablab's opening hours"):
        services.booking_create(machine=machine, member=member, start=start, end=end)


@pytest.mark.django_db
def test_a_booking_the_statement_leaves_to_python_is_still_booked(alice, frozen):
    """Across midnight in a lab open all day: two days' intervals, which the statement does
    not join; Python does."""
    lab = make_lab(alice, hours="00:00-00:00")
    member = UserFactory(username="member")
    services.membership_join(lab=lab, user=member)
    machine = make_machine(lab, slug="saw")
    start, end = at(lab, WEDNESDAY, "23:00"), at(lab, "2026-03-26", "01:00")
    assert not statement_books(machine, member, start, end)
    booking = services.booking_create(machine=machine, member=member, start=start, end=end)
    assert booking.status == Booking.Status.APPROVED


@pytest.mark.django_db
def test_a_booking_decided_in_python_does_not_move_the_version(lab, alice, member, printer):
    """It takes the machine's lock without moving the version on: plain bookings racing it
    stay on the one statement."""
    services.lab_update(lab=lab, actor=alice, weekly_quota_minutes=600)
    version = Machine.objects.get(pk=printer.pk).timeline_version
    with CaptureQueriesContext(connection) as statements:
        services.booking_create(
            machine=printer, member=member, start=at(lab, WEDNESDAY, "10:00"), end=at(lab, WEDNESDAY, "12:00")
        )
    sqls = [q["sql"] for q in statements.captured_queries]
    (lock,) = [q for q in sqls if "FOR NO KEY UPDATE" in q and not q.startswith("WITH locked")]
    assert "machines_lab" not in lock  # the machine's row alone, not its lab's
    assert Machine.objects.get(pk=printer.pk).timeline_version == version


# -- a change committed while the statement waits for the machine's row ---------------------


def committed_once_the_booking_waits(change) -> tuple[threading.Thread, list[Exception]]:
    """Run `change()` in a transaction of another connection, which commits only once this
    connection's next statement waits for a lock: that statement's snapshot is older than
    the change, and it sees the machine's row only after the change commits."""
    connection.ensure_connection()
    booking_pid = connection.connection.info.backend_pid
    changed = threading.Event()
    errors: list[Exception] = []

    def run() -> None:
        try:
            with transaction.atomic():
                change()
                changed.set()
                deadline = clock.monotonic() + 30
                with connection.cursor() as cursor:
                    while True:
                        # Statistics are read once per transaction unless cleared.
                        cursor.execute("SELECT pg_stat_clear_snapshot()")
                        cursor.execute(
                            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [booking_pid]
                        )
                        if cursor.fetchone() == ("Lock",):
                            break
                        assert clock.monotonic() < deadline, "the booking never waited for the change"
                        clock.sleep(0.01)
        except Exception as exc:  # asserted on by the test
            errors.append(exc)
            changed.set()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    assert changed.wait(timeout=30)
    return thread, errors


@pytest.fixture
def racing(alice, frozen):
    lab = make_lab(alice)
    member = UserFactory(username="member")
    services.membership_join(lab=lab, user=member)
    return lab, member, make_machine(lab, slug="saw")


@pytest.mark.django_db(transaction=True)
def test_a_closure_committed_while_the_statement_waits_refuses_the_booking(racing, alice):
    lab, member, machine = racing
    start, end = wednesday(lab, "10:00", "12:00")
    thread, errors = committed_once_the_booking_waits(
        lambda: services.closure_create(
            lab=lab,
            actor=alice,
            start=at(lab, WEDNESDAY, "00:00"),
            end=at(lab, "2026-03-26", "00:00"),
            reason="inventory",
        )
    )
    try:
        with pytest.raises(ValidationError, match="closed .*inventory"):
            services.booking_create(machine=machine, member=member, start=start, end=end)
    finally:
        thread.join(timeout=60)
    assert errors == []
    assert not Booking.objects.filter(machine=machine).exists()


@pytest.mark.django_db(transaction=True)
def test_a_breakdown_committed_while_the_statement_waits_refuses_the_booking(racing, alice):
    lab, member, machine = racing
    start, end = wednesday(lab, "10:00", "12:00")
    thread, errors = committed_once_the_booking_waits(
        lambda: services.machine_set_status(
            machine=machine, actor=alice, status="out_of_order", reason="smoke"
        )
    )
    try:
        with pytest.raises(Conflict, match="out of order: smoke"):
            services.booking_create(machine=machine, member=member, start=start, end=end)
    finally:
        thread.join(timeout=60)
    assert errors == []
    assert not Booking.objects.filter(machine=machine).exists()


@pytest.mark.django_db(transaction=True)
def test_hours_changed_while_the_statement_waits_refuse_the_booking(racing, alice):
    lab, member, machine = racing
    start, end = wednesday(lab, "10:00", "12:00")
    afternoons = [(d, time(13), time(21)) for d in range(7)]
    thread, errors = committed_once_the_booking_waits(
        lambda: services.lab_set_hours(lab=lab, actor=alice, hours=afternoons)
    )
    try:
        with pytest.raises(ValidationError, match="outside .* opening hours"):
            services.booking_create(machine=machine, member=member, start=start, end=end)
    finally:
        thread.join(timeout=60)
    assert errors == []
    assert not Booking.objects.filter(machine=machine).exists()
