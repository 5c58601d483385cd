"""The whole print flow in a browser, on a real OctoPrint virtual printer (issue 17, §6):
a manager prices the lab's prints; a maker opens a design's file, asks "where can I make
this?", picks the lab, sends the part; it is sliced (PrusaSlicer) and printed; the maker
collects it and clears the bed; the job shows its actual cost and the manager's monthly
CSV has the print with its grams, hours and cost.

Django's live server runs the background tasks at commit (Celery's eager mode), so the
submission's request slices and dispatches. Nothing polls the printer but the test: it
calls the poller in a loop, as the print queue's ticker would.
"""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from machines.models import PrintJob, PrintRecord
from machines.printing import dispatch
from tests.factories import UserFactory
from tests.machines.factories import add_member, make_lab
from tests.printing.conftest import octoprint_printer, octoprint_server, wait_for  # noqa: F401 (fixtures)
from tests.printing.factories import FAST_PROFILE, analysed_design, box_stl, make_printer

pytestmark = pytest.mark.browser
S = PrintJob.Status
COST = re.compile(r"(\d+\.\d\d) EUR")


@pytest.fixture(autouse=True)
def printers_on_loopback(settings):
    """OctoPrint listens on loopback: in hub terms, the lab's LAN, which its operator lists."""
    settings.FABHUB_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]


@pytest.fixture
def lab(alice, bob):
    lab = make_lab(alice, hours="00:00-00:00")  # open around the clock: the job starts now
    add_member(lab, bob)
    return lab


@pytest.fixture
def printer(lab, octoprint_printer, octoprint_server):  # noqa: F811 (fixtures imported above)
    printer = make_printer(
        lab,
        slug="octo",
        name="Octo MK3",
        url=octoprint_server.url,
        api_key=octoprint_server.api_key,
        serial_port="VIRTUAL",
        baudrate=115200,
        slicer_profile=FAST_PROFILE,
        profile_name="virtual, no heating",
    )
    dispatch.printer_poll(machine_id=printer.pk)  # connects it
    assert dispatch.printer_poll(machine_id=printer.pk) == "idle"
    return printer


@pytest.fixture
def design():
    """Carol's clip: a part someone else designed, its mesh analysed."""
    design, _ = analysed_design(
        UserFactory(username="carol"), {"parts/clip.stl": box_stl(20, 20, 4)}, slug="clip"
    )
    return design


def log_out(page) -> None:
    page.click("header >> text=Log out")
    expect(page.locator("header")).to_contain_text("Log in")


def poll_until(printer, job_id: int, status: str, *, timeout: float) -> None:
    def reached() -> bool:
        dispatch.printer_poll(machine_id=printer.pk)
        return PrintJob.objects.get(pk=job_id).status == status

    wait_for(reached, timeout=timeout, what=f"job {job_id} to become {status}", interval=0.3)


