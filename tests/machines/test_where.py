"""Where can I make this: which labs can make a part, how soon (an estimate from the
dispatcher's order, the timeline and opening hours) and at what cost."""

from __future__ import annotations

import gc
import random
import threading
from datetime import time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from designs.models import Design
from designs.selectors import fits
from hub.exceptions import NotFound, ValidationError
from machines import services, where
from machines.models import (
    Booking,
    Closure,
    Lab,
    Machine,
    MaterialPrice,
    OpeningHours,
    Printer,
    PrintGcode,
    PrintJob,
    PrintSettings,
    Qualification,
    Spool,
)
from machines.printing.jobs import timeline_span
from machines.where import (
    Part,
    never_fits,
    nothing_found,
    part_of_design,
    part_of_size,
    place_from,
    where_to_make,
)
from tests.factories import UserFactory
from tests.machines.conftest import NOW
from tests.machines.factories import add_member, make_lab
from tests.printing.factories import analysed_design, box_stl, make_printer

pytestmark = pytest.mark.django_db

SMALL = Part(size_mm=(40, 30, 20), volume_mm3=12_000)
HOUR = 3600


@pytest.fixture
def fablab(alice, bob, frozen):
    """Alice's Fablab in Paris (open 09:00–21:00, it is 09:00 now); Bob is a member. One
    PLA printer, 250 × 210 × 210 mm."""
    lab = make_lab(alice, slug="fablab")
    add_member(lab, bob)
    make_printer(lab, slug="mk4", name="MK4")
    return lab


def queue(
    lab, owner, *, minutes=60, material="PLA", priority=PrintJob.Priority.NORMAL, age=timedelta(hours=1), **kw
):
    return PrintJob.objects.create(
        lab=lab,
        owner=owner,
        file_kind=PrintJob.FileKind.GCODE,
        path="part.gcode",
        material=material,
        status=PrintJob.Status.QUEUED,
        priority=priority,
        queued_at=NOW - age,
        estimated_seconds=minutes * 60,
        **kw,
    )


def only(answer):
    assert len(answer.options) == 1, answer.options
    return answer.options[0]


def test_a_lab_with_a_free_printer_the_part_fits_can_start_now(fablab, bob):
    option = only(where_to_make(viewer=bob, part=SMALL))
    assert option.lab == fablab
    assert option.machine.name == "MK4"
    assert option.start == NOW
    assert option.finish == NOW + timeline_span(option.seconds)
    assert option.time_source == "volume"
    assert (option.role, option.qualified, option.needs, option.jobs_ahead) == ("member", True, [], 0)
    assert option.cost == Decimal("0.00") and option.currency == "EUR"


def test_a_long_thin_part_is_made_where_it_fits_diagonally(fablab, bob):
    option = only(where_to_make(viewer=bob, part=Part(size_mm=(300, 10, 5), volume_mm3=15_000)))
    assert option.lab == fablab


def test_a_part_that_fits_nowhere_names_the_closest_build_volume_and_by_how_much(fablab, bob):
    answer = where_to_make(viewer=bob, part=Part(size_mm=(500, 400, 10)))
    assert answer.options == []
    assert answer.too_big is not None
    assert answer.too_big.volume == (250.0, 210.0, 210.0)
    assert answer.too_big.machine.name == "MK4"
    # Lying flat, 500 × 400 must come down to about 262 × 210 (a slight tilt lets it be
    # a little longer than the bed's 250 mm): about 48 % smaller.
    assert 47 <= answer.too_big.shrink_percent <= 50


def test_a_material_in_stock_counts_with_a_spool_to_load_and_none_excludes_the_lab(alice, bob, frozen):
    loaded = make_lab(alice, slug="loaded")
    make_printer(loaded, material="PETG")
    stocked = make_lab(alice, slug="stocked")
    printer = make_printer(stocked, capabilities={"materials": ["PLA", "PETG"]})
    Spool.objects.create(lab=stocked, material="PETG", colour="black", initial_g=1000, remaining_g=800)
    empty = make_lab(alice, slug="empty")
    make_printer(empty, capabilities={"materials": ["PLA", "PETG"]})
    Spool.objects.create(lab=empty, material="PETG", initial_g=1000, remaining_g=0)
    answer = where_to_make(viewer=bob, part=SMALL, material="petg")
    by_lab = {o.lab.slug: o for o in answer.options}
    assert set(by_lab) == {"loaded", "stocked"}
    assert by_lab["loaded"].needs == []
    assert by_lab["stocked"].needs == ["load PETG from the lab's stock"]
    assert by_lab["stocked"].machine == printer.machine
    assert answer.fits_without_material == 1
    # A colour asked for must be the one loaded or in stock.
    answer = where_to_make(viewer=bob, part=SMALL, material="PETG", colour="Red")
    assert answer.options == [] and answer.fits_without_material == 3


