"""Prepaid credits: top-ups, the hold a submission takes (or the clear refusal), the
settlement at the end of a print (overrun tolerance, the lab absorbing the rest, never a
negative balance), releases on cancel and refusal, the failed-print policy, priced
bookings, the ledger, the pages and API, and racing debits on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from hub.exceptions import PermissionDenied, ValidationError
from machines import credits, services
from machines.models import Booking, CreditAccount, CreditEntry, PrintJob
from machines.printing import costs, dispatch, prices
from machines.printing import services as printing
from machines.services.bookings import bookings_settle
from tests.concurrency import on_postgres, race
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.machines.factories import add_member, make_lab, make_machine
from tests.printing.conftest import write_test_gcode
from tests.printing.factories import gcode_upload, make_printer

S = PrintJob.Status
D = Decimal
METADATA = "; filament used [g] = 20.00\n; estimated printing time (normal mode) = 1h 0m 0s\n"


@pytest.fixture
def lab(db, alice, bob):
    """Credits on; 1.00 per print, 2.00 per machine-hour, PLA 0.05/g: the test job's
    estimate (20 g, 1 h) is 4.00."""
    lab = make_lab(alice, hours="00:00-00:00")
    add_member(lab, bob)
    printing.print_settings_update(
        lab=lab, actor=alice, credits_enabled=True, price_per_job=D("1.00"), price_per_machine_hour=D("2.00")
    )
    prices.material_price_set(lab=lab, actor=alice, material="PLA", price_per_gram="0.05")
    return lab


@pytest.fixture
def printer(lab):
    return make_printer(lab)


@pytest.fixture
def tick(django_capture_on_commit_callbacks):
    def run():
        with django_capture_on_commit_callbacks(execute=True):
            return dispatch.dispatch_tick()

    return run


def top_up(lab, user, amount, actor):
    return credits.credit_top_up(lab=lab, user=user, amount=D(amount), actor=actor)


def account(lab, user) -> CreditAccount:
    return CreditAccount.objects.get(lab=lab, user=user)


def ledger(lab, user) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    return [
        (e.kind, e.amount, e.balance_after, e.held_after)
        for e in CreditEntry.objects.filter(account__lab=lab, account__user=user).order_by("created_at", "pk")
    ]


def submit(lab, owner, tmp_path, name="part.gcode", **kwargs) -> PrintJob:
    path = write_test_gcode(tmp_path / name, moves=20)
    path.write_text(path.read_text() + METADATA)
    # A small G-code is read while it is submitted: prepared, estimated and held at once.
    job = printing.print_job_submit(lab=lab, owner=owner, upload=gcode_upload(path, name), **kwargs)
    assert job.status != PrintJob.Status.PREPARING
    return job


def print_it(job, alice, tick, *, minutes=30, outcome="finished", progress=None):
    tick()
    printing.print_job_record(job=job, actor=alice, outcome="started")
    changes = {"print_started_at": timezone.now() - timedelta(minutes=minutes)}
    if progress is not None:
        changes["progress"] = progress
    PrintJob.objects.filter(pk=job.pk).update(**changes)
    job.refresh_from_db()
    printing.print_job_record(job=job, actor=alice, outcome=outcome, reason="Spaghetti")
    job.refresh_from_db()
    return job


# -- holds at submission ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_submission_holds_its_estimate(lab, alice, bob, printer, tmp_path):
    top_up(lab, bob, "10", alice)
    job = submit(lab, bob, tmp_path)
    assert (job.estimated_cost, job.held_amount) == (D("4.00"), D("4.00"))
    assert (account(lab, bob).balance, account(lab, bob).held) == (D("10.00"), D("4.00"))
    assert ledger(lab, bob) == [("top_up", D("10"), D("10"), D("0")), ("hold", D("4"), D("10"), D("4"))]


@pytest.mark.django_db
def test_a_gcode_read_at_submission_holds_what_its_preparation_in_the_background_holds(
    lab, alice, bob, printer, tmp_path
):
    top_up(lab, bob, "10", alice)
    small = submit(lab, bob, tmp_path)  # read while submitted
    assert not small.needs_approval and small.status == PrintJob.Status.QUEUED
    large = write_test_gcode(tmp_path / "large.gcode", moves=7000)
    large.write_text(large.read_text() + METADATA)
    assert large.stat().st_size > printing.READ_AT_SUBMIT_BYTES
    job = printing.print_job_submit(lab=lab, owner=bob, upload=gcode_upload(large))
    assert job.status == PrintJob.Status.PREPARING
    printing.print_job_prepare(job_id=job.pk)
    job.refresh_from_db()
    assert (
        (small.estimated_cost, small.held_amount) == (job.estimated_cost, job.held_amount) == (D("4"), D("4"))
    )
    assert ledger(lab, bob) == [
        ("top_up", D("10"), D("10"), D("0")),
        ("hold", D("4"), D("10"), D("4")),
        ("hold", D("4"), D("10"), D("8")),
    ]


@pytest.mark.django_db
def test_an_insufficient_balance_is_refused_with_what_it_has_and_needs(lab, alice, bob, printer, tmp_path):
    top_up(lab, bob, "3.20", alice)
    with pytest.raises(ValidationError) as refused:
        submit(lab, bob, tmp_path)
    assert refused.value.message == (
        "Your balance at Fablab is 3.20 EUR, this job needs 4.00 EUR: ask a manager to top it up."
    )
    assert not PrintJob.objects.exists() and account(lab, bob).held == 0


@pytest.mark.django_db
def test_what_other_jobs_hold_is_not_available(lab, alice, bob, printer, tmp_path):
    top_up(lab, bob, "6", alice)
    submit(lab, bob, tmp_path)
    with pytest.raises(ValidationError, match=r"6.00 EUR \(4.00 EUR of it held for other jobs or bookings\)"):
        submit(lab, bob, tmp_path, name="second.gcode")


@pytest.mark.django_db
def test_a_lab_without_credits_holds_nothing(lab, alice, bob, printer, tmp_path):
    printing.print_settings_update(lab=lab, actor=alice, credits_enabled=False)
    job = submit(lab, bob, tmp_path)
    assert job.held_amount == 0 and not CreditEntry.objects.exists()


@pytest.mark.django_db
def test_a_higher_estimate_after_slicing_holds_more_or_fails_the_job(lab, alice, bob, printer, tmp_path):
    top_up(lab, bob, "5", alice)
    job = submit(lab, bob, tmp_path)
    costs.job_estimate_refined(job, D("4.50"))
    assert (account(lab, bob).held, PrintJob.objects.get(pk=job.pk).held_amount) == (D("4.50"), D("4.50"))
    costs.job_estimate_refined(job, D("3.00"))
    assert account(lab, bob).held == D("3.00")
    with pytest.raises(ValidationError, match="this job needs 3.00 EUR"):
        costs.job_estimate_refined(job, D("6.00"))


# -- settlement -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_finished_print_is_charged_its_actual_cost_and_the_hold_released(
    lab, alice, bob, printer, tmp_path, tick
):
    top_up(lab, bob, "10", alice)
    job = print_it(submit(lab, bob, tmp_path), alice, tick, minutes=30)
    assert (account(lab, bob).balance, account(lab, bob).held) == (D("7.00"), D("0.00"))
    assert ledger(lab, bob)[2:] == [
        ("release", D("-4"), D("10"), D("0")),
        ("charge", D("-3"), D("7"), D("0")),
    ]
    assert (job.actual_cost, job.held_amount) == (D("3.00"), D("0"))


@pytest.mark.django_db
def test_an_overrun_within_the_tolerance_is_charged(lab, alice, bob, printer, tmp_path, tick):
    top_up(lab, bob, "10", alice)
    print_it(submit(lab, bob, tmp_path), alice, tick, minutes=69)  # 1 + 1 + 2.30 = 4.30 ≤ 4.40
    assert account(lab, bob).balance == D("5.70")


@pytest.mark.django_db
def test_an_overrun_beyond_the_tolerance_is_absorbed_by_the_lab(lab, alice, bob, printer, tmp_path, tick):
    top_up(lab, bob, "10", alice)
    print_it(submit(lab, bob, tmp_path), alice, tick, minutes=90)  # 1 + 1 + 3.00 = 5.00
    assert account(lab, bob).balance == D("5.60")  # charged 4.40: the hold + 10 %
    assert ledger(lab, bob)[-2:] == [
        ("charge", D("-4.40"), D("5.60"), D("0")),
        ("absorbed", D("0.60"), D("5.60"), D("0")),
    ]


@pytest.mark.django_db
def test_what_the_balance_cannot_pay_is_absorbed_and_it_never_goes_negative(lab, alice, bob):
    top_up(lab, bob, "4", alice)
    credits.credit_hold(lab=lab, user=bob, amount=D("4"))
    result = credits.credit_settle(
        lab=lab, user=bob, held=D("4"), actual=D("4.30"), policy="charge", tolerance_percent=10
    )
    assert (result.charged, result.absorbed) == (D("4.00"), D("0.30"))
    assert account(lab, bob).balance == D("0.00")


@pytest.mark.django_db
def test_a_cancelled_job_releases_its_hold(lab, alice, bob, printer, tmp_path):
    top_up(lab, bob, "10", alice)
    job = submit(lab, bob, tmp_path)
    printing.print_job_cancel(job=job, actor=bob)
    assert (account(lab, bob).balance, account(lab, bob).held) == (D("10.00"), D("0.00"))
    assert ledger(lab, bob)[-1][:2] == ("release", D("-4.00"))


@pytest.mark.django_db
def test_a_refused_job_releases_its_hold(lab, alice, bob, printer, tmp_path):
    printing.print_settings_update(lab=lab, actor=alice, requires_approval=True)
    top_up(lab, bob, "10", alice)
    job = submit(lab, bob, tmp_path)
    printing.print_job_refuse(job=job, actor=alice, reason="Too big")
    assert account(lab, bob).held == 0


@pytest.mark.django_db
def test_a_failed_print_is_refunded_by_default(lab, alice, bob, printer, tmp_path, tick):
    top_up(lab, bob, "10", alice)
    print_it(submit(lab, bob, tmp_path), alice, tick, outcome="failed", progress=50.0)
    assert (account(lab, bob).balance, account(lab, bob).held) == (D("10.00"), D("0.00"))
    assert [kind for kind, *_ in ledger(lab, bob)] == ["top_up", "hold", "release"]


@pytest.mark.django_db
def test_a_failed_print_is_charged_what_it_used_by_the_labs_policy(lab, alice, bob, printer, tmp_path, tick):
    printing.print_settings_update(lab=lab, actor=alice, failed_prints="charge")
    top_up(lab, bob, "10", alice)
    print_it(submit(lab, bob, tmp_path), alice, tick, minutes=30, outcome="failed", progress=50.0)
    assert account(lab, bob).balance == D("7.50")  # 1.00 + 10 g × 0.05 + 0.5 h × 2.00


@pytest.mark.django_db
def test_copies_settle_their_share_of_the_hold_each(lab, alice, bob, printer, tmp_path, tick):
    top_up(lab, bob, "20", alice)
    job = submit(lab, bob, tmp_path, copies=2)
    assert job.held_amount == D("8.00")
    print_it(job, alice, tick, minutes=30)
    assert (account(lab, bob).held, PrintJob.objects.get(pk=job.pk).held_amount) == (D("4.00"), D("4.00"))
    printing.printer_confirm_cleared(machine=printer.machine, actor=alice)  # the second copy queues
    printing.print_job_cancel(job=PrintJob.objects.get(pk=job.pk), actor=bob)
    assert (account(lab, bob).balance, account(lab, bob).held) == (D("17.00"), D("0.00"))


# -- top-ups and who may do what ------------------------------------------------------------------


@pytest.mark.django_db
def test_only_managers_top_up_and_only_positive_amounts(lab, alice, bob):
    with pytest.raises(PermissionDenied):
        top_up(lab, bob, "10", bob)
    for bad, message in (("-5", "cannot be negative"), ("0", "more than 0"), ("1.001", "too many decimals")):
        with pytest.raises(ValidationError, match=message):
            top_up(lab, bob, bad, alice)
    with pytest.raises(ValidationError, match="not a member"):
        top_up(lab, UserFactory(username="stranger"), "5", alice)


@pytest.mark.django_db
def test_the_api_shows_balances_ledgers_and_records_top_ups(lab, alice, bob):
    carol = UserFactory(username="carol")
    add_member(lab, carol)
    made = client_for(alice).post(
        reverse("api-lab-credit-top-up", args=[lab.slug, "bob"]),
        {"amount": "12.50", "note": "cash"},
        format="json",
    )
    assert made.status_code == 201 and made.json()["balance_after"] == "12.50"
    assert client_for(bob).post(
        reverse("api-lab-credit-top-up", args=[lab.slug, "bob"]), {"amount": "5"}, format="json"
    ).status_code in (403, 404)
    everyone = client_for(alice).get(reverse("api-lab-credits", args=[lab.slug])).json()
    assert [(a["user"], a["balance"], a["currency"]) for a in everyone] == [("bob", "12.50", "EUR")]
    assert client_for(bob).get(reverse("api-lab-credits", args=[lab.slug])).json()[0]["available"] == "12.50"
    assert client_for(carol).get(reverse("api-lab-credits", args=[lab.slug])).json() == []
    mine = client_for(bob).get(reverse("api-lab-credit", args=[lab.slug, "bob"])).json()
    assert mine["entries"][0]["kind"] == "top_up" and mine["entries"][0]["actor"] == "alice"
    assert client_for(carol).get(reverse("api-lab-credit", args=[lab.slug, "bob"])).status_code == 404


@pytest.mark.django_db
def test_the_pages_show_a_members_balance_and_managers_top_up(lab, alice, bob, client):
    client.force_login(alice)
    client.post(reverse("lab-credits", args=[lab.slug]), {"member": "bob", "amount": "8", "note": "card"})
    assert account(lab, bob).balance == D("8.00")
    assert "bob" in client.get(reverse("lab-manage", args=[lab.slug])).content.decode()
    client.force_login(bob)
    page = client.get(reverse("lab-credits", args=[lab.slug])).content.decode()
    assert "8.00 EUR" in page and "card" in page and "Record top-up" not in page


# -- priced bookings ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_priced_booking_holds_its_price_releases_on_cancel_and_settles_when_it_ends(lab, alice, bob):
    laser = make_machine(lab, slug="laser-x")
    # No service sets a machine's own price yet (machine_update does not take it).
    type(laser).objects.filter(pk=laser.pk).update(price_per_hour=D("3.00"))
    laser.refresh_from_db()
    top_up(lab, bob, "10", alice)
    start = timezone.now().replace(microsecond=0) + timedelta(days=1)
    booking = services.booking_create(machine=laser, member=bob, start=start, end=start + timedelta(hours=2))
    assert (booking.held_amount, account(lab, bob).held) == (D("6.00"), D("6.00"))
    services.booking_cancel(booking=booking, actor=bob)
    assert account(lab, bob).held == 0
    later = services.booking_create(machine=laser, member=bob, start=start, end=start + timedelta(hours=1))
    assert bookings_settle(now=start + timedelta(hours=2)) == 1
    assert (account(lab, bob).balance, account(lab, bob).held) == (D("7.00"), D("0.00"))
    assert Booking.objects.get(pk=later.pk).cost == D("3.00")
    assert bookings_settle(now=start + timedelta(hours=3)) == 0
    with pytest.raises(ValidationError, match="this booking needs 9.00 EUR"):  # 7.00 left
        services.booking_create(
            machine=laser, member=bob, start=start + timedelta(hours=1), end=start + timedelta(hours=4)
        )


# -- racing debits (PostgreSQL) -------------------------------------------------------------------


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_a_race_of_holds_and_charges_never_takes_a_balance_below_zero_on_postgres(alice, bob):
    lab = make_lab(alice)
    add_member(lab, bob)
    printing.print_settings_update(lab=lab, actor=alice, credits_enabled=True)
    top_up(lab, bob, "5", alice)
    held, refused = race(30, lambda n: credits.credit_hold(lab=lab, user=bob, amount=D("1.00")))
    assert len(held) == 5 and len(refused) == 25
    assert all(isinstance(e, ValidationError) and "top it up" in e.message for e in refused)
    assert (account(lab, bob).balance, account(lab, bob).held) == (D("5.00"), D("5.00"))
    # Every hold settles with a large overrun at once: what the balance cannot pay is absorbed.
    settled, failed = race(
        5,
        lambda n: credits.credit_settle(
            lab=lab, user=bob, held=D("1.00"), actual=D("3.00"), policy="charge", tolerance_percent=100
        ),
    )
    assert len(settled) == 5 and not failed
    final = account(lab, bob)
    assert (final.balance, final.held) == (D("0.00"), D("0.00"))
    entries = CreditEntry.objects.filter(account=final)
    assert sum(e.amount for e in entries.filter(kind="charge")) == D("-5.00")
    assert sum(e.amount for e in entries.filter(kind="absorbed")) == D("10.00")
    assert all(e.balance_after >= e.held_after >= 0 for e in entries)