def test_a_maker_chooses_a_lab_sends_prints_collects_and_the_cost_lands_in_the_csv(
    page, log_in, lab, printer, design, tmp_path
):
    # The manager prices the lab's prints: a fee per job, per machine-hour, per gram of PLA.
    log_in("alice")
    page.goto(reverse("print-settings", args=[lab.slug]))
    page.fill("input[name=price_per_job]", "0.50")
    page.fill("input[name=price_per_machine_hour]", "2")
    page.click("button:has-text('Save')")
    expect(page.locator(".message.success")).to_contain_text("Print queue settings saved.")
    page.goto(reverse("print-settings", args=[lab.slug]))
    prices = page.locator("#prices")
    prices.locator("input[name=material]").fill("PLA")
    prices.locator("input[name=price_per_gram]").last.fill("0.05")
    prices.locator("button:has-text('Add a price')").click()
    expect(page.locator(".message.success")).to_contain_text("PLA: 0.05")
    log_out(page)

    # The maker finds the part and asks where it can be made.
    log_in("bob")
    page.goto(reverse("design-blob", args=["carol", "clip", "parts/clip.stl"]))
    page.click("a:has-text('Print at a lab')")
    expect(page).to_have_url(
        re.compile(r"/labs/where/\?design=carol/clip&path=parts/clip.stl&rev=[0-9a-f]{40}")
    )
    expect(page.locator("h1")).to_have_text("Where can I make clip.stl?")
    row = page.locator("table.table tbody tr", has_text=lab.name)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Octo MK3")
    expect(row).to_contain_text("member")
    cells = row.locator("td")
    # Open around the clock with an idle printer: it would start today, with no job ahead.
    today = timezone.now().astimezone(lab.zone)
    expect(cells.nth(2)).to_contain_text(today.strftime("%a %-d %b"))
    expect(cells.nth(2)).not_to_contain_text("after")
    expect(cells.nth(3)).to_contain_text("before slicing")  # the estimate comes from the volume
    expect(cells.nth(4)).to_contain_text(COST)
    expect(cells.nth(4)).to_contain_text(" g a copy")
    estimate = Decimal(COST.search(cells.nth(4).inner_text()).group(1))
    assert estimate > Decimal("0.50")  # the fee, plus grams and hours

    # Send it there: the form comes pre-filled with the file, its commit and the lab.
    row.locator("a:has-text('Send here')").click()
    expect(page.locator("h1")).to_have_text("Send a part to a lab's queue")
    expect(page.locator("select[name=lab]")).to_have_value(lab.slug)
    expect(page.locator("input[name=design]")).to_have_value("carol/clip")
    expect(page.locator("input[name=path]")).to_have_value("parts/clip.stl")
    expect(page.locator("input[name=rev]")).to_have_value(design.repo.resolve("main"))
    page.click("button:has-text('Send')")

    # The request sliced it and sent it to the printer; the hub learns more when it polls.
    expect(page.locator(".message.success")).to_contain_text(f"Sent clip.stl to {lab.name}'s queue.")
    job = PrintJob.objects.get(design=design)
    expect(page).to_have_url(re.compile(rf"/labs/jobs/{job.pk}/$"))
    status = page.locator(".list-head .status")
    expect(status).to_have_text("Printing")
    expect(page.locator("main")).to_contain_text("on Octo MK3")
    facts = page.locator("dl.facts")
    expect(page.locator("section.panel", has_text="G-code")).to_contain_text("PrusaSlicer")
    expect(facts.locator("dd.cost")).to_contain_text(re.compile(r"about \d+\.\d\d EUR"))

    poll_until(printer, job.pk, S.AWAITING_REMOVAL, timeout=40)
    page.reload()
    expect(status).to_have_text("Printed: awaiting removal")

    # The maker, at the printer, takes the part off and says the bed is clear.
    page.click("button:has-text('Collected: the bed is clear')")
    expect(page).to_have_url(re.compile(rf"/labs/jobs/{job.pk}/$"))
    expect(page.locator(".message.success")).to_contain_text("Octo MK3's bed is clear")
    expect(status).to_have_text("Done")
    job.refresh_from_db()
    record = PrintRecord.objects.get(job=job)
    assert job.actual_cost is not None and job.actual_cost > Decimal("0.50")
    assert record.cost == job.actual_cost and record.grams > 0 and record.seconds > 0
    # The prices the manager set in the browser: the fee, the grams and the machine time.
    priced = Decimal("0.50") + Decimal(str(record.grams)) * Decimal("0.05") + Decimal(record.seconds) / 1800
    assert abs(job.actual_cost - priced) <= Decimal("0.01"), (job.actual_cost, priced)
    cost_text = f"{job.actual_cost} EUR"
    expect(facts.locator("dd.cost")).to_contain_text(cost_text)
    expect(facts.locator("dd.cost")).to_contain_text(re.compile(r"\(\d+\.\d g used\), estimated \d+\.\d\d"))
    expect(page.locator("section.panel", has_text="Made")).to_contain_text(cost_text)
    log_out(page)

    # The manager downloads the month's report from the settings page.
    log_in("alice")
    page.goto(reverse("print-settings", args=[lab.slug]))
    month = timezone.now().astimezone(lab.zone).strftime("%Y-%m")
    page.fill("input[name=month]", month)
    with page.expect_download() as download_info:
        page.click("button:has-text('Download CSV')")
    download = download_info.value
    assert download.suggested_filename == f"{lab.slug}-{month}.csv"
    download.save_as(tmp_path / "report.csv")
    text = (tmp_path / "report.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(text.split("\r\n\r\n")[0])))
    prints = [r for r in rows if r["design"] == "carol/clip"]
    assert len(prints) == 1, text
    line = prints[0]
    assert (line["person"], line["path"], line["machine"], line["material"], line["result"]) == (
        "bob",
        "parts/clip.stl",
        "Octo MK3",
        "PLA",
        "done",
    )
    assert line["grams"] == f"{record.grams:.2f}" and Decimal(line["grams"]) > 0
    assert line["hours"] == f"{Decimal(record.seconds) / 3600:.2f}"  # a print of seconds: 0.00
    assert (Decimal(line["cost"]), line["currency"]) == (job.actual_cost, "EUR")