def test_a_loaded_spool_with_too_little_left_needs_a_fresh_one_from_the_shelf_or_rules_the_printer_out(
    fablab, alice, bob
):
    printer = Machine.objects.get(lab=fablab, slug="mk4").printer
    # SMALL needs 12 cm³ × 35 % × 1.24 g/cm³ = 5.2 g a copy.
    spool = Spool.objects.create(
        lab=fablab, material="PLA", initial_g=1000, remaining_g=Decimal("8"), printer=printer
    )
    assert only(where_to_make(viewer=bob, part=SMALL)).needs == []
    answer = where_to_make(viewer=bob, part=SMALL, copies=2)
    assert answer.options == [] and answer.fits_without_material == 1
    Spool.objects.create(lab=fablab, material="PLA", initial_g=1000, remaining_g=Decimal("500"))
    option = only(where_to_make(viewer=bob, part=SMALL, copies=2))
    assert option.needs == [
        "load a fresh PLA spool from the lab's stock: the one on MK4 has 8.0 g left, this needs 10.4 g"
    ]
    Spool.objects.filter(pk=spool.pk).update(remaining_g=Decimal("0"))
    assert only(where_to_make(viewer=bob, part=SMALL)).needs[0].startswith("load a fresh PLA spool")


def test_labs_all_ruled_out_by_their_spools_are_explained_even_sorted_by_cost(fablab, alice, bob):
    """Sorting by cost with no lab left (the one spool loaded is too short for two copies,
    and none is on the shelf) answers why, rather than failing on an empty list."""
    printer = Machine.objects.get(lab=fablab, slug="mk4").printer
    Spool.objects.create(
        lab=fablab, material="PLA", initial_g=1000, remaining_g=Decimal("8"), printer=printer
    )
    answer = where_to_make(viewer=bob, part=SMALL, copies=2, sort="cheapest")
    assert answer.options == [] and answer.other_currencies == []
    assert answer.fits_without_material == 1
    assert "none has PLA loaded or in stock" in nothing_found(answer)


def test_a_nozzle_the_printer_takes_is_a_need_and_one_it_cannot_take_rules_it_out(fablab, alice, bob):
    other = make_lab(alice, slug="other")
    make_printer(other, capabilities={"materials": ["PLA"], "nozzle_diameters_mm": [0.4, 0.6]})
    option = only(where_to_make(viewer=bob, part=SMALL, nozzle_mm="0.6"))
    assert option.lab == other
    assert option.needs == ["fit a 0.60 mm nozzle"]


def test_a_person_not_trained_is_told_which_qualification_they_need(fablab, alice, bob):
    Machine.objects.filter(lab=fablab).update(requires_qualification=True)
    option = only(where_to_make(viewer=bob, part=SMALL))
    assert not option.qualified and not option.can_send
    assert option.training == "a qualification for FDM printers, or for MK4"
    services.qualification_record(
        lab=fablab, actor=alice, member=bob, kind=Machine.Kind.FDM_PRINTER, trained_on=NOW.date()
    )
    option = only(where_to_make(viewer=bob, part=SMALL))
    assert option.qualified and option.can_send and option.training == ""


def test_a_stranger_sees_whether_they_can_join(fablab, alice, frozen):
    carol = UserFactory(username="carol")
    request = make_lab(alice, slug="closed", join_policy=Lab.JoinPolicy.REQUEST)
    make_printer(request)
    answer = where_to_make(viewer=carol, part=SMALL)
    by_lab = {o.lab.slug: o for o in answer.options}
    assert (by_lab["fablab"].role, by_lab["fablab"].join_policy) == (None, "open")
    assert (by_lab["closed"].role, by_lab["closed"].join_policy) == (None, "request")
    assert not by_lab["fablab"].can_send


def test_jobs_ahead_in_the_dispatchers_order_delay_the_start(fablab, alice, bob):
    queue(fablab, alice, minutes=60)
    queue(fablab, alice, minutes=30, priority=PrintJob.Priority.HIGH, age=timedelta(minutes=1))
    queue(fablab, alice, minutes=600, priority=PrintJob.Priority.LOW)  # behind a normal job
    queue(fablab, alice, minutes=45, material="PETG")  # another material: not for this printer
    option = only(where_to_make(viewer=bob, part=SMALL))
    assert option.jobs_ahead == 2
    assert option.start == NOW + timeline_span(3600) + timeline_span(1800)


def test_a_low_priority_job_waiting_past_the_starvation_guard_goes_first(fablab, alice, bob, settings):
    queue(fablab, alice, minutes=120, priority=PrintJob.Priority.LOW, age=timedelta(hours=30))
    option = only(where_to_make(viewer=bob, part=SMALL))
    assert option.jobs_ahead == 1
    assert option.start == NOW + timeline_span(120 * 60)


def test_jobs_being_sliced_or_awaiting_approval_are_ahead_when_the_dispatcher_would_put_them_first(
    fablab, alice, bob
):
    for status in (PrintJob.Status.PREPARING, PrintJob.Status.PENDING_APPROVAL):
        job = queue(fablab, alice, minutes=60)
        # Submitted a day and a half ago: it enters the queue fresh, so it is not starving.
        PrintJob.objects.filter(pk=job.pk).update(
            status=status, queued_at=None, submitted_at=NOW - timedelta(hours=36)
        )
    low = queue(fablab, alice, minutes=600, priority=PrintJob.Priority.LOW)
    PrintJob.objects.filter(pk=low.pk).update(status=PrintJob.Status.PREPARING, queued_at=None)
    option = only(where_to_make(viewer=bob, part=SMALL))
    # The two normal jobs go first; the low-priority one comes after the new job.
    assert option.jobs_ahead == 2
    assert option.start == NOW + 2 * timeline_span(3600)


def test_a_queued_job_the_printer_cannot_take_is_not_ahead(fablab, alice, bob):
    queue(fablab, alice, minutes=60, size_mm={"obb": [400, 300, 300]})
    queue(fablab, alice, minutes=60, colour="red")
    option = only(where_to_make(viewer=bob, part=SMALL))
    assert (option.jobs_ahead, option.start) == (0, NOW)


