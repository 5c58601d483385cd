"""What a print costs: the estimate at submission (an uploaded G-code's own figures, a
mesh's volume × density, the slicer's grams once sliced), the actual cost after the print
(grams × share printed, time taken) on the job and its record, the prices managers set
(and the bad ones they are refused), and the monthly CSV report."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from hub.exceptions import ValidationError
from machines import credits
from machines.accounting import grams_from_length
from machines.models import PrintJob, PrintRecord
from machines.printing import dispatch, prices
from machines.printing import services as printing
from machines.printing.reports import safe_cell
from tests.conftest import client_for
from tests.machines.factories import add_member, make_lab
from tests.printing.conftest import write_test_gcode
from tests.printing.factories import analysed_design, box_stl, gcode_upload, make_printer

pytestmark = pytest.mark.django_db
S = PrintJob.Status
# PrusaSlicer's own comments: 20 g of filament, one hour.
METADATA = "; filament used [g] = 20.00\n; estimated printing time (normal mode) = 1h 0m 0s\n"


@pytest.fixture
def lab(alice, bob):
    lab = make_lab(alice, hours="00:00-00:00")
    add_member(lab, bob)
    return lab


@pytest.fixture
def priced(lab, alice):
    """A fee of 1.00 per print, 2.00 per machine-hour, PLA at 0.05 per gram."""
    printing.print_settings_update(
        lab=lab, actor=alice, price_per_job=Decimal("1.00"), price_per_machine_hour=Decimal("2.00")
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


def gcode_job(lab, owner, tmp_path, *, name="part.gcode", metadata=METADATA, **kwargs) -> PrintJob:
    path = write_test_gcode(tmp_path / name, moves=20)
    path.write_text(path.read_text() + metadata)
    # A small G-code is read while it is submitted: prepared, estimated and held at once.
    job = printing.print_job_submit(lab=lab, owner=owner, upload=gcode_upload(path, name), **kwargs)
    assert job.status != PrintJob.Status.PREPARING
    return job


def printed(job, alice, tick, *, minutes: int = 30, outcome: str = "finished", progress=None) -> PrintJob:
    """Dispatch the job to the manual printer, start it `minutes` ago, and record `outcome`."""
    tick()
    printing.print_job_record(job=job, actor=alice, outcome="started")
    changes = {"print_started_at": timezone.now() - timedelta(minutes=minutes)}
    if progress is not None:
        changes["progress"] = progress
    PrintJob.objects.filter(pk=job.pk).update(**changes)
    job.refresh_from_db()
    reason = "Spaghetti" if outcome == "failed" else ""
    printing.print_job_record(job=job, actor=alice, outcome=outcome, reason=reason)
    job.refresh_from_db()
    return job


# -- estimates ------------------------------------------------------------------------------


def test_an_uploaded_gcode_is_estimated_from_its_slicers_figures(priced, bob, printer, tmp_path):
    job = gcode_job(priced, bob, tmp_path)
    # 1.00 fee + 20 g × 0.05 + 1 h × 2.00
    assert (job.estimated_cost, job.cost_currency) == (Decimal("4.00"), "EUR")


def test_copies_multiply_the_estimate(priced, bob, printer, tmp_path):
    assert gcode_job(priced, bob, tmp_path, copies=3).estimated_cost == Decimal("12.00")


def test_a_gcode_giving_only_its_filament_length_is_weighed_as_175_mm_filament(
    priced, bob, printer, tmp_path
):
    job = gcode_job(priced, bob, tmp_path, metadata="; filament used [mm] = 1000.0\n")
    # 1000 mm × π × 0.875² mm² = 2405 mm³ → 2.98 g of PLA → 0.15; the parsed time is seconds.
    assert Decimal("1.14") <= job.estimated_cost <= Decimal("1.20")


def test_a_free_lab_estimates_zero(lab, bob, printer, tmp_path):
    assert gcode_job(lab, bob, tmp_path).estimated_cost == Decimal("0.00")


def test_a_machines_own_hourly_price_is_used_for_its_prints(priced, alice, bob, printer, tmp_path):
    type(printer.machine).objects.filter(pk=printer.machine.pk).update(price_per_hour=Decimal("5.00"))
    assert gcode_job(priced, bob, tmp_path).estimated_cost == Decimal("7.00")


def test_a_mesh_is_estimated_from_its_volume_then_from_the_slicer(priced, bob, printer, tmp_path):
    design, sha = analysed_design(bob, {"box.stl": box_stl(20, 20, 10)})
    job = printing.print_job_submit(lab=priced, owner=bob, design=design, path="box.stl", rev=sha)
    # 4 cm³ × 1.24 g/cm³ × 35 % fill = 1.736 g → 0.09; 4000 × 0.35 / 3 mm³/s = 466 s → 0.26; fee 1.00
    assert job.estimated_cost == Decimal("1.35")
    printing.print_job_prepare(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == S.QUEUED
    gcode = job.gcodes.get()
    # The test profile sets no filament density, so the slicer gives a length: weighed here.
    grams = (
        Decimal(str(gcode.filament_g))
        if gcode.filament_g
        else grams_from_length(gcode.filament_mm, density_g_cm3=Decimal("1.240"))
    )
    expected = (Decimal(1) + grams * Decimal("0.05") + Decimal(gcode.estimated_seconds) / 3600 * 2).quantize(
        Decimal("0.01")
    )
    assert job.estimated_cost == expected


# -- the actual cost ------------------------------------------------------------------------


def test_a_finished_print_costs_the_slicers_grams_and_the_time_it_took(
    priced, alice, bob, printer, tmp_path, tick
):
    job = printed(gcode_job(priced, bob, tmp_path), alice, tick, minutes=30)
    record = PrintRecord.objects.get(job=job)
    assert (record.grams, record.currency) == (20.0, "EUR")
    assert 1795 <= record.seconds <= 1805
    # 1.00 + 20 × 0.05 + 0.5 h × 2.00
    assert record.cost == Decimal("3.00")
    assert (job.actual_cost, job.filament_g_used) == (Decimal("3.00"), 20.0)


def test_a_failed_print_used_its_share_of_the_grams(priced, alice, bob, printer, tmp_path, tick):
    job = printed(gcode_job(priced, bob, tmp_path), alice, tick, minutes=15, outcome="failed", progress=25.0)
    record = PrintRecord.objects.get(job=job)
    assert record.grams == 5.0 and record.cost == Decimal("1.75")  # 1.00 + 0.25 + 0.50
    assert job.actual_cost == Decimal("0.00")  # refunded: the default policy


def test_a_failed_print_is_charged_at_a_lab_that_charges_them(priced, alice, bob, printer, tmp_path, tick):
    printing.print_settings_update(lab=priced, actor=alice, failed_prints="charge")
    job = printed(gcode_job(priced, bob, tmp_path), alice, tick, minutes=15, outcome="failed", progress=25.0)
    assert job.actual_cost == Decimal("1.75")


def test_costs_are_shown_on_the_job_my_jobs_and_the_queue(
    priced, alice, bob, printer, tmp_path, tick, client
):
    job = printed(gcode_job(priced, bob, tmp_path), alice, tick)
    client.force_login(bob)
    assert "3.00 EUR" in client.get(reverse("print-job", args=[job.pk])).content.decode()
    assert "3.00 EUR" in client.get(reverse("my-print-jobs")).content.decode()
    queued = gcode_job(priced, bob, tmp_path, name="next.gcode")
    assert (
        f"~{queued.estimated_cost} EUR"
        in client.get(reverse("print-queue", args=[priced.slug])).content.decode()
    )


def test_the_api_gives_a_jobs_costs_and_a_records_usage(priced, alice, bob, printer, tmp_path, tick):
    job = printed(gcode_job(priced, bob, tmp_path), alice, tick)
    api = client_for(bob)
    body = api.get(reverse("api-print-job", args=[job.pk])).json()
    assert (body["estimated_cost"], body["actual_cost"], body["cost_currency"]) == ("4.00", "3.00", "EUR")
    records = api.get(reverse("api-print-records")).json()["results"]
    assert (records[0]["grams"], records[0]["cost"], records[0]["currency"]) == (20.0, "3.00", "EUR")


# -- prices: who sets them, and what is refused ------------------------------------------------


def test_members_read_prices_and_managers_write_them(priced, alice, bob):
    body = client_for(bob).get(reverse("api-lab-print-settings", args=[priced.slug])).json()
    assert (body["currency"], body["price_per_job"], body["price_per_machine_hour"]) == (
        "EUR",
        "1.00",
        "2.00",
    )
    assert body["material_prices"] == [
        {"material": "PLA", "price_per_gram": "0.0500", "density_g_cm3": "1.240"}
    ]
    url = reverse("api-lab-material-prices", args=[priced.slug])
    assert (
        client_for(bob).post(url, {"material": "PETG", "price_per_gram": "0.06"}, format="json").status_code
        == 403
    )
    made = client_for(alice).post(
        url, {"material": "petg", "price_per_gram": "0.06", "density_g_cm3": "1.27"}, format="json"
    )
    assert made.status_code == 201 and made.json()["material"] == "PETG"
    detail = reverse("api-lab-material-price", args=[priced.slug, "PETG"])
    assert (
        client_for(alice).put(detail, {"price_per_gram": "0.07"}, format="json").json()["price_per_gram"]
        == "0.0700"
    )
    assert client_for(alice).delete(detail).status_code == 204
    patched = client_for(alice).patch(
        reverse("api-lab-print-settings", args=[priced.slug]), {"currency": "CHF"}, format="json"
    )
    assert patched.json()["currency"] == "CHF"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"price_per_job": "-1"}, "cannot be negative"),
        ({"price_per_job": "1000000"}, "not plausible"),
        ({"price_per_job": "0.001"}, "too many decimals"),
        ({"price_per_machine_hour": "-0.50"}, "cannot be negative"),
        ({"price_per_machine_hour": "99999"}, "not plausible"),
        ({"currency": "XYZ"}, "not an ISO 4217 currency"),
        ({"currency": "EURO"}, "not an ISO 4217 currency"),
        ({"currency": "eur"}, "in capitals"),
        ({"overrun_tolerance_percent": -5}, "whole percentage"),
        ({"overrun_tolerance_percent": 5000}, "whole percentage"),
    ],
)
def test_bad_price_settings_are_refused_with_a_reason(lab, alice, fields, message):
    answer = client_for(alice).patch(
        reverse("api-lab-print-settings", args=[lab.slug]), fields, format="json"
    )
    assert answer.status_code == 400 and message in str(answer.json()), answer.json()


def test_a_fee_in_a_currency_without_cents_is_whole(lab, alice):
    printing.print_settings_update(lab=lab, actor=alice, currency="JPY")
    with pytest.raises(ValidationError, match="whole JPY"):
        printing.print_settings_update(lab=lab, actor=alice, price_per_job="150.5")


@pytest.mark.parametrize(
    ("price", "density", "message"),
    [
        ("-0.01", None, "cannot be negative"),
        ("500", None, "not plausible"),
        ("0.000001", None, "too many decimals"),
        ("abc", None, "must be a number"),
        ("0.05", "0", "not plausible"),
        ("0.05", "-1.2", "not plausible"),
        ("0.05", "50", "not plausible"),
        ("0.05", "1.2345", "3 decimals"),
    ],
)
def test_bad_material_prices_are_refused_with_a_reason(lab, alice, price, density, message):
    with pytest.raises(ValidationError, match=message):
        prices.material_price_set(
            lab=lab, actor=alice, material="PLA", price_per_gram=price, density_g_cm3=density
        )


def test_the_currency_cannot_change_under_members_balances(priced, alice, bob):
    credits.credit_top_up(lab=priced, user=bob, amount=Decimal("5"), actor=alice)
    with pytest.raises(ValidationError, match="Settle the balances first"):
        printing.print_settings_update(lab=priced, actor=alice, currency="USD")


def test_the_settings_page_edits_prices_and_the_material_table(priced, alice, client):
    client.force_login(alice)
    url = reverse("print-material-prices", args=[priced.slug])
    client.post(url, {"material": "ASA", "price_per_gram": "0.08", "density_g_cm3": "1.07"})
    client.post(url, {"material": "ASA", "price_per_gram": "-1"})  # refused, with its message
    page = client.get(reverse("print-settings", args=[priced.slug])).content.decode()
    assert "<td>ASA</td>" in page and "0.08" in page and "cannot be negative" in page
    client.post(url, {"action": "delete", "material": "ASA"})
    # The row's cell, not the bare letters: the page's CSRF tokens are random and can hold "ASA".
    assert "<td>ASA</td>" not in client.get(reverse("print-settings", args=[priced.slug])).content.decode()


# -- the monthly report ------------------------------------------------------------------------


def report_sections(text: str) -> tuple[list[list[str]], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(text)))
    split = rows.index(["Credit movements"])
    return rows[: split - 1], rows[split + 1 :]


def test_the_monthly_report_lists_prints_and_credit_movements(priced, alice, bob, printer, tmp_path, tick):
    printing.print_settings_update(lab=priced, actor=alice, credits_enabled=True)
    credits.credit_top_up(lab=priced, user=bob, amount=Decimal("10"), actor=alice, note="=1+1 cash")
    printed(gcode_job(priced, bob, tmp_path, name="=HYPERLINK(evil).gcode"), alice, tick)
    month = timezone.now().astimezone(priced.zone).strftime("%Y-%m")
    answer = client_for(alice).get(reverse("api-lab-report", args=[priced.slug, month]))
    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/csv")
    prints, ledger = report_sections(answer.content.decode())
    assert prints[0] == [
        "date",
        "person",
        "design",
        "path",
        "machine",
        "material",
        "grams",
        "hours",
        "cost",
        "currency",
        "result",
    ]
    row = prints[1]
    assert row[1:] == [
        "bob",
        "",
        "'=HYPERLINK(evil).gcode",
        "MK4",
        "PLA",
        "20.00",
        "0.50",
        "3.00",
        "EUR",
        "done",
    ]
    assert ledger[0][:4] == ["date", "person", "movement", "amount"]
    kinds = [(r[2], r[3]) for r in ledger[1:]]
    assert kinds == [("top_up", "10.00"), ("hold", "4.00"), ("release", "-4.00"), ("charge", "-3.00")]
    assert ledger[1][-1] == "'=1+1 cash"


def test_the_report_is_for_managers_and_a_month_that_exists(priced, alice, bob, client):
    assert client_for(bob).get(reverse("api-lab-report", args=[priced.slug, "2026-03"])).status_code == 403
    assert client_for(alice).get(reverse("api-lab-report", args=[priced.slug, "2026-13"])).status_code == 404
    client.force_login(alice)
    page = client.get(reverse("lab-report", args=[priced.slug]) + "?month=2026-03")
    assert (
        page.status_code == 200 and page["Content-Disposition"] == 'attachment; filename="fablab-2026-03.csv"'
    )


@pytest.mark.parametrize("text", ["=SUM(A1)", "+1", "-2+3", "@cmd", "\tx", "\rx"])
def test_a_cell_that_a_spreadsheet_would_run_is_quoted(text):
    assert safe_cell(text) == "'" + text
