"""Without Celery beat, a thread of the web server runs the queue: one round polls,
dispatches and (now and then) sweeps; it starts once per process, and only when the
embedded worker runs tasks."""

from __future__ import annotations

import pytest

from machines.models import PrintJob
from machines.printing import ticker
from tests.machines.factories import add_member, make_lab
from tests.printing.conftest import write_test_gcode
from tests.printing.factories import gcode_upload, make_printer


@pytest.mark.django_db(transaction=True)
def test_one_round_gives_an_idle_printer_its_job(alice, bob, tmp_path):
    from machines.models import Printer
    from machines.printing import services as printing

    lab = make_lab(alice, hours="00:00-00:00")
    add_member(lab, bob)
    make_printer(lab)
    Printer.objects.update(bed_clear=False)
    job = printing.print_job_submit(
        lab=lab, owner=bob, upload=gcode_upload(write_test_gcode(tmp_path / "p.gcode"))
    )
    Printer.objects.update(bed_clear=True)
    ticker.tick(sweep=True)
    job.refresh_from_db()
    assert job.status == PrintJob.Status.AWAITING_OPERATOR


def test_the_ticker_starts_only_with_the_embedded_worker(settings, monkeypatch):
    from hub import ticker as hub_ticker

    started = []
    monkeypatch.setattr(hub_ticker, "_started", set())
    monkeypatch.setattr(
        hub_ticker.threading,
        "Thread",
        lambda **kw: type("T", (), {"start": lambda self: started.append(kw)})(),
    )
    settings.FABHUB_EMBEDDED_WORKER = False
    assert ticker.start_embedded_ticker() is False
    settings.FABHUB_EMBEDDED_WORKER = True
    settings.FABHUB_PRINT_TICK_S = 0
    assert ticker.start_embedded_ticker() is False
    settings.FABHUB_PRINT_TICK_S = 5
    assert ticker.start_embedded_ticker() is True
    assert ticker.start_embedded_ticker() is False  # once per process
    assert [kw["name"] for kw in started] == ["fabhub-print-ticker"]