def test_copies_print_one_after_another(fablab, bob):
    one = only(where_to_make(viewer=bob, part=SMALL))
    three = only(where_to_make(viewer=bob, part=SMALL, copies=3))
    span = one.finish - one.start
    assert three.start == NOW and three.finish == NOW + 3 * span


def test_a_second_printer_takes_the_part_while_the_first_prints_the_queue(fablab, alice, bob):
    make_printer(fablab, slug="mini", name="Mini", volume=(180, 180, 180))
    queue(fablab, alice, minutes=60)
    option = only(where_to_make(viewer=bob, part=SMALL))
    assert option.start == NOW and option.jobs_ahead == 1
    assert {m.name for m in option.machines} == {"MK4", "Mini"}


def test_a_booking_on_the_timeline_pushes_the_start_after_it(fablab, bob):
    machine = Machine.objects.get(lab=fablab, slug="mk4")
    # From 09:30 to 11:00: the hour-long print cannot start before it.
    Booking.objects.create(
        machine=machine, member=bob, start=NOW + timedelta(minutes=30), end=NOW + timedelta(hours=2)
    )
    option = only(where_to_make(viewer=bob, part=Part(size_mm=(40, 30, 20), volume_mm3=30_000)))
    assert option.start == NOW + timedelta(hours=2)
    # A short part fits the 30 minutes before it.
    option = only(where_to_make(viewer=bob, part=Part(size_mm=(10, 10, 10), volume_mm3=100)))
    assert option.start == NOW


def test_a_print_that_cannot_end_before_closing_waits_for_the_next_opening(fablab, bob, frozen):
    frozen.move_to(NOW + timedelta(hours=11, minutes=30))  # 20:30 in Paris, closing at 21:00
    hour_long = Part(size_mm=(40, 30, 20), volume_mm3=30_000)
    option = only(where_to_make(viewer=bob, part=hour_long))
    assert option.start == NOW + timedelta(days=1)  # 09:00 the next morning
    # A short one still fits before closing.
    assert only(where_to_make(viewer=bob, part=SMALL)).start == NOW + timedelta(hours=11, minutes=30)
    PrintSettings.objects.create(lab=fablab, unattended_overnight=True)
    option = only(where_to_make(viewer=bob, part=hour_long))
    assert option.start == NOW + timedelta(hours=11, minutes=30)


def test_a_closure_moves_the_start_past_it(fablab, bob):
    Closure.objects.create(
        lab=fablab, start=NOW - timedelta(hours=1), end=NOW + timedelta(days=2), reason="Works"
    )
    option = only(where_to_make(viewer=bob, part=SMALL))
    assert option.start == NOW + timedelta(days=2)


def test_an_estimate_far_ahead_reads_the_timeline_further(alice, bob, frozen):
    lab = make_lab(alice, slug="always", hours="00:00-00:00")
    printer = make_printer(lab)
    # Three jobs of 22 hours on the timeline (20 h and the margin): past the first two days.
    for _ in range(3):
        queue(lab, alice, minutes=20 * 60)
    busy = NOW + timedelta(hours=66)
    Booking.objects.create(machine=printer.machine, member=alice, start=busy, end=busy + timedelta(hours=3))
    option = only(where_to_make(viewer=bob, part=SMALL))
    assert option.jobs_ahead == 3
    assert option.start == busy + timedelta(hours=3)


def test_labs_read_further_get_each_their_own_printers_rows(alice, bob, frozen):
    """The second read is by the printers of the labs read again: each lab's estimate
    depends on its own booking only (past it, or before it where the part fits in the
    gap), and an idle lab's far booking changes nothing."""
    printers = {}
    for slug, hours, jobs in (("early", 66, 3), ("late", 70, 3), ("idle", 66, 0)):
        lab = make_lab(alice, slug=slug, hours="00:00-00:00")
        printers[slug] = make_printer(lab, slug=f"{slug}-mk4")
        # Three jobs of 22 hours on the timeline (20 h and the margin): 66 hours.
        for _ in range(jobs):
            queue(lab, alice, minutes=20 * 60)
        busy = NOW + timedelta(hours=hours)
        Booking.objects.create(
            machine=printers[slug].machine, member=alice, start=busy, end=busy + timedelta(hours=3)
        )
    answer = where_to_make(viewer=bob, part=SMALL)
    assert {option.machine.pk: option.start for option in answer.options} == {
        printers["early"].machine.pk: NOW + timedelta(hours=69),
        printers["late"].machine.pk: NOW + timedelta(hours=66),
        printers["idle"].machine.pk: NOW,
    }


def test_a_queued_job_too_long_for_the_opening_hours_never_starts_so_it_is_not_ahead(fablab, alice, bob):
    queue(fablab, alice, minutes=12 * 60)  # with its margin, longer than 09:00–21:00
    assert only(where_to_make(viewer=bob, part=SMALL)).start == NOW


