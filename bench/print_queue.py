"""The print queue: the dispatcher's tick at scale, and the hub's overhead per job.

1. Dispatcher tick with up to 10,000 queued jobs and 500 printers (printers without
   network control: the in-process manual driver takes each hand-off, so only the hub's
   own work is timed). For each size: the tick that finds every printer idle and claims
   one job for each (claims, timeline rows, sends), the tick that finds them all busy,
   and a tick after 10 % of them came free. Baseline, in the same run on the same
   database: the irreducible writes of those claims done by hand, one transaction per
   claim (a conditional UPDATE of the job and an INSERT of its timeline row).
2. Hub overhead per job, submit → printing, against a real OctoPrint with its Virtual
   Printer: `print_job_submit` of a small G-code (preparing, dispatching and sending run
   inline, as the embedded worker would) until the job is printing, against the same
   printer driven directly through OctoPrint's REST API (upload with select and print,
   then poll /api/job until it prints).

Run `python bench/print_queue.py` (SQLite by default; DATABASE_URL for PostgreSQL).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = [(1_000, 50), (10_000, 50), (1_000, 500), (10_000, 500)]
LABS = 10
MATERIALS = ["PLA", "PETG", "ABS"]
OCTOPRINT_RUNS = 8


def boot():
    os.environ["FABHUB_EMBEDDED_WORKER"] = "0"  # tasks inline (Celery eager), not on a thread
    os.environ["FABHUB_EMAIL_NOTIFICATIONS"] = "0"
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    from _django import setup

    return setup()


def fill(jobs: int, printers: int):
    """A fresh set of labs, printers and queued G-code jobs, written in bulk."""
    import io

    from django.utils import timezone

    from hub.models import User
    from machines import services
    from machines.models import Booking, Lab, Machine, Printer, PrintGcode, PrintJob, PrintRecord
    from machines.printing.files import store_file

    for model in (PrintRecord, PrintGcode, PrintJob, Booking, Printer, Machine, Lab):
        model.objects.all().delete()
    owner = User.objects.filter(username="bench").first() or User.objects.create_user("bench", password="x")
    sha, size = store_file(io.BytesIO(b"G28\nG1 X10 Y10 F6000\n"))
    labs = [services.lab_create(creator=owner, name=f"Lab {n}", slug=f"lab-{n}") for n in range(LABS)]
    machines = Machine.objects.bulk_create(
        [
            Machine(
                lab=labs[n % LABS],
                name=f"P{n}",
                slug=f"p{n}",
                kind=Machine.Kind.FDM_PRINTER,
                work_x_mm=250,
                work_y_mm=210,
                work_z_mm=210,
            )
            for n in range(printers)
        ]
    )
    Printer.objects.bulk_create(
        [
            Printer(machine=m, material=MATERIALS[n % len(MATERIALS)], state="idle")
            for n, m in enumerate(machines)
        ]
    )
    now = timezone.now()
    rows = PrintJob.objects.bulk_create(
        [
            PrintJob(
                lab=labs[n % LABS],
                owner=owner,
                file_kind=PrintJob.FileKind.GCODE,
                path=f"part-{n}.gcode",
                source_sha=sha,
                material=MATERIALS[(n // LABS) % len(MATERIALS)],
                status=PrintJob.Status.QUEUED,
                priority=n % 4,
                queued_at=now - timedelta(seconds=jobs - n),
                estimated_seconds=1800,
            )
            for n in range(jobs)
        ],
        batch_size=2000,
    )
    PrintGcode.objects.bulk_create(
        [PrintGcode(job=j, sha256=sha, size=size, estimated_seconds=1800) for j in rows], batch_size=2000
    )


def free_some(share: float) -> int:
    """Finish and clear a share of the running jobs, as if collected."""
    from django.utils import timezone

    from machines.models import Booking, Printer, PrintJob

    running = list(
        PrintJob.objects.filter(status__in=PrintJob.ON_PRINTER).values_list("pk", "booking_id", "machine_id")
    )
    chosen = running[: max(1, int(len(running) * share))]
    now = timezone.now()
    PrintJob.objects.filter(pk__in=[pk for pk, _, _ in chosen]).update(
        status=PrintJob.Status.DONE, finished_at=now
    )
    Booking.objects.filter(pk__in=[b for _, b, _ in chosen]).update(status=Booking.Status.CANCELLED)
    Printer.objects.filter(pk__in=[m for _, _, m in chosen]).update(
        state="idle", job_name=""
    )  # the operator's record
    return len(chosen)


def manual_claims(count: int) -> float:
    """The baseline: the same number of claims as bare writes, one transaction each."""
    from django.db import transaction
    from django.utils import timezone

    from machines.models import Booking, Machine, PrintJob

    machines = list(Machine.objects.values_list("pk", flat=True)[:count])
    jobs = list(
        PrintJob.objects.filter(status=PrintJob.Status.QUEUED)
        .order_by("-priority", "queued_at")
        .values_list("pk", flat=True)[:count]
    )
    start = time.perf_counter()
    now = timezone.now()
    for machine_id, job_id in zip(machines, jobs, strict=False):
        with transaction.atomic():
            PrintJob.objects.filter(pk=job_id, status=PrintJob.Status.QUEUED).update(
                status=PrintJob.Status.DISPATCHING, machine_id=machine_id, dispatch_token="x", claimed_at=now
            )
            Booking.objects.create(
                machine_id=machine_id, kind=Booking.Kind.PRINT_JOB, start=now, end=now + timedelta(minutes=33)
            )
    return time.perf_counter() - start


def dispatcher() -> None:
    from machines.models import PrintJob
    from machines.printing import dispatch

    print(f"{'dispatcher tick':<40}{'hub':>10}{'per printer':>13}{'bare writes':>13}{'ratio':>8}")
    for jobs, printers in SIZES:
        fill(jobs, printers)
        start = time.perf_counter()
        claimed = dispatch.dispatch_tick()
        full = time.perf_counter() - start
        assert len(claimed) == printers, (len(claimed), printers)
        assert PrintJob.objects.filter(status=PrintJob.Status.AWAITING_OPERATOR).count() == printers
        busy = min(_timed(dispatch.dispatch_tick) for _ in range(5))
        freed = free_some(0.1)
        start = time.perf_counter()
        again = dispatch.dispatch_tick()
        partial = time.perf_counter() - start
        assert len(again) == freed
        fill(jobs, printers)
        base = manual_claims(printers)
        label = f"{jobs:,} jobs, {printers} printers"
        print(
            f"{label + ': all idle':<40}{full * 1000:>8.0f}ms{full / printers * 1000:>11.2f}ms"
            f"{base * 1000:>11.0f}ms{full / base:>7.2f}x"
        )
        print(f"{label + ': all busy':<40}{busy * 1000:>8.1f}ms")
        print(
            f"{label + f': {freed} came free':<40}{partial * 1000:>8.0f}ms{partial / freed * 1000:>11.2f}ms"
        )


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def octoprint_overhead() -> None:
    import requests
    from django.core.files.uploadedfile import SimpleUploadedFile

    from hub.models import User
    from machines import services
    from machines.models import Lab, PrintJob
    from machines.printing import dispatch
    from machines.printing import services as printing
    from tests.printing.conftest import make_octoprint_server, write_test_gcode

    work = Path(tempfile.mkdtemp(prefix="fabhub-bench-octoprint-"))
    server = make_octoprint_server(work / "octoprint")
    server.start()
    try:
        owner = User.objects.get(username="bench")
        lab = Lab.objects.filter(slug="octo-lab").first() or services.lab_create(
            creator=owner, name="Octo lab", slug="octo-lab"
        )
        machine = services.machine_create(
            lab=lab,
            actor=owner,
            name="Virtual",
            slug="virtual",
            kind="fdm_printer",
            work_x_mm=250,
            work_y_mm=210,
            work_z_mm=210,
            connection_url=server.url,
            connection_api_key=server.api_key,
        )
        printing.printer_configure(machine=machine, actor=owner, serial_port="VIRTUAL", baudrate=115200)
        gcode = write_test_gcode(work / "part.gcode", moves=3000)
        data = gcode.read_bytes()
        session = requests.Session()
        session.headers["X-Api-Key"] = server.api_key
        api = server.url

        def wait_state(prefix: str) -> None:
            deadline = time.monotonic() + 30
            while not session.get(f"{api}/api/job", timeout=10).json()["state"].startswith(prefix):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"OctoPrint never reached {prefix}")
                time.sleep(0.02)

        def direct(n: int) -> float:
            start = time.perf_counter()
            session.post(
                f"{api}/api/files/local",
                files={"file": (f"direct-{n}.gcode", data)},
                data={"select": "true", "print": "true"},
                timeout=60,
            ).raise_for_status()
            wait_state("Printing")
            elapsed = time.perf_counter() - start
            session.post(f"{api}/api/job", json={"command": "cancel"}, timeout=10)
            wait_state("Operational")
            return elapsed

        def hub(n: int) -> float:
            dispatch.printer_poll(machine_id=machine.pk)  # the poller's view: idle, fresh
            start = time.perf_counter()
            job = printing.print_job_submit(
                lab=lab, owner=owner, upload=SimpleUploadedFile(f"hub-{n}.gcode", data, "text/plain")
            )
            job.refresh_from_db()
            elapsed = time.perf_counter() - start
            assert job.status == PrintJob.Status.PRINTING, (job.status, job.reason)
            printing.print_job_cancel(job=job, actor=owner)
            wait_state("Operational")
            printing.printer_confirm_cleared(machine=machine, actor=owner)
            return elapsed

        dispatch.printer_poll(machine_id=machine.pk)
        dispatch.printer_poll(machine_id=machine.pk)
        hub(0)
        direct(0)  # warm both paths
        hub_times = [hub(n) for n in range(1, OCTOPRINT_RUNS + 1)]
        direct_times = [direct(n) for n in range(1, OCTOPRINT_RUNS + 1)]
        h, d = statistics.median(hub_times), statistics.median(direct_times)
        print(
            f"\n{'submit → printing (median of ' + str(OCTOPRINT_RUNS) + ')':<40}{'hub':>10}{'direct REST':>13}{'ratio':>8}"
        )
        print(f"{'G-code, 3000 moves (66 kB)':<40}{h * 1000:>8.0f}ms{d * 1000:>11.0f}ms{h / d:>7.2f}x")
        print(f"{'  hub minus direct':<40}{(h - d) * 1000:>8.0f}ms")
    finally:
        server.kill()


if __name__ == "__main__":
    boot()
    dispatcher()
    octoprint_overhead()
