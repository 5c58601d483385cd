"""The dispatcher gives each idle printer the best queued job it can take: by priority,
then age, starving jobs first; matching material, colour, nozzle and size; never over a
person's booking; never a second job on one printer; and the next one only once the bed
is clear. Printers here have no network (the manual driver); tests/printing/
test_octoprint_queue.py drives a real OctoPrint."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from hub.exceptions import Conflict
from machines import services
from machines.models import Booking, Machine, Printer, PrintJob, PrintRecord
from machines.printing import dispatch
from machines.printing import services as printing
from machines.printing.waiting import SeenMachine, SeenPrinter
from tests.printing.factories import gcode_upload, make_printer, queued_job

S = PrintJob.Status


@pytest.fixture
def tick(django_capture_on_commit_callbacks):
    """One dispatcher round; the sends it queues run as they would after its commits."""

    def run(**kwargs) -> list[int]:
        with django_capture_on_commit_callbacks(execute=True):
            return dispatch.dispatch_tick(**kwargs)

    return run


def status_of(job: PrintJob) -> str:
    job.refresh_from_db()
    return job.status


@pytest.mark.django_db
def test_a_job_goes_to_an_idle_printer_and_onto_its_timeline(lab, bob, tmp_path, tick):
    printer = make_printer(lab)
    job = queued_job(lab, bob, tmp_path, minutes=30)
    assert tick() == [job.pk]
    job.refresh_from_db()
    assert (job.status, job.machine_id) == (S.AWAITING_OPERATOR, printer.pk)
    assert job.remote_name.startswith(f"fabhub-{job.pk}-1-") and job.remote_name.endswith("-part.gcode")
    row = job.booking
    assert (row.kind, row.status, row.member) == (Booking.Kind.PRINT_JOB, Booking.Status.APPROVED, None)
    assert timedelta(minutes=33) <= row.end - row.start <= timedelta(minutes=34)  # estimate + 10 %
    assert tick() == []


@pytest.mark.django_db
def test_the_best_job_goes_first_by_priority_then_age(lab, alice, bob, tmp_path, tick):
    make_printer(lab)
    old = queued_job(lab, bob, tmp_path, name="old.gcode")
    queued_job(lab, bob, tmp_path, name="young.gcode")
    low = queued_job(lab, bob, tmp_path, name="low.gcode", priority=PrintJob.Priority.LOW)
    urgent = queued_job(lab, alice, tmp_path, name="urgent.gcode", priority=PrintJob.Priority.URGENT)
    PrintJob.objects.filter(pk=low.pk).update(queued_at=timezone.now() - timedelta(hours=5))
    assert tick() == [urgent.pk]
    printing.print_job_cancel(job=urgent, actor=alice)  # the hand-off is withdrawn
    assert tick() == [old.pk]
    assert status_of(old) == S.AWAITING_OPERATOR


@pytest.mark.django_db
def test_a_job_waiting_past_the_starvation_guard_goes_before_any_priority(
    lab, alice, bob, tmp_path, tick, settings
):
    settings.FABHUB_PRINT_STARVATION_HOURS = 24
    make_printer(lab)
    queued_job(lab, alice, tmp_path, name="urgent.gcode", priority=PrintJob.Priority.URGENT)
    starving = queued_job(lab, bob, tmp_path, name="low.gcode", priority=PrintJob.Priority.LOW)
    PrintJob.objects.filter(pk=starving.pk).update(queued_at=timezone.now() - timedelta(hours=25))
    assert tick() == [starving.pk]


@pytest.mark.django_db
def test_a_printer_takes_only_jobs_for_its_material_colour_and_nozzle(lab, bob, tmp_path, tick):
    make_printer(
        lab,
        material="PETG",
        colour="Black",
        nozzle_mm="0.6",
        capabilities={"materials": ["PLA", "PETG"], "nozzle_diameters_mm": [0.4, 0.6]},
    )
    pla = queued_job(lab, bob, tmp_path, name="pla.gcode", material="PLA")
    red = queued_job(lab, bob, tmp_path, name="red.gcode", material="PETG", colour="red")
    small_nozzle = queued_job(lab, bob, tmp_path, name="fine.gcode", material="PETG", nozzle_mm="0.4")
    black = queued_job(
        lab, bob, tmp_path, name="black.gcode", material="petg", colour="BLACK", nozzle_mm="0.6"
    )
    assert tick() == [black.pk]
    assert {status_of(j) for j in (pla, red, small_nozzle)} == {S.QUEUED}


@pytest.mark.django_db
def test_a_part_too_big_for_a_printer_waits_for_one_it_fits(lab, bob, tmp_path, tick):
    small = make_printer(lab, slug="mini", volume=(100, 100, 100))
    big = make_printer(lab, slug="xl", volume=(300, 300, 300))
    path = tmp_path / "wide.gcode"
    path.write_text(
        "G90\nM82\nG1 X10 Y10 Z0.2 F6000\nG1 X250 Y10 E5\n; estimated printing time (normal mode) = 5m 0s\n"
    )
    wide = printing.print_job_submit(lab=lab, owner=bob, upload=gcode_upload(path))  # read and queued at once
    PrintJob.objects.filter(pk=wide.pk).update(queued_at=timezone.now() - timedelta(minutes=5))
    narrow = queued_job(lab, bob, tmp_path, name="narrow.gcode")
    tick()
    wide.refresh_from_db()
    narrow.refresh_from_db()
    assert (wide.machine_id, narrow.machine_id) == (big.pk, small.pk)


@pytest.mark.django_db
def test_a_printer_booked_by_a_person_now_takes_no_job(lab, bob, tmp_path, tick):
    printer = make_printer(lab)
    job = queued_job(lab, bob, tmp_path)
    now = timezone.now()
    # Booked earlier, started a minute ago (booking_create refuses a start in the past).
    Booking.objects.create(
        machine=printer.machine,
        member=bob,
        created_by=bob,
        start=now - timedelta(minutes=1),
        end=now + timedelta(hours=1),
    )
    assert tick() == [] and status_of(job) == S.QUEUED


@pytest.mark.django_db
def test_only_a_job_that_ends_before_the_next_booking_is_started(lab, bob, tmp_path, tick):
    printer = make_printer(lab)
    start = timezone.now() + timedelta(hours=1)
    services.booking_create(machine=printer.machine, member=bob, start=start, end=start + timedelta(hours=1))
    long = queued_job(lab, bob, tmp_path, name="long.gcode", minutes=120)
    short = queued_job(lab, bob, tmp_path, name="short.gcode", minutes=20)
    assert tick() == [short.pk]
    assert status_of(long) == S.QUEUED


@pytest.mark.django_db
def test_a_running_print_blocks_bookings_of_its_machine(lab, bob, tmp_path, tick):
    printer = make_printer(lab)
    queued_job(lab, bob, tmp_path, minutes=60)
    tick()
    start = timezone.now() + timedelta(minutes=20)
    with pytest.raises(Conflict, match="MK4 is already booked"):
        services.booking_create(
            machine=printer.machine, member=bob, start=start, end=start + timedelta(minutes=30)
        )


@pytest.mark.django_db
def test_a_printer_out_of_service_takes_no_job(lab, alice, bob, tmp_path, tick):
    printer = make_printer(lab)
    job = queued_job(lab, bob, tmp_path)
    services.machine_set_status(
        machine=printer.machine, actor=alice, status=Machine.Status.MAINTENANCE, reason="New hot end"
    )
    assert tick() == []
    services.machine_set_status(machine=printer.machine, actor=alice, status=Machine.Status.AVAILABLE)
    assert tick() == [job.pk]


@pytest.mark.django_db
def test_the_next_job_starts_only_once_the_bed_is_confirmed_clear(lab, alice, bob, tmp_path, tick):
    printer = make_printer(lab)
    first = queued_job(lab, bob, tmp_path, name="first.gcode")
    second = queued_job(lab, bob, tmp_path, name="second.gcode")
    tick()
    printing.print_job_record(job=first, actor=alice, outcome="started")
    printing.print_job_record(job=first, actor=alice, outcome="finished")
    assert status_of(first) == S.AWAITING_REMOVAL
    assert tick() == []
    printer.refresh_from_db()
    assert not printer.bed_clear and printer.bed_note == "first.gcode (bob) is ready to collect."
    printing.printer_confirm_cleared(machine=printer.machine, actor=bob)
    assert status_of(first) == S.DONE
    assert PrintRecord.objects.get(job=first).removed_by == bob
    assert tick() == [second.pk]


@pytest.mark.django_db
def test_auto_continue_takes_the_next_job_without_a_confirmation(lab, alice, bob, tmp_path, tick):
    printer = make_printer(lab, after_print="auto")
    first = queued_job(lab, bob, tmp_path, name="first.gcode")
    second = queued_job(lab, bob, tmp_path, name="second.gcode")
    tick()
    printing.print_job_record(job=first, actor=alice, outcome="started")
    printing.print_job_record(job=first, actor=alice, outcome="finished")
    assert status_of(first) == S.DONE
    printer.refresh_from_db()
    assert printer.bed_clear
    assert tick() == [second.pk]


@pytest.mark.django_db
def test_copies_are_printed_one_after_another(lab, alice, bob, tmp_path, tick):
    printer = make_printer(lab)
    job = queued_job(lab, bob, tmp_path, copies=2)
    for copy in (1, 2):
        assert tick() == [job.pk]
        printing.print_job_record(job=job, actor=alice, outcome="started")
        printing.print_job_record(job=job, actor=alice, outcome="finished")
        printing.printer_confirm_cleared(machine=printer.machine, actor=bob)
        job.refresh_from_db()
        assert job.copies_done == copy
    assert job.status == S.DONE
    assert list(PrintRecord.objects.filter(job=job).order_by("copy").values_list("copy", "result")) == [
        (1, "done"),
        (2, "done"),
    ]


@pytest.mark.django_db
def test_the_owner_must_still_be_qualified_when_the_job_starts(lab, alice, bob, tmp_path, tick):
    from machines.models import Qualification

    printer = make_printer(lab)
    services.machine_update(machine=printer.machine, actor=alice, requires_qualification=True)
    services.qualification_record(
        lab=lab, actor=alice, member=bob, machine=printer.machine, trained_on="2020-01-01"
    )
    job = queued_job(lab, bob, tmp_path)
    Qualification.objects.filter(member=bob).delete()
    assert tick() == [] and status_of(job) == S.QUEUED


@pytest.mark.django_db
def test_a_networked_printer_not_seen_idle_lately_takes_no_job(lab, bob, tmp_path, tick, settings):
    printer = make_printer(lab, url="http://127.0.0.1:9", api_key="k")
    queued_job(lab, bob, tmp_path)
    Printer.objects.filter(pk=printer.pk).update(
        state="idle", seen_at=timezone.now() - timedelta(seconds=settings.FABHUB_PRINT_STATE_MAX_AGE_S + 5)
    )
    assert tick() == []


@pytest.mark.django_db
@pytest.mark.parametrize("protocol", ["octoprint", "moonraker", "prusalink"])
def test_a_printer_unreachable_before_the_start_leaves_the_job_queued_and_is_marked_offline(
    lab, bob, tmp_path, tick, protocol
):
    """Seen idle a moment ago, the send skips connecting; the upload's first look fails
    before anything is sent, so the job goes back to the queue, neither lost nor failed."""
    import socket

    with socket.socket() as s:  # a port nobody listens on: the connection is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    printer = make_printer(lab)
    services.machine_update(machine=printer.machine, actor=lab.memberships.get(role="manager").user,
                            connection_url=f"http://127.0.0.1:{port}", connection_api_key="k",
                            connection_protocol=protocol)  # fmt: skip
    Printer.objects.filter(pk=printer.pk).update(state="idle", seen_at=timezone.now())
    job = queued_job(lab, bob, tmp_path)
    assert tick() == [job.pk]
    job.refresh_from_db()
    printer.refresh_from_db()
    assert (job.status, job.machine, job.booking) == (S.QUEUED, None, None)
    assert "does not answer" in job.reason
    assert printer.state == "offline" and "does not answer" in printer.message
    assert not Booking.objects.filter(kind=Booking.Kind.PRINT_JOB, status__in=Booking.ACTIVE).exists()
    assert tick() == []  # offline printers get nothing until they answer again


@pytest.mark.django_db
def test_the_database_never_lets_one_printer_hold_two_jobs(lab, bob, tmp_path, tick):
    printer = make_printer(lab)
    queued_job(lab, bob, tmp_path, name="a.gcode")
    other = queued_job(lab, bob, tmp_path, name="b.gcode")
    tick()
    with pytest.raises(IntegrityError), transaction.atomic():
        PrintJob.objects.filter(pk=other.pk).update(status=S.PRINTING, machine=printer.machine)


@pytest.mark.django_db(transaction=True)
def test_dispatchers_racing_start_every_job_at_most_once(lab, bob, tmp_path):
    """Four dispatchers at once (threads with their own connections) over three printers
    and five jobs: each job is claimed (and handed to its printer) once, each printer holds
    one job, and each claim has exactly one timeline row."""
    for n in range(3):
        make_printer(lab, slug=f"p{n}")
    Printer.objects.update(bed_clear=False)  # no dispatch while the jobs are queued
    jobs = [queued_job(lab, bob, tmp_path, name=f"j{n}.gcode") for n in range(5)]
    Printer.objects.update(bed_clear=True)
    barrier = threading.Barrier(4)
    claimed: list[int] = []
    errors: list[BaseException] = []

    def run():
        try:
            barrier.wait()
            claimed.extend(dispatch.dispatch_tick())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(claimed) == len(set(claimed)) == 3
    on_printers = PrintJob.objects.filter(status__in=PrintJob.ON_PRINTER)
    assert on_printers.count() == 3 and len(set(on_printers.values_list("machine_id", flat=True))) == 3
    # Sent once each: the manual driver's hand-off put each printer in "awaiting operator".
    assert set(on_printers.values_list("status", flat=True)) == {S.AWAITING_OPERATOR}
    assert Booking.objects.filter(kind=Booking.Kind.PRINT_JOB).count() == 3
    assert PrintJob.objects.filter(pk__in=[j.pk for j in jobs], status=S.QUEUED).count() == 2


@pytest.mark.django_db
def test_a_job_cancelled_between_the_plan_and_the_claim_is_not_claimed_and_its_printer_looks_again(
    lab, bob, tmp_path, tick, monkeypatch
):
    """The owner cancels the job the round chose, after the dispatcher read it and before
    its claim: the claim leaves it cancelled (on SQLite the claim's count falls short and
    the round rolls back; on PostgreSQL the job is no longer queued under the lock), no
    timeline row is left for it, and the printer takes the next job in the same tick."""
    printer = make_printer(lab)
    chosen = queued_job(lab, bob, tmp_path, name="chosen.gcode")
    queued_job(lab, bob, tmp_path, name="next.gcode")
    plan = dispatch._plan
    cancelled: list[int] = []

    def plan_then_cancel(printers, now):
        plans = plan(printers, now)
        if not cancelled:
            assert [p.job.pk for p in plans] == [chosen.pk]
            printing.print_job_cancel(job=PrintJob.objects.get(pk=plans[0].job.pk), actor=bob)
            cancelled.append(plans[0].job.pk)
        return plans

    monkeypatch.setattr(dispatch, "_plan", plan_then_cancel)
    claimed = tick()
    assert cancelled == [chosen.pk]
    assert len(claimed) == 1 and claimed != [chosen.pk]
    assert status_of(chosen) == S.CANCELLED and chosen.booking_id is None
    rows = Booking.objects.filter(kind=Booking.Kind.PRINT_JOB, status__in=Booking.ACTIVE)
    assert list(rows.values_list("machine_id", flat=True)) == [printer.pk]
    assert PrintJob.objects.get(pk=claimed[0]).booking_id == rows.get().pk


@pytest.mark.django_db
def test_the_file_name_on_the_printer_is_plain_ascii_and_unique_per_dispatch(lab, bob, tmp_path, tick):
    import re

    make_printer(lab)
    job = queued_job(lab, bob, tmp_path, name="Halterung für Büro.gcode")
    tick()
    job.refresh_from_db()
    assert re.fullmatch(r"fabhub-\d+-1-[0-9a-f]{8}-halterung-f-r-b-ro\.gcode", job.remote_name), (
        job.remote_name
    )


@pytest.mark.django_db
def test_the_dispatcher_starts_exactly_the_jobs_the_waiting_reasons_say_start_next(lab, bob, tmp_path, tick):
    """The dispatcher reads each group of printers' candidates only as far as the round
    usually looks; printers that must look further (here the small ones, past the older
    parts too wide for them) read the rest. Either way it starts what the waiting
    reasons, which play the round over the whole queue, say starts next."""
    from machines.printing.waiting import waiting_reasons

    for n in range(3):
        make_printer(lab, slug=f"mini{n}", volume=(100, 100, 100))
    make_printer(lab, slug="xl", volume=(300, 300, 300))
    make_printer(lab, slug="petg", material="PETG")
    Printer.objects.update(bed_clear=False)  # nothing starts while the queue fills
    path = tmp_path / "wide.gcode"
    path.write_text(
        "G90\nM82\nG1 X10 Y10 Z0.2 F6000\nG1 X250 Y10 E5\n; estimated printing time (normal mode) = 5m 0s\n"
    )
    now = timezone.now()
    wide = []
    for n in range(9):
        wide.append(
            printing.print_job_submit(lab=lab, owner=bob, upload=gcode_upload(path, f"wide{n}.gcode"))
        )
    narrow = [queued_job(lab, bob, tmp_path, name=f"narrow{n}.gcode") for n in range(5)]
    petg = [queued_job(lab, bob, tmp_path, name=f"petg{n}.gcode", material="PETG") for n in range(2)]
    for age, job in enumerate(reversed(wide + narrow + petg)):
        PrintJob.objects.filter(pk=job.pk).update(queued_at=now - timedelta(minutes=age + 1))
    Printer.objects.update(bed_clear=True)

    queued = list(PrintJob.objects.filter(status=S.QUEUED))
    reasons = waiting_reasons(queued, now=timezone.now())
    expected = {pk for pk, why in reasons.items() if not why}
    assert expected == {wide[0].pk, *(j.pk for j in narrow[:3]), petg[0].pk}
    assert set(tick()) == expected


@pytest.mark.django_db
def test_the_dispatchers_plain_rows_of_printers_read_as_the_models_do(lab):
    """The dispatcher reads idle printers as plain rows (`dispatch.IdlePrinter` and its
    `IdleMachine`), not models: whatever the predicates read of them (`waiting.SeenPrinter`,
    `waiting.SeenMachine`), and the round and the claim after them, is what the models
    say, field by field."""
    now = timezone.now()
    make_printer(lab, slug="plain", name="Plain", volume=(120, 130, 140))
    make_printer(
        lab, slug="net", name="Net", url="http://127.0.0.1:9", api_key="k", colour="black", material="PETG"
    )
    Machine.objects.filter(slug="plain").update(work_z_mm=None, requires_qualification=True)
    Printer.objects.filter(machine__slug="plain").update(nozzle_mm=Decimal("0.6"), slicer_profile="[print]")
    Printer.objects.filter(machine__slug="net").update(state="idle", seen_at=now)
    rows = dispatch.idle_printers(now=now)
    models = {p.pk: p for p in Printer.objects.select_related("machine", "machine__lab")}
    assert sorted(row.machine.name for row in rows) == ["Net", "Plain"]

    def read(model, *, protocol, more):
        # The machine is compared on its own, below.
        names = [n for n, v in vars(protocol).items() if isinstance(v, property) and n != "machine"]
        return {name: getattr(model, name) for name in [*names, *more]}

    for row in rows:
        model = models[row.pk]
        assert read(row, protocol=SeenPrinter, more=["profile_key"]) == read(
            model, protocol=SeenPrinter, more=["profile_key"]
        )
        assert read(row.machine, protocol=SeenMachine, more=["has_connection"]) == read(
            model.machine, protocol=SeenMachine, more=["has_connection"]
        )
        row.machine.status = model.machine.status = Machine.Status.OUT_OF_ORDER
        assert row.machine.get_status_display() == model.machine.get_status_display() == "Out of order"


@pytest.mark.django_db
def test_a_plain_row_of_a_machine_never_shows_its_connection_secret(lab):
    """The key is write-only on the model; a log line formatting the dispatcher's plain row
    of the machine (`%s` or `%r`) must not print it either."""
    make_printer(lab, slug="net", name="Net", url="http://127.0.0.1:9", api_key="octoprint-key-XYZ")
    Printer.objects.filter(machine__slug="net").update(state="idle", seen_at=timezone.now())
    (row,) = dispatch.idle_printers(now=timezone.now())
    assert row.machine.connection_secret  # read, for the claim and the send
    for shown in (str(row.machine), repr(row.machine), repr(row)):
        assert row.machine.connection_secret not in shown
        assert "XYZ" not in shown
    assert str(row.machine) == "Net"