def test_the_slicers_estimate_replaces_the_volumes(fablab, alice, bob):
    printer = Machine.objects.get(lab=fablab, slug="mk4").printer
    part = Part(size_mm=(40, 30, 20), volume_mm3=12_000, blob_sha="b" * 40)
    job = queue(fablab, alice, blob_sha="b" * 40)
    PrintJob.objects.filter(pk=job.pk).update(status=PrintJob.Status.DONE)
    PrintGcode.objects.create(
        job=job,
        profile_key=printer.profile_key,
        sha256="0" * 64,
        size=1,
        estimated_seconds=5400,
        filament_g=31.5,
    )
    MaterialPrice.objects.create(lab=fablab, material="PLA", price_per_gram=Decimal("0.10"))
    option = only(where_to_make(viewer=bob, part=part))
    assert (option.seconds, option.time_source, option.grams) == (5400, "slicer", Decimal("31.5"))
    assert option.cost == Decimal("3.15")


def test_the_cost_comes_from_the_labs_prices(fablab, bob):
    PrintSettings.objects.create(
        lab=fablab, price_per_job=Decimal("1.00"), price_per_machine_hour=Decimal("2.00")
    )
    MaterialPrice.objects.create(
        lab=fablab, material="PLA", price_per_gram=Decimal("0.05"), density_g_cm3=Decimal("1.0")
    )
    option = only(where_to_make(viewer=bob, part=SMALL, copies=2))
    # 12 cm³ at a 35 % fill and 1 g/cm³: 4.2 g; 12,000 × 0.35 / 3 mm³/s = 1,400 s.
    assert option.grams == Decimal("4.2")
    assert option.seconds == 1400
    each = Decimal("1.00") + Decimal("4.2") * Decimal("0.05") + Decimal(1400) / 3600 * 2
    assert option.cost == (each * 2).quantize(Decimal("0.01"))


@pytest.fixture
def three_labs(alice, frozen):
    """Near (Paris, 3 EUR, busy), Far (Lyon, 1 EUR, free), Swiss (Geneva, 0.50 CHF)."""
    labs = {}
    for slug, lat, lon, fee, currency in (
        ("near", 48.8566, 2.3522, "3.00", "EUR"),
        ("far", 45.7640, 4.8357, "1.00", "EUR"),
        ("swiss", 46.2044, 6.1432, "0.50", "CHF"),
    ):
        lab = make_lab(alice, slug=slug)
        Lab.objects.filter(pk=lab.pk).update(latitude=lat, longitude=lon)
        make_printer(lab)
        PrintSettings.objects.create(lab=lab, currency=currency, price_per_job=Decimal(fee))
        labs[slug] = lab
    queue(labs["near"], alice, minutes=120)
    queue(labs["swiss"], alice, minutes=60)
    return labs


def slugs(options):
    return [o.lab.slug for o in options]


def test_soonest_puts_the_free_printer_first(three_labs, bob):
    assert slugs(where_to_make(viewer=bob, part=SMALL).options) == ["far", "swiss", "near"]


def test_cheapest_sorts_within_one_currency_and_lists_the_others_apart(three_labs, bob):
    answer = where_to_make(viewer=bob, part=SMALL, sort="cheapest")
    assert answer.currency == "EUR"
    assert slugs(answer.options) == ["far", "near"]
    assert slugs(answer.other_currencies) == ["swiss"]
    answer = where_to_make(viewer=bob, part=SMALL, sort="cheapest", currency="chf")
    assert (answer.currency, slugs(answer.options), slugs(answer.other_currencies)) == (
        "CHF",
        ["swiss"],
        ["far", "near"],
    )


def test_nearest_measures_from_a_city_of_the_bundled_list(three_labs, bob):
    place = place_from(name="Geneva")
    assert place is not None and place.name == "Geneva, CH"
    answer = where_to_make(viewer=bob, part=SMALL, sort="nearest", place=place)
    assert slugs(answer.options) == ["swiss", "far", "near"]
    assert answer.options[0].distance_km < 5
    assert 400 < answer.options[2].distance_km < 420  # Geneva–Paris
    answer = where_to_make(
        viewer=bob, part=SMALL, sort="nearest", place=place_from(latitude="48.85", longitude="2.35")
    )
    assert slugs(answer.options) == ["near", "far", "swiss"]


def test_a_lab_without_coordinates_comes_last_by_distance(three_labs, alice, bob):
    make_printer(make_lab(alice, slug="nowhere"))
    answer = where_to_make(viewer=bob, part=SMALL, sort="nearest", place=place_from(name="Lyon, FR"))
    assert slugs(answer.options)[0] == "far" and slugs(answer.options)[-1] == "nowhere"
    assert answer.options[-1].distance_km is None


def test_bad_places_and_choices_are_refused(bob, frozen):
    for kwargs in (
        {"latitude": "north", "longitude": "2"},
        {"latitude": "91", "longitude": "2"},
        {"latitude": "45", "longitude": "-181"},
        {"latitude": "nan", "longitude": "2"},
        {"latitude": "45"},
        {"name": "Atlantis of the Deep"},
    ):
        with pytest.raises(ValidationError):
            place_from(**kwargs)
    for kwargs in (
        {"sort": "best"},
        {"sort": "nearest"},
        {"copies": 0},
        {"copies": 101},
        {"material": " "},
        {"nozzle_mm": "wide"},
        {"nozzle_mm": "9"},
    ):
        with pytest.raises(ValidationError):
            where_to_make(viewer=bob, part=SMALL, **kwargs)
    for size in ("10x10", "ax1x1", "0x1x1", "1x1x1e9", "1x1xinf"):
        with pytest.raises(ValidationError):
            part_of_size(size=size)
    with pytest.raises(ValidationError):
        part_of_size(size="10x10x10", volume_mm3="2000")


