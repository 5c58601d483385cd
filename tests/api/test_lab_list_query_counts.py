"""Every list endpoint of the labs and print-queue API takes as many queries for many rows
as for one: labs, hours, closures, members, machines, availability, bookings, calendar
feeds, qualifications, notifications, printers, print jobs, print records and tokens."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from hub import services as hub_services
from machines import notifications, services
from machines.models import Machine, PrintJob, PrintRecord
from tests.api.querycounts import assert_queries_do_not_grow_with_rows, plain_list, results
from tests.conftest import client_for
from tests.factories import DesignFactory, UserFactory, commit_files
from tests.machines.factories import add_member, at, book, make_lab, make_machine
from tests.printing.factories import make_printer, queued_job

pytestmark = pytest.mark.django_db

# Monday 23 March 2026, 09:00 in Paris; the bookings are on the Tuesday.
NOW = datetime(2026, 3, 23, 8, 0, tzinfo=UTC)
TUESDAY = date(2026, 3, 24)
numbers = itertools.count(1)


def new_user():
    return UserFactory(username=f"person{next(numbers)}")


def new_member(lab):
    person = new_user()
    add_member(lab, person)
    return person


def new_machine(lab, **fields):
    n = next(numbers)
    return make_machine(lab, slug=f"laser-{n}", name=f"Laser {n}", **fields)


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def lab(alice, bob):
    """Alice manages the Fablab (open 09:00–21:00 every day); Bob is a member."""
    lab = make_lab(alice)
    add_member(lab, bob)
    return lab


def lab_url(name: str, *args) -> str:
    return reverse(name, args=["fablab", *args])


def test_listing_labs_takes_the_same_queries_for_one_lab_as_for_many(api):
    def add(n):
        for _ in range(n):
            make_lab(new_user(), slug=f"lab-{next(numbers)}", description="A *lab*.")

    assert_queries_do_not_grow_with_rows(api, reverse("api-lab-list"), add=add, listed=results)


def test_listing_opening_hours_takes_the_same_queries_for_one_day_as_for_many(api, lab, alice):
    days: list[int] = []

    def add(n):
        days.extend(range(len(days), len(days) + n))
        services.lab_set_hours(lab=lab, actor=alice, hours=[(d, time(9), time(17)) for d in days])

    assert_queries_do_not_grow_with_rows(api, lab_url("api-lab-hours"), add=add, listed=plain_list)


def test_listing_closures_takes_the_same_queries_for_one_closure_as_for_many(api, lab, alice):
    def add(n):
        for _ in range(n):
            start = at(lab, TUESDAY + timedelta(days=next(numbers)), "00:00")
            services.closure_create(lab=lab, actor=alice, start=start, end=start + timedelta(hours=2))

    assert_queries_do_not_grow_with_rows(api, lab_url("api-lab-closures"), add=add, listed=plain_list)


def test_listing_members_takes_the_same_queries_for_one_member_as_for_many(alice, lab):
    def add(n):
        for _ in range(n):
            new_member(lab)

    assert_queries_do_not_grow_with_rows(
        client_for(alice), lab_url("api-lab-members"), add=add, listed=plain_list
    )


def test_listing_machines_takes_the_same_queries_for_one_machine_as_for_many(api, lab):
    def add(n):
        for _ in range(n):
            k = next(numbers)
            if k % 2:
                make_printer(lab, slug=f"mk-{k}")
            else:
                new_machine(lab, requires_qualification=True, max_booking_minutes=120)

    assert_queries_do_not_grow_with_rows(api, lab_url("api-machine-list"), add=add, listed=plain_list)


def test_the_availability_of_a_kind_takes_the_same_queries_for_one_machine_as_for_many(api, lab):
    def add(n):
        for _ in range(n):
            machine = new_machine(lab)
            book(machine, new_member(lab), TUESDAY, "10:00", "11:00")

    assert_queries_do_not_grow_with_rows(
        api,
        lab_url("api-lab-availability"),
        params={"kind": Machine.Kind.LASER_CUTTER},
        add=add,
        listed=plain_list,
    )


def test_the_availability_of_a_machine_takes_the_same_queries_for_one_booking_as_for_many(api, lab):
    machine = new_machine(lab)
    hours = iter(range(10, 21))

    def add(n):
        for _ in range(n):
            hour = next(hours)
            book(machine, new_member(lab), TUESDAY, f"{hour:02}:00", f"{hour:02}:30")

    # Each half-hour booking splits one free slot in two.
    assert_queries_do_not_grow_with_rows(
        api, lab_url("api-machine-availability", machine.slug), add=add, listed=lambda r: r.json()["free"]
    )


def test_listing_my_bookings_takes_the_same_queries_for_one_booking_as_for_many(lab, bob, alice):
    def add(n):
        for _ in range(n):
            other_lab = make_lab(alice, slug=f"lab-{next(numbers)}")
            add_member(other_lab, bob)
            book(new_machine(other_lab), bob, TUESDAY, "10:00", "11:00")

    assert_queries_do_not_grow_with_rows(
        client_for(bob), reverse("api-booking-list"), add=add, listed=results
    )


def test_listing_a_lab_s_bookings_takes_the_same_queries_for_one_booking_as_for_many(lab, alice):
    def add(n):
        for _ in range(n):
            book(new_machine(lab), new_member(lab), TUESDAY, "10:00", "11:00", note="For a jig")

    assert_queries_do_not_grow_with_rows(
        client_for(alice), lab_url("api-lab-bookings"), add=add, listed=results
    )


def events(response) -> list[str]:
    return response.content.decode().split("BEGIN:VEVENT")[1:]


@pytest.mark.parametrize("scope", ["member", "lab", "machine"])
def test_a_calendar_feed_takes_the_same_queries_for_one_booking_as_for_many(client, lab, alice, bob, scope):
    machine = new_machine(lab)
    if scope == "member":
        feed = services.calendar_feed_get(owner=bob)
    elif scope == "lab":
        feed = services.calendar_feed_get(owner=alice, lab=lab)
    else:
        feed = services.calendar_feed_get(owner=alice, machine=machine)
    hours = iter(range(9, 21))

    def add(n):
        for _ in range(n):
            if scope == "member":
                book(new_machine(lab), bob, TUESDAY, "10:00", "11:00")
            elif scope == "lab":
                book(new_machine(lab), new_member(lab), TUESDAY, "10:00", "11:00")
            else:
                hour = next(hours)
                book(machine, new_member(lab), TUESDAY, f"{hour:02}:00", f"{hour:02}:30")

    assert_queries_do_not_grow_with_rows(
        client, reverse("calendar-feed", args=[feed.token]), add=add, listed=events
    )


def test_listing_qualifications_takes_the_same_queries_for_one_as_for_many(lab, alice):
    def add(n):
        for _ in range(n):
            trainer = new_member(lab)
            services.qualification_record(
                lab=lab,
                actor=alice,
                member=new_member(lab),
                machine=new_machine(lab),
                trainer=trainer,
                trained_on="2026-03-01",
            )

    assert_queries_do_not_grow_with_rows(
        client_for(alice), lab_url("api-lab-qualifications"), add=add, listed=plain_list
    )


def test_listing_notifications_takes_the_same_queries_for_one_as_for_many(bob, alice):
    def add(n):
        for _ in range(n):
            other_lab = make_lab(alice, slug=f"lab-{next(numbers)}")
            notifications.notify(user=bob, subject="Your booking", body="Approved.", lab=other_lab)

    assert_queries_do_not_grow_with_rows(
        client_for(bob), reverse("api-notifications"), add=add, listed=results
    )


def test_listing_tokens_takes_the_same_queries_for_one_token_as_for_many(alice):
    def add(n):
        for _ in range(n):
            hub_services.token_create(user=alice, name=f"laptop {next(numbers)}", scope="read")

    # The client's own token is listed too.
    assert_queries_do_not_grow_with_rows(client_for(alice), reverse("api-tokens"), add=add, listed=plain_list)


def test_listing_printers_takes_the_same_queries_for_one_printer_as_for_many(api, lab, bob, tmp_path):
    def add(n):
        for _ in range(n):
            printer = make_printer(lab, slug=f"mk-{next(numbers)}")
            job = queued_job(lab, new_member(lab), tmp_path, name=f"part-{printer.pk}.gcode")
            PrintJob.objects.filter(pk=job.pk).update(
                machine=printer.machine, status=PrintJob.Status.PRINTING
            )

    assert_queries_do_not_grow_with_rows(api, lab_url("api-lab-printers"), add=add, listed=plain_list)


@pytest.mark.parametrize("viewer", ["manager", "member"])
def test_listing_a_lab_s_print_jobs_takes_the_same_queries_for_one_job_as_for_many(
    lab, alice, bob, tmp_path, viewer
):
    make_printer(lab)

    def add(n):
        for _ in range(n):
            queued_job(lab, new_member(lab), tmp_path, name=f"part-{next(numbers)}.gcode")

    client = client_for(alice if viewer == "manager" else bob)
    assert_queries_do_not_grow_with_rows(client, lab_url("api-lab-print-jobs"), add=add, listed=results)


def test_listing_my_print_jobs_takes_the_same_queries_for_one_job_as_for_many(lab, bob, alice, tmp_path):
    def add(n):
        for _ in range(n):
            other_lab = make_lab(alice, slug=f"lab-{next(numbers)}", hours="00:00-00:00")
            add_member(other_lab, bob)
            make_printer(other_lab)
            queued_job(other_lab, bob, tmp_path, name=f"part-{next(numbers)}.gcode")

    assert_queries_do_not_grow_with_rows(client_for(bob), reverse("api-print-jobs"), add=add, listed=results)


def record_print(job, *, design, commit_sha: str, machine) -> PrintRecord:
    """The provenance record a finished print leaves (written straight, as the queue would)."""
    return PrintRecord.objects.create(
        job=job,
        lab=job.lab,
        machine=machine,
        machine_name=machine.name,
        owner=job.owner,
        owner_name=job.owner.username,
        design=design,
        design_name=design.full_name,
        path="part.stl",
        commit_sha=commit_sha,
        gcode_sha="0" * 64,
        ended_at=timezone.now(),
        result=PrintRecord.Result.DONE,
    )


def test_listing_print_records_takes_the_same_queries_for_one_record_as_for_many(api, lab, tmp_path):
    printer = make_printer(lab)

    def add(n):
        for _ in range(n):
            maker = new_member(lab)
            design = DesignFactory(owner=maker)
            sha = commit_files(design, {"part.stl": "solid x\nendsolid x\n"})
            job = queued_job(lab, maker, tmp_path, name=f"part-{next(numbers)}.gcode")
            record_print(job, design=design, commit_sha=sha, machine=printer.machine)

    assert_queries_do_not_grow_with_rows(api, reverse("api-print-records"), add=add, listed=results)


def test_the_prints_of_a_design_take_the_same_queries_for_one_commit_as_for_many(api, lab, alice, tmp_path):
    printer = make_printer(lab)
    design = DesignFactory(owner=alice, slug="bracket")

    def add(n):
        for _ in range(n):
            sha = commit_files(design, {"part.stl": f"solid x{next(numbers)}\nendsolid x\n"})
            job = queued_job(lab, new_member(lab), tmp_path, name=f"part-{next(numbers)}.gcode")
            record_print(job, design=design, commit_sha=sha, machine=printer.machine)

    assert_queries_do_not_grow_with_rows(
        api,
        reverse("api-print-records-by-commit"),
        params={"design": "alice/bracket"},
        add=add,
        listed=plain_list,
    )
