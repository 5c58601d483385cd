"""A queued job says why it waits, in the dispatcher's own terms: for each reason, the
reason is given, the dispatcher really does not start the job, and once the reason is
gone the reason goes and the dispatcher starts it. Also: the printer card never reads
idle under a job, opening hours and closures apply to prints (unless the lab allows
unattended prints), a print overrunning into a member's booking tells both, and print
jobs waiting for approval count on the Approvals badge. Printers here are manual (no
network) unless a test needs a networked one, whose sends are never run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from hub.models import Notification
from machines import services, spools
from machines.models import Booking, Closure, Machine, Printer, PrintJob, PrintSettings
from machines.notifications import notifications_about
from machines.printing import dispatch
from machines.printing import selectors as ps
from machines.printing import services as printing
from machines.printing.drivers import PrinterState, PrinterStatus
from machines.printing.waiting import printer_state_blocker, waiting_reasons, why_waiting
from machines.selectors import lab_decisions
from tests.conftest import client_for
from tests.machines.factories import add_member, at, make_lab
from tests.printing.factories import make_printer, queued_job

pytestmark = pytest.mark.django_db
S = PrintJob.Status


@pytest.fixture
def mk4(lab):
    return make_printer(
        lab,
        name="Virtual MK4",
        capabilities={"materials": ["PLA", "PETG"], "nozzle_diameters_mm": [0.4, 0.6]},
    )


def started(job: PrintJob) -> bool:
    job.refresh_from_db()
    return job.status in PrintJob.ON_PRINTER


def tick(**kwargs) -> list[int]:
    """One dispatcher round. Its send tasks wait for a commit the test's transaction never
    makes: a manual printer's hand-off is sent here, a networked printer's never is (the
    claim is what the dispatcher decides)."""
    claimed = dispatch.dispatch_tick(**kwargs)
    for job in PrintJob.objects.filter(pk__in=claimed).select_related("machine"):
        if not job.printer_machine.has_connection:
            dispatch.print_job_send(job_id=job.pk, token=job.dispatch_token)
    return claimed


# -- each reason: given, the dispatcher agrees, and it goes away ------------------------------


def test_a_job_for_a_material_no_printer_has_loaded_waits_until_a_spool_of_it_is(
    lab, alice, bob, mk4, tmp_path
):
    job = queued_job(lab, bob, tmp_path, material="PETG")
    assert why_waiting(job) == ["no printer with PETG loaded — Virtual MK4 has PLA"]
    assert tick() == []
    spools.spool_load(
        spool=spools.spool_create(lab=lab, actor=alice, material="petg", initial_g=1000),
        printer=mk4,
        actor=alice,
    )
    assert why_waiting(job) == []
    assert tick() == [job.pk]


def test_a_job_for_another_nozzle_waits_until_the_printer_has_it(lab, alice, bob, mk4, tmp_path):
    job = queued_job(lab, bob, tmp_path, nozzle_mm="0.6")
    assert why_waiting(job) == ["no printer with a 0.6 mm nozzle — Virtual MK4 has 0.4 mm"]
    assert tick() == []
    printing.printer_configure(machine=mk4.machine, actor=alice, nozzle_mm="0.6")
    assert why_waiting(job) == [] and tick() == [job.pk]


def test_a_job_for_a_colour_waits_for_that_colour(lab, alice, bob, mk4, tmp_path):
    printing.printer_configure(machine=mk4.machine, actor=alice, colour="black")
    job = queued_job(lab, bob, tmp_path, colour="Red")
    assert why_waiting(job) == ["no printer with red loaded — Virtual MK4 has black"]
    assert tick() == []
    printing.printer_configure(machine=mk4.machine, actor=alice, colour="red")
    assert tick() == [job.pk]


def test_with_a_second_printer_busy_the_reason_says_no_idle_printer(lab, alice, bob, mk4, tmp_path):
    xl = make_printer(lab, slug="xl", name="XL", material="PETG", capabilities={"materials": ["PLA", "PETG"]})
    first = queued_job(lab, bob, tmp_path, name="first.gcode", material="PETG")
    assert tick() == [first.pk]
    job = queued_job(lab, bob, tmp_path, name="second.gcode", material="PETG")
    assert why_waiting(job) == [
        "no idle printer with PETG loaded — Virtual MK4 has PLA",
        f"XL waits for an operator to start job #{first.pk}",
    ]
    assert tick() == []
    first.refresh_from_db()
    assert first.machine_id == xl.pk


def test_a_job_behind_a_busy_printer_then_a_part_to_collect(lab, alice, bob, mk4, tmp_path):
    first = queued_job(lab, bob, tmp_path, name="first.gcode", minutes=60)
    assert tick() == [first.pk]
    printing.print_job_record(job=PrintJob.objects.get(pk=first.pk), actor=bob, outcome="started")
    PrintJob.objects.filter(pk=first.pk).update(progress=50.0)
    job = queued_job(lab, bob, tmp_path, name="second.gcode")
    assert why_waiting(job) == [f"Virtual MK4 is busy with job #{first.pk} (about 30 min left)"]
    assert tick() == []
    printing.print_job_record(job=PrintJob.objects.get(pk=first.pk), actor=bob, outcome="finished")
    assert why_waiting(job) == [f"bed not cleared on Virtual MK4 (job #{first.pk} waits to be collected)"]
    assert tick() == []
    printing.printer_confirm_cleared(machine=mk4.machine, actor=bob)
    assert why_waiting(job) == [] and tick() == [job.pk]


def test_a_job_waits_while_the_printer_is_booked_by_a_person_now(lab, bob, mk4, tmp_path):
    job = queued_job(lab, bob, tmp_path)
    now = timezone.now()
    row = Booking.objects.create(
        machine=mk4.machine,
        member=bob,
        created_by=bob,
        start=now - timedelta(minutes=1),
        end=now + timedelta(hours=1),
    )
    [reason] = why_waiting(job)
    assert reason.startswith(
        f"Virtual MK4 is booked until {(now + timedelta(hours=1)).astimezone(lab.zone):%H:%M}"
    )
    assert tick() == []
    Booking.objects.filter(pk=row.pk).update(status=Booking.Status.CANCELLED)
    assert tick() == [job.pk]


def test_a_job_too_long_for_the_room_before_the_next_booking_waits(lab, bob, mk4, tmp_path):
    job = queued_job(lab, bob, tmp_path, minutes=60)
    now = timezone.now()
    row = Booking.objects.create(
        machine=mk4.machine,
        member=bob,
        created_by=bob,
        start=now + timedelta(minutes=30),
        end=now + timedelta(hours=2),
    )
    [reason] = why_waiting(job)
    assert (
        reason.startswith("Virtual MK4 is booked from ")
        and "not enough time for this print (about 1 h 06 min)" in reason
    )
    assert tick() == []
    Booking.objects.filter(pk=row.pk).update(start=now + timedelta(hours=3), end=now + timedelta(hours=4))
    assert tick() == [job.pk]


def test_a_job_waits_while_the_printer_is_in_maintenance(lab, alice, bob, mk4, tmp_path):
    job = queued_job(lab, bob, tmp_path)
    services.machine_set_status(
        machine=mk4.machine, actor=alice, status=Machine.Status.MAINTENANCE, reason="belts"
    )
    assert why_waiting(job) == ["Virtual MK4 is in maintenance"]
    assert tick() == []
    services.machine_set_status(machine=mk4.machine, actor=alice, status=Machine.Status.AVAILABLE)
    assert tick() == [job.pk]


def test_a_job_waits_while_a_printer_takes_no_jobs_and_another_is_too_small(lab, alice, bob, tmp_path):
    big = make_printer(lab, slug="xl", name="XL", volume=(300, 300, 300))
    make_printer(lab, slug="mini", name="Mini", volume=(100, 100, 100))
    path = tmp_path / "wide.gcode"
    path.write_text(
        "G90\nM82\nG1 X10 Y10 Z0.2 F6000\nG1 X250 Y10 E5\n; estimated printing time (normal mode) = 5m 0s\n"
    )
    from tests.printing.factories import gcode_upload

    job = printing.print_job_submit(lab=lab, owner=bob, upload=gcode_upload(path))  # read and queued at once
    printing.printer_configure(machine=big.machine, actor=alice, accepts_jobs=False)
    assert sorted(why_waiting(job)) == ["XL is not taking jobs", "too big for Mini"]
    assert tick() == []
    printing.printer_configure(machine=big.machine, actor=alice, accepts_jobs=True)
    assert tick() == [job.pk]


def test_a_job_whose_owner_is_not_qualified_waits(lab, alice, bob, mk4, tmp_path):
    job = queued_job(lab, bob, tmp_path)
    Machine.objects.filter(pk=mk4.pk).update(requires_qualification=True)
    assert why_waiting(job) == ["bob is not qualified on Virtual MK4"]
    assert tick() == []
    services.qualification_record(
        lab=lab, actor=alice, member=bob, machine=Machine.objects.get(pk=mk4.pk), trained_on=date.today()
    )
    assert why_waiting(job) == [] and tick() == [job.pk]


def test_a_job_behind_jobs_of_higher_priority_says_so(lab, alice, bob, mk4, tmp_path):
    mine = queued_job(lab, bob, tmp_path, name="mine.gcode")
    urgent = queued_job(lab, alice, tmp_path, name="urgent.gcode", priority=PrintJob.Priority.URGENT)
    high = queued_job(lab, alice, tmp_path, name="high.gcode", priority=PrintJob.Priority.HIGH)
    reasons = waiting_reasons([mine, urgent, high])
    assert reasons == {
        mine.pk: ["behind 2 jobs of higher priority for Virtual MK4"],
        urgent.pk: [],
        high.pk: ["behind 1 job of higher priority for Virtual MK4"],
    }
    assert tick() == [urgent.pk]


def test_a_job_behind_an_older_one_says_it_is_queued_behind(lab, bob, mk4, tmp_path):
    older = queued_job(lab, bob, tmp_path, name="older.gcode")
    younger = queued_job(lab, bob, tmp_path, name="younger.gcode")
    assert why_waiting(younger) == ["behind 1 job queued before it for Virtual MK4"]
    assert why_waiting(older) == []
    assert tick() == [older.pk]


def test_a_job_waiting_for_approval_says_so_until_approved(alice, bob, tmp_path):
    lab = make_lab(alice, slug="strict", hours="00:00-00:00")
    add_member(lab, bob)
    make_printer(lab)
    printing.print_settings_update(lab=lab, actor=alice, requires_approval=True)
    from tests.printing.conftest import write_test_gcode
    from tests.printing.factories import gcode_upload

    path = write_test_gcode(tmp_path / "part.gcode", moves=20)
    job = printing.print_job_submit(lab=lab, owner=bob, upload=gcode_upload(path))  # read at once
    assert job.status == S.PENDING_APPROVAL
    assert why_waiting(job) == ["awaiting approval by a manager"]
    assert tick() == []
    printing.print_job_approve(job=job, actor=alice)
    job.refresh_from_db()
    assert why_waiting(job) == [] and tick() == [job.pk]


def test_a_job_on_a_printer_or_finished_waits_for_nothing(lab, bob, mk4, tmp_path):
    job = queued_job(lab, bob, tmp_path)
    tick()
    job.refresh_from_db()
    assert why_waiting(job) == []


# -- networked printers: offline, stale, error ------------------------------------------------


@pytest.fixture
def networked(lab):
    return make_printer(lab, slug="net", name="Net MK4", url="http://127.0.0.1:9", api_key="k")


@pytest.mark.parametrize(
    ("state", "seen", "reason"),
    [
        ("offline", 0, "Net MK4 is offline"),
        ("error", 0, "Net MK4 reports an error and needs a manager"),
        ("printing", 0, "Net MK4 is busy with a print started at the printer"),
        ("idle", 3600, "Net MK4 has not answered for a while"),
        ("unknown", 0, "Net MK4 is not ready (unknown)"),
    ],
)
def test_a_networked_printer_that_is_not_idle_and_fresh_takes_nothing(
    lab, bob, networked, tmp_path, state, seen, reason
):
    job = queued_job(lab, bob, tmp_path)
    Printer.objects.filter(pk=networked.pk).update(
        state=state, seen_at=timezone.now() - timedelta(seconds=seen)
    )
    assert why_waiting(job) == [reason]
    assert tick() == []
    Printer.objects.filter(pk=networked.pk).update(state="idle", seen_at=timezone.now())
    assert why_waiting(job) == [] and tick() == [job.pk]


def test_the_predicate_and_the_dispatchers_query_agree_on_every_printer(lab, bob, tmp_path, settings):
    """`dispatch.idle_printers` is a query, `printer_state_blocker` its sentence-by-sentence
    twin: over every combination that matters, they pick the same printers."""
    now = timezone.now()
    manual = make_printer(lab, slug="manual")
    net = make_printer(lab, slug="net", url="http://127.0.0.1:9", api_key="k")
    holder = queued_job(lab, bob, tmp_path)
    combos = 0
    for printer in (manual, net):
        for state in [s.value for s in PrinterState]:
            for age in (0, 3600, None):
                for bed in (True, False):
                    for accepts in (True, False):
                        for holding in (False, True):
                            Printer.objects.filter(pk=printer.pk).update(
                                state=state,
                                seen_at=None if age is None else now - timedelta(seconds=age),
                                bed_clear=bed,
                                accepts_jobs=accepts,
                            )
                            PrintJob.objects.filter(pk=holder.pk).update(
                                status=S.PRINTING if holding else S.QUEUED,
                                machine=printer.machine if holding else None,
                            )
                            row = Printer.objects.select_related("machine", "machine__lab").get(pk=printer.pk)
                            job = PrintJob.objects.get(pk=holder.pk) if holding else None
                            by_query = printer.pk in {p.pk for p in dispatch.idle_printers(now=now)}
                            by_predicate = printer_state_blocker(row, holding=job, now=now) is None
                            assert by_query == by_predicate, (printer, state, age, bed, accepts, holding)
                            combos += 1
        Printer.objects.filter(pk=printer.pk).update(accepts_jobs=False)
    assert combos == 2 * len(PrinterState) * 3 * 2 * 2 * 2


# -- opening hours and closures ---------------------------------------------------------------


@pytest.fixture
def day_lab(alice, bob):
    """Open 09:00-21:00 every day (Europe/Paris)."""
    lab = make_lab(alice, slug="daylab")
    add_member(lab, bob)
    make_printer(lab, name="Virtual MK4")
    return lab


MONDAY = date(2031, 3, 3)  # a Monday, in the future (bookings and closures refuse the past)


def test_a_job_waits_while_the_lab_is_closed(day_lab, bob, tmp_path):
    job = queued_job(day_lab, bob, tmp_path, minutes=30)
    night = at(day_lab, MONDAY, "22:00")
    assert why_waiting(job, now=night) == ["lab closed until 09:00 (Tuesday)"]
    assert tick(now=night) == []
    assert why_waiting(job, now=at(day_lab, MONDAY, "10:00")) == []
    assert tick(now=at(day_lab, MONDAY, "10:00")) == [job.pk]


def test_a_job_that_cannot_finish_before_closing_waits_for_the_next_opening(day_lab, bob, tmp_path):
    job = queued_job(day_lab, bob, tmp_path, minutes=30)
    late = at(day_lab, MONDAY, "20:45")
    assert why_waiting(job, now=late) == [
        "the lab closes at 21:00, before this print (about 33 min) could finish; unattended prints are not allowed"
    ]
    assert tick(now=late) == []
    assert tick(now=at(day_lab, MONDAY, "20:00")) == [job.pk]


def test_a_lab_that_allows_unattended_prints_starts_them_at_any_hour(day_lab, bob, tmp_path):
    PrintSettings.objects.update_or_create(lab=day_lab, defaults={"unattended_overnight": True})
    job = queued_job(day_lab, bob, tmp_path, minutes=30)
    assert why_waiting(job, now=at(day_lab, MONDAY, "23:30")) == []
    assert tick(now=at(day_lab, MONDAY, "23:30")) == [job.pk]


def test_a_closure_holds_jobs_back_and_one_coming_stops_a_long_print(day_lab, bob, tmp_path):
    job = queued_job(day_lab, bob, tmp_path, minutes=120)
    Closure.objects.create(
        lab=day_lab,
        start=at(day_lab, MONDAY, "12:00"),
        end=at(day_lab, MONDAY + timedelta(days=1), "12:00"),
        reason="inventory",
    )
    assert why_waiting(job, now=at(day_lab, MONDAY, "13:00")) == [
        "lab closed (inventory) until 12:00 (Tuesday)"
    ]
    assert tick(now=at(day_lab, MONDAY, "13:00")) == []
    [reason] = why_waiting(job, now=at(day_lab, MONDAY, "11:00"))
    assert reason.startswith("the lab closes for inventory at 12:00, before this print (about 2 h 12 min)")
    assert tick(now=at(day_lab, MONDAY, "11:00")) == []
    PrintSettings.objects.update_or_create(lab=day_lab, defaults={"unattended_overnight": True})
    assert tick(now=at(day_lab, MONDAY, "13:00")) == [job.pk]


def test_a_lab_without_opening_hours_prints_round_the_clock(alice, bob, tmp_path):
    lab = make_lab(alice, slug="nohours")
    services.lab_set_hours(lab=lab, actor=alice, hours=[])
    add_member(lab, bob)
    make_printer(lab)
    job = queued_job(lab, bob, tmp_path)
    assert tick(now=at(lab, MONDAY, "03:00")) == [job.pk]


# -- the printer card -------------------------------------------------------------------------


def test_the_printer_card_never_reads_idle_under_a_print_or_a_part_to_collect(
    client, lab, alice, bob, mk4, tmp_path
):
    job = queued_job(lab, bob, tmp_path)
    assert tick() == [job.pk]
    printing.print_job_record(job=PrintJob.objects.get(pk=job.pk), actor=bob, outcome="started")
    Printer.objects.filter(pk=mk4.pk).update(state="idle")  # the operator's record lags behind
    job.refresh_from_db()
    printer = Printer.objects.select_related("machine").get(pk=mk4.pk)
    assert ps.printer_card_state(printer, job).value == "printing"
    api = client_for(bob)
    [tile] = api.get(reverse("api-lab-printers", args=[lab.slug])).json()
    assert (tile["state"], tile["display_state"]) == ("idle", "printing")
    assert (
        api.get(reverse("api-machine-printer", args=[lab.slug, "mk4"])).json()["display_state"] == "printing"
    )
    client.force_login(bob)
    page = client.get(reverse("print-queue", args=[lab.slug])).content.decode()
    assert 'class="status printing">printing</span>' in page and ">idle<" not in page
    printing.print_job_record(job=job, actor=bob, outcome="finished")
    job.refresh_from_db()
    assert ps.printer_card_state(Printer.objects.get(pk=mk4.pk), job).label == "printed: awaiting removal"
    [tile] = api.get(reverse("api-lab-printers", args=[lab.slug])).json()
    assert tile["display_state"] == "awaiting_removal"
    printing.printer_confirm_cleared(machine=mk4.machine, actor=bob)
    [tile] = api.get(reverse("api-lab-printers", args=[lab.slug])).json()
    assert tile["display_state"] == Printer.objects.get(pk=mk4.pk).state


# -- reasons where people see them ------------------------------------------------------------


def test_the_reasons_are_on_the_job_page_the_queue_and_in_the_api(client, lab, alice, bob, mk4, tmp_path):
    job = queued_job(lab, bob, tmp_path, material="PETG")
    reason = "no printer with PETG loaded — Virtual MK4 has PLA"
    client.force_login(bob)
    assert reason in client.get(reverse("print-job", args=[job.pk])).content.decode()
    assert reason in client.get(reverse("print-queue", args=[lab.slug])).content.decode()
    api = client_for(bob)
    assert api.get(reverse("api-print-job", args=[job.pk])).json()["waiting_reasons"] == [reason]
    assert _rows(api.get(reverse("api-print-jobs")).json())[0]["waiting_reasons"] == [reason]
    assert [
        j["waiting_reasons"] for j in _rows(api.get(reverse("api-lab-print-jobs", args=[lab.slug])).json())
    ] == [[reason]]


def _rows(body):
    return body["results"] if isinstance(body, dict) else body


def test_the_lab_queue_api_works_out_reasons_in_a_few_queries(
    lab, alice, bob, mk4, tmp_path, django_assert_max_num_queries
):
    for n in range(6):
        queued_job(lab, bob, tmp_path, name=f"p{n}.gcode", material="PETG" if n % 2 else "PLA")
    api = client_for(alice)
    with django_assert_max_num_queries(25):
        body = _rows(api.get(reverse("api-lab-print-jobs", args=[lab.slug])).json())
    assert len(body) == 6 and all("waiting_reasons" in j for j in body)


# -- an overrun into a member's booking -------------------------------------------------------


@dataclass
class FakeDriver:
    status_value: PrinterStatus

    def status(self) -> PrinterStatus:
        return self.status_value


def test_a_print_overrunning_into_a_members_booking_tells_the_member_and_the_owner_once(
    lab, alice, bob, tmp_path, monkeypatch
):
    net = make_printer(lab, slug="net", name="Net MK4", url="http://127.0.0.1:9", api_key="k")
    Printer.objects.filter(pk=net.pk).update(state="idle", seen_at=timezone.now())
    job = queued_job(lab, bob, tmp_path, minutes=60)
    assert tick() == [job.pk]
    job.refresh_from_db()
    PrintJob.objects.filter(pk=job.pk).update(status=S.PRINTING, print_started_at=timezone.now())
    # The print's row ends in a minute, and alice booked the printer right after it.
    now = timezone.now()
    Booking.objects.filter(pk=job.booking_id).update(
        start=now - timedelta(hours=1), end=now + timedelta(minutes=1)
    )
    booking = Booking.objects.create(
        machine=net.machine,
        member=alice,
        created_by=alice,
        start=now + timedelta(minutes=1),
        end=now + timedelta(hours=2),
    )
    running = PrinterStatus(state=PrinterState.PRINTING, progress=10.0, job_name=job.remote_name)
    monkeypatch.setattr(dispatch, "driver_for_machine", lambda machine: FakeDriver(running))
    dispatch.printer_poll(machine_id=net.pk)
    dispatch.printer_poll(machine_id=net.pk)
    told = notifications_about(booking=booking).filter(subject__startswith="Running late")
    assert sorted(n.recipient.username for n in told) == ["alice", "bob"]
    assert Booking.objects.get(pk=job.booking_id).end == booking.start  # stretched up to it, not over


def test_a_print_overrunning_into_free_time_tells_nobody(lab, bob, tmp_path, monkeypatch):
    net = make_printer(lab, slug="net", name="Net MK4", url="http://127.0.0.1:9", api_key="k")
    Printer.objects.filter(pk=net.pk).update(state="idle", seen_at=timezone.now())
    job = queued_job(lab, bob, tmp_path, minutes=60)
    assert tick() == [job.pk]
    job.refresh_from_db()
    PrintJob.objects.filter(pk=job.pk).update(status=S.PRINTING, print_started_at=timezone.now())
    now = timezone.now()
    Booking.objects.filter(pk=job.booking_id).update(
        start=now - timedelta(hours=1), end=now + timedelta(minutes=1)
    )
    running = PrinterStatus(state=PrinterState.PRINTING, progress=10.0, job_name=job.remote_name)
    monkeypatch.setattr(dispatch, "driver_for_machine", lambda machine: FakeDriver(running))
    dispatch.printer_poll(machine_id=net.pk)
    assert not Notification.objects.filter(subject__startswith="Running late").exists()
    assert Booking.objects.get(pk=job.booking_id).end > now + timedelta(minutes=50)


# -- the Approvals badge ----------------------------------------------------------------------


def test_print_jobs_waiting_for_approval_count_on_the_approvals_badge(client, alice, bob, tmp_path):
    lab = make_lab(alice, slug="strict", hours="00:00-00:00")
    add_member(lab, bob)
    make_printer(lab)
    printing.print_settings_update(lab=lab, actor=alice, requires_approval=True)
    from tests.printing.conftest import write_test_gcode
    from tests.printing.factories import gcode_upload

    for n in range(2):
        path = write_test_gcode(tmp_path / f"p{n}.gcode", moves=20)
        printing.print_job_submit(lab=lab, owner=bob, upload=gcode_upload(path))
    assert lab_decisions(lab).print_jobs == 2 and lab_decisions(lab).total == 2
    client.force_login(alice)
    page = client.get(reverse("lab-approvals", args=[lab.slug])).content.decode()
    assert 'Approvals <span class="badge private">2</span>' in page
    assert "2 print jobs wait for approval" in page