def test_labs_awaiting_approval_and_printers_out_of_service_are_left_out(fablab, alice, bob):
    waiting = services.lab_create(creator=alice, name="Waiting", slug="waiting", timezone="UTC")
    Lab.objects.filter(pk=waiting.pk).update(approved_at=None)
    broken = make_lab(alice, slug="broken")
    printer = make_printer(broken)
    Machine.objects.filter(pk=printer.pk).update(status=Machine.Status.OUT_OF_ORDER)
    assert slugs(where_to_make(viewer=bob, part=SMALL).options) == ["fablab"]


def _random_world(rng: random.Random, alice, bob, *, labs: int) -> None:
    """Approved labs with random printers, queues, timelines, hours and settings, and one
    lab awaiting approval with all of these too (its rows are read along, never used)."""
    made = Lab.objects.bulk_create(
        [
            Lab(
                name=f"R{n}",
                slug=f"r{n}",
                timezone=rng.choice(["UTC", "Europe/Paris", "America/New_York"]),
                approved_at=NOW - timedelta(days=30),
            )
            for n in range(labs + 1)
        ]
    )
    for lab in made:
        if rng.random() < 0.6:
            opens = rng.choice([0, 8, 9])
            OpeningHours.objects.bulk_create(
                [
                    OpeningHours(lab=lab, weekday=d, opens=time(opens), closes=time(opens + 12))
                    for d in range(7)
                ]
            )
        if rng.random() < 0.3:
            Closure.objects.create(
                lab=lab, start=NOW + timedelta(hours=rng.randint(1, 30)), end=NOW + timedelta(hours=40)
            )
        PrintSettings.objects.create(
            lab=lab, price_per_job=Decimal(rng.randint(0, 3)), unattended_overnight=rng.random() < 0.3
        )
        MaterialPrice.objects.create(lab=lab, material="PLA", price_per_gram=Decimal("0.02"))
        if rng.random() < 0.7:
            add_member(lab, bob)
            Qualification.objects.create(
                lab=lab, member=bob, kind=Machine.Kind.FDM_PRINTER, trained_on=NOW.date()
            )
        for m in range(rng.randint(1, 4)):
            machine = Machine.objects.create(
                lab=lab,
                name=f"P{m}",
                slug=f"p{m}",
                kind=Machine.Kind.FDM_PRINTER,
                work_x_mm=rng.choice([180, 250]),
                work_y_mm=rng.choice([180, 210]),
                work_z_mm=rng.choice([180, 250]),
                requires_qualification=rng.random() < 0.5,
            )
            Printer.objects.create(
                machine=machine,
                material=rng.choice(["PLA", "PLA", "PETG"]),
                colour=rng.choice(["", "", "red"]),
                nozzle_mm=rng.choice([Decimal("0.40"), Decimal("0.40"), Decimal("0.60")]),
                bed_clear=rng.random() < 0.8,
            )
            cursor = NOW - timedelta(minutes=rng.randint(0, 90))
            for _ in range(rng.randint(0, 6)):
                length = timedelta(minutes=rng.randint(30, 300))
                Booking.objects.create(machine=machine, member=bob, start=cursor, end=cursor + length)
                cursor += length + timedelta(minutes=rng.randint(10, 600))
        for _ in range(rng.randint(0, 8)):
            PrintJob.objects.create(
                lab=lab,
                owner=alice,
                file_kind=PrintJob.FileKind.MESH,
                path="part.stl",
                material=rng.choice(["PLA", "PLA", "PETG"]),
                colour=rng.choice(["", "", "", "red"]),
                nozzle_mm=rng.choice([None, None, Decimal("0.60")]),
                status=rng.choice([PrintJob.Status.QUEUED] * 4 + [PrintJob.Status.PENDING_APPROVAL]),
                priority=rng.choice([0, 1, 1, 2]),
                queued_at=NOW - timedelta(minutes=rng.randint(1, 48 * 60)),
                submitted_at=NOW - timedelta(minutes=rng.randint(1, 60)),
                estimated_seconds=rng.randint(5, 300) * 60,
                copies=rng.choice([1, 1, 2]),
                size_mm={"obb": [rng.randint(10, 260), rng.randint(10, 200), rng.randint(5, 150)]},
            )
    # Approval is withdrawn once its members, machines and bookings are made (the services
    # refuse them for a lab awaiting approval).
    Lab.objects.filter(pk=made[-1].pk).update(approved_at=None)


def _by_lab_ids(sql: str) -> bool:
    return "lab_id = ANY(" in sql or "lab_id IN (SELECT value FROM json_each" in sql


def _facts(answer) -> list[tuple]:
    return [
        (o.lab.slug, o.machine.pk, [m.pk for m in o.machines], o.needs, o.role, o.qualified, o.start)
        + (o.finish, o.jobs_ahead, o.seconds, o.grams, o.cost, o.currency)
        for o in answer.options + answer.other_currencies
    ]


@pytest.mark.parametrize("seed", range(6))
def test_every_labs_rows_read_at_once_give_the_answer_read_by_lab(alice, bob, frozen, seed):
    """When the part fits a printer of every lab, the rows are read for every lab at once
    (no filter on the labs, those of a lab awaiting approval come along); otherwise by the
    labs' ids. Both give each lab the same option, on random worlds."""
    rng = random.Random(seed)
    _random_world(rng, alice, bob, labs=4)
    part = Part(size_mm=(40, 30, 20), volume_mm3=float(rng.randint(2_000, 20_000)))
    copies = rng.choice([1, 2])
    with CaptureQueriesContext(connection) as everywhere:
        every_lab = where_to_make(viewer=bob, part=part, copies=copies)
    # A lab whose only printer the part does not fit: the rows are now read by lab ids.
    tiny = make_lab(alice, slug="tiny")
    make_printer(tiny, slug="t", volume=(10, 10, 10))
    with CaptureQueriesContext(connection) as by_ids:
        by_lab = where_to_make(viewer=bob, part=part, copies=copies)
    assert not any(_by_lab_ids(q["sql"]) for q in everywhere.captured_queries)
    assert any(_by_lab_ids(q["sql"]) for q in by_ids.captured_queries)
    assert every_lab.options, "no lab to compare"
    assert _facts(by_lab) == _facts(every_lab)
    assert "r4" not in slugs(every_lab.options + every_lab.other_currencies)


def _history(rng: random.Random, machine: Machine, until, rows: int) -> list[Booking]:
    """`rows` past timeline rows of the machine, the last ending at `until`: prints and
    bookings done (they stay approved), refused or cancelled."""
    past, end = [], until
    for _ in range(rows):
        start = end - timedelta(minutes=rng.randint(30, 300))
        past.append(
            Booking(
                machine=machine,
                kind=Booking.Kind.MAINTENANCE,
                status=rng.choice(
                    [Booking.Status.APPROVED] * 3 + [Booking.Status.CANCELLED, Booking.Status.REFUSED]
                ),
                start=start,
                end=end,
            )
        )
        end = start - timedelta(minutes=rng.randint(0, 600))
    return past


@pytest.mark.parametrize("seed", range(4))
def test_timeline_rows_that_ended_never_change_an_answer(alice, bob, frozen, seed):
    """Rows that ended by now are history, however many there are: every lab's option is
    the same with them (the last of each printer's ends right at the start of its next
    row, or at this very moment)."""
    rng = random.Random(seed)
    _random_world(rng, alice, bob, labs=4)
    part = Part(size_mm=(40, 30, 20), volume_mm3=float(rng.randint(2_000, 20_000)))
    before = _facts(where_to_make(viewer=bob, part=part))
    past = []
    for machine in Machine.objects.all():
        first = Booking.objects.filter(machine=machine).order_by("start").first()
        until = NOW if first is None else min(first.start, NOW)
        past += _history(rng, machine, until, rows=rng.randint(1, 40))
    Booking.objects.bulk_create(past)
    assert before, "no lab to compare"
    assert _facts(where_to_make(viewer=bob, part=part)) == before


def test_a_row_that_began_days_ago_and_runs_on_still_holds_the_printer(fablab, bob):
    """Only the rows that ended are history: a maintenance begun three days ago and ending
    in two hours, after a long history, still holds the printer."""
    machine = Machine.objects.get(lab=fablab, slug="mk4")
    began = NOW - timedelta(days=3)
    Booking.objects.bulk_create(_history(random.Random(0), machine, began, rows=50))
    Booking.objects.create(
        machine=machine, kind=Booking.Kind.MAINTENANCE, start=began, end=NOW + timedelta(hours=2)
    )
    assert only(where_to_make(viewer=bob, part=SMALL)).start == NOW + timedelta(hours=2)


def test_the_answer_takes_the_same_queries_for_more_labs(alice, bob, frozen):
    def labs(first, count):
        for n in range(first, first + count):
            lab = make_lab(alice, slug=f"lab-{n}")
            add_member(lab, bob)
            for m in range(3):
                printer = make_printer(lab, slug=f"p{m}")
                Booking.objects.create(
                    machine=printer.machine,
                    member=bob,
                    start=NOW + timedelta(hours=m + 1),
                    end=NOW + timedelta(hours=m + 2),
                )
                Qualification.objects.create(
                    lab=lab, member=bob, kind=Machine.Kind.FDM_PRINTER, trained_on=NOW.date()
                )
            queue(lab, alice, minutes=30)
            PrintSettings.objects.create(lab=lab, price_per_job=Decimal(1))
            MaterialPrice.objects.create(lab=lab, material="PLA", price_per_gram=Decimal("0.02"))

    labs(0, 2)
    with CaptureQueriesContext(connection) as few:
        assert len(where_to_make(viewer=bob, part=SMALL).options) == 2
    labs(2, 6)
    with CaptureQueriesContext(connection) as many:
        assert len(where_to_make(viewer=bob, part=SMALL).options) == 8
    assert len(many) == len(few) <= 14


# -- from a design ----------------------------------------------------------------------------


@pytest.fixture
def bracket(alice):
    return analysed_design(alice, {"parts/long.stl": box_stl(300, 10, 5), "README.md": "# Bracket\n"})


def test_a_design_file_is_measured_from_its_analysis(fablab, bracket, bob):
    design, sha = bracket
    part = part_of_design(viewer=bob, design="alice/bracket", path="parts/long.stl", rev="main")
    assert sorted(part.size_mm) == pytest.approx([5, 10, 300])
    assert part.volume_mm3 == pytest.approx(15_000)
    assert (part.commit_sha, part.design_name, part.rev) == (sha, "alice/bracket", "main")
    assert only(where_to_make(viewer=bob, part=part)).lab == fablab


def test_a_private_design_is_not_found_for_others(fablab, bracket, bob):
    design, _ = bracket
    Design.objects.filter(pk=design.pk).update(visibility=Design.Visibility.PRIVATE)
    with pytest.raises(NotFound):
        part_of_design(viewer=bob, design="alice/bracket", path="parts/long.stl")
    assert (
        part_of_design(viewer=design.owner, design="alice/bracket", path="parts/long.stl").name == "long.stl"
    )


def test_a_file_that_is_no_mesh_is_refused(fablab, bracket, bob):
    with pytest.raises(ValidationError, match="not a mesh"):
        part_of_design(viewer=bob, design="alice/bracket", path="README.md")
    with pytest.raises(NotFound):
        part_of_design(viewer=bob, design="alice/bracket", path="parts/none.stl")


# -- page and API --------------------------------------------------------------------------------


def test_the_page_lists_labs_with_a_link_to_send_the_part_there(fablab, bracket, bob, client):
    client.force_login(bob)
    url = reverse("where") + "?design=alice/bracket&path=parts/long.stl&rev=main"
    page = client.get(url)
    assert page.status_code == 200
    text = page.content.decode()
    assert "Fablab" in text and "estimate" in text
    send = (
        reverse("print-job-new")
        + "?design=alice/bracket&amp;path=parts/long.stl&amp;rev="
        + bracket[1]
        + "&amp;lab=fablab"
    )
    assert send in text
    assert "sort=cheapest" in text and 'name="place"' in text


def test_the_page_says_when_the_part_fits_nowhere(fablab, alice, bob, client):
    analysed_design(alice, {"huge.stl": box_stl(500, 400, 300)}, slug="huge")
    client.force_login(bob)
    page = client.get(reverse("where") + "?design=alice/huge&path=huge.stl")
    assert page.status_code == 200
    assert "does not fit any printer" in page.content.decode()


def test_the_page_answers_404_for_a_private_design(fablab, bracket, bob, client):
    Design.objects.filter(pk=bracket[0].pk).update(visibility=Design.Visibility.PRIVATE)
    client.force_login(bob)
    assert client.get(reverse("where") + "?design=alice/bracket&path=parts/long.stl").status_code == 404


def test_the_design_file_page_starts_print_at_a_lab_from_the_chooser(fablab, bracket, bob, client):
    client.force_login(bob)
    page = client.get(reverse("design-blob", args=["alice", "bracket", "parts/long.stl"]))
    assert page.status_code == 200
    assert reverse("where") + "?design=alice/bracket&amp;path=parts/long.stl" in page.content.decode()


def test_the_api_answers_labs_with_estimates(fablab, bracket, bob, bob_api):
    answer = bob_api.get(
        "/api/where/", {"design": "alice/bracket", "path": "parts/long.stl", "place": "Paris"}
    )
    assert answer.status_code == 200, answer.content
    data = answer.json()
    assert data["part"]["size_mm"] and data["sort"] == "soonest"
    [row] = data["options"]
    assert row["lab"]["slug"] == "fablab" and row["machine"]["name"] == "MK4"
    assert row["estimate"]["start"] and row["estimate"]["is_estimate"] is True
    assert row["cost"] == {"amount": "0.00", "currency": "EUR", "grams_per_copy": "6.5"}
    assert data["too_big"] is None


def test_the_api_takes_a_size_instead_of_a_design(fablab, api):
    answer = api.get("/api/where/", {"size": "300x10x5", "volume": "15000", "sort": "cheapest"})
    assert answer.status_code == 200, answer.content
    assert [o["lab"]["slug"] for o in answer.json()["options"]] == ["fablab"]
    answer = api.get("/api/where/", {"size": "900x900x900"})
    assert answer.json()["options"] == [] and answer.json()["too_big"]["machine"]["name"] == "MK4"


@pytest.mark.parametrize(
    "params, status",
    [
        ({"design": "alice/bracket", "path": "parts/long.stl", "lat": "north", "lon": "2"}, 400),
        ({"design": "alice/bracket", "path": "parts/long.stl", "lat": "95", "lon": "2"}, 400),
        ({"design": "alice/bracket", "path": "parts/long.stl", "lat": "45"}, 400),
        ({"design": "alice/bracket", "path": "parts/long.stl", "place": "Nowhere-on-sea"}, 400),
        ({"design": "alice/bracket", "path": "parts/long.stl", "sort": "best"}, 400),
        ({"design": "alice/bracket", "path": "parts/long.stl", "sort": "nearest"}, 400),
        ({"design": "alice/bracket", "path": "parts/long.stl", "copies": "many"}, 400),
        ({"design": "alice/bracket", "path": "parts/long.stl", "copies": "1000"}, 400),
        ({"design": "alice/bracket", "path": "parts/long.stl", "nozzle": "-1"}, 400),
        ({"design": "alice/bracket"}, 400),
        ({}, 400),
        ({"size": "1x2"}, 400),
        ({"size": "1x2x3", "design": "alice/bracket", "path": "parts/long.stl"}, 400),
        ({"design": "alice/nothing", "path": "parts/long.stl"}, 404),
        ({"design": "alice/bracket", "path": "parts/none.stl"}, 404),
        ({"design": "alice/bracket", "path": "parts/long.stl", "rev": "no-such-branch"}, 404),
    ],
)
def test_the_api_refuses_bad_input(fablab, bracket, bob_api, params, status):
    answer = bob_api.get("/api/where/", params)
    assert answer.status_code == status, answer.content
    assert answer.json()["detail"]


def test_the_api_answers_404_for_a_private_design(fablab, bracket, bob_api, alice_api):
    Design.objects.filter(pk=bracket[0].pk).update(visibility=Design.Visibility.PRIVATE)
    params = {"design": "alice/bracket", "path": "parts/long.stl"}
    assert bob_api.get("/api/where/", params).status_code == 404
    assert alice_api.get("/api/where/", params).status_code == 200


def test_the_quick_look_rules_out_only_boxes_the_fit_rule_refuses():
    """`never_fits` spares the fit rule's trigonometry for boxes that cannot stand in a
    volume: it must never rule out one that fits, even diagonally or exactly at the walls."""
    rng = random.Random(17)
    ruled_out = 0
    for n in range(40_000):
        if n % 2:
            # Whole millimetres, small: many boxes exactly as large as a side of the volume.
            box = [float(rng.randint(1, 30)) for _ in range(3)]
            volume = (float(rng.randint(1, 30)), float(rng.randint(1, 30)), float(rng.randint(1, 30)))
        else:
            box = [rng.uniform(1, 400) for _ in range(3)]
            volume = (rng.uniform(50, 400), rng.uniform(50, 400), rng.uniform(50, 400))
        small, middle, large = sorted(box)
        if never_fits((small, middle, large), volume):
            ruled_out += 1
            assert not fits(box, volume), (box, volume)
    # It does rule out boxes (about half of these), or it would spare nothing.
    assert ruled_out > 10_000


# -- the cyclic garbage collector ---------------------------------------------------------------


@pytest.fixture
def busy_fablab(fablab, alice, bob):
    """The Fablab with a second printer (capabilities listing PETG), a queue, a booking,
    a closure tomorrow and prices: every kind of row the answer reads."""
    make_printer(fablab, slug="mini", name="Mini", volume=(180, 180, 180))
    Machine.objects.filter(lab=fablab, slug="mini").update(capabilities={"materials": ["PLA", "PETG"]})
    for minutes in (30, 90, 240):
        queue(fablab, alice, minutes=minutes, size_mm={"obb": [200, 150, 20]})
    queue(fablab, alice, minutes=60, material="PETG")
    machine = Machine.objects.get(lab=fablab, slug="mk4")
    Booking.objects.create(
        machine=machine, member=bob, start=NOW + timedelta(hours=1), end=NOW + timedelta(hours=3)
    )
    Closure.objects.create(
        lab=fablab, start=NOW + timedelta(days=1), end=NOW + timedelta(days=2), reason="Works"
    )
    PrintSettings.objects.create(lab=fablab, price_per_job=Decimal(1))
    MaterialPrice.objects.create(lab=fablab, material="PLA", price_per_gram=Decimal("0.02"))
    return fablab


def test_an_answer_leaves_nothing_for_the_cyclic_collector(busy_fablab, bob):
    """The collector is paused while answering (`_collector_paused`) on the ground that
    the answer makes no reference cycles: reference counting alone frees it all."""
    questions: list[dict[str, Any]] = [
        {"part": SMALL},
        {"part": SMALL, "copies": 3, "sort": "cheapest"},
        {"part": SMALL, "material": "PETG", "colour": "red"},
        {"part": Part(size_mm=(900, 900, 900))},  # fits nowhere: the closest volume
    ]
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    # The collector sees the whole process: in the full suite other threads (live servers,
    # workers) make garbage of their own meanwhile. What it would free is kept aside
    # (DEBUG_SAVEALL) and only the hub's own objects count: a cycle of the answer's holds
    # some (its rows, options, labs, printers and machines).
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for question in questions:
            answer = where_to_make(viewer=bob, **question)
            assert answer.options or answer.too_big or answer.fits_without_material
            del answer
            gc.collect()
            ours = [o for o in gc.garbage if type(o).__module__.startswith(("machines", "designs", "hub"))]
            gc.garbage.clear()
            assert ours == [], question
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was_enabled:
            gc.enable()


def test_the_collector_is_paused_while_answering_and_resumed_after(busy_fablab, bob):
    seen = []

    def record(execute, sql, params, many, context):
        seen.append(gc.isenabled())
        return execute(sql, params, many, context)

    assert gc.isenabled()
    with connection.execute_wrapper(record):
        where_to_make(viewer=bob, part=SMALL)
    assert seen and not any(seen)
    assert gc.isenabled()
    with pytest.raises(ValidationError):
        where_to_make(viewer=bob, part=SMALL, sort="fastest")
    assert gc.isenabled()
    # Paused by a caller: it stays paused.
    gc.disable()
    try:
        where_to_make(viewer=bob, part=SMALL)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_answers_overlapping_in_threads_share_one_pause_ended_by_the_last():
    """Under a threaded server two answers overlap: the first to finish must not resume
    the collector while the other still runs."""
    inside = {"first": threading.Event(), "second": threading.Event()}
    release = {"first": threading.Event(), "second": threading.Event()}
    seen = {}

    def answer(name):
        @where._collector_paused
        def run():
            inside[name].set()
            release[name].wait(10)
            seen[name] = gc.isenabled()

        return threading.Thread(target=run)

    assert gc.isenabled()
    first, second = answer("first"), answer("second")
    first.start()
    assert inside["first"].wait(10)
    second.start()
    assert inside["second"].wait(10)
    release["first"].set()
    first.join(10)  # the first answer is done; the second still runs
    release["second"].set()
    second.join(10)
    assert seen == {"first": False, "second": False}
    assert gc.isenabled()
