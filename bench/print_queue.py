"""The print queue: the dispatcher's tick at scale, and the hub's overhead per job.

1. Dispatcher tick with up to 10,000 queued jobs and 500 printers (printers without
   network control: the in-process manual driver takes each hand-off, so only the hub's
   own work is timed). For each size: the tick that finds every printer idle and claims
   one job for each (claims, timeline rows, hand-offs), the tick with nothing to do
   (every printer busy), and a tick after 10 % of them came free. Baseline, in the same
   run on the same database: the irreducible writes of those claims by sets, in one
   transaction: one bulk INSERT of their timeline rows and one conditional UPDATE
   claiming the N jobs (each for its machine). The all-idle tick and the baseline are
   each the best of RUNS, the same claims undone in between; each is timed twice, by the
   wall clock and by the CPU time of this process (SQLite runs in it, and commits in WAL
   mode with synchronous=NORMAL do not wait for the disk), which other work on a shared
   machine disturbs less. The statements of one all-idle tick are counted on a tick of
   their own.
2. Hub overhead per job, submit → printing, against a real OctoPrint with its Virtual
   Printer: `print_job_submit` of a small G-code (preparing, dispatching and sending run
   inline, as the embedded worker would) until the job is printing, against the same
   printer driven directly through OctoPrint's REST API (upload with select and print,
   then poll /api/job until it prints). The same bytes are sent each run, as the direct
   calls send them (the hub stores them once and reads them once per process); a second
   row submits a new file each run (one comment more), which the hub stores and reads anew.
   The three run in turns, 12 rounds, medians.

Run `python bench/print_queue.py` (SQLite by default; DATABASE_URL for PostgreSQL);
`--only dispatcher` runs part 1 alone.
"""

from __future__ import annotations

import contextlib
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
OCTOPRINT_RUNS = 12
RUNS = 5


def boot():
    os.environ["FABHUB_EMBEDDED_WORKER"] = "0"  # tasks inline (Celery eager), not on a thread
    os.environ["FABHUB_EMAIL_NOTIFICATIONS"] = "0"
    # The virtual printer's OctoPrint listens on loopback: the lab's LAN, in hub terms.
    os.environ["FABHUB_OUTBOUND_ALLOWED_NETWORKS"] = "127.0.0.0/8"
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
    from django.db import connection

    if connection.vendor == "postgresql":
        # A real queue grows a job at a time and autovacuum keeps its statistics; filled
        # in bulk a moment ago, the tables would be planned as empty (the candidates' read
        # then sorted every queued job of a group, 7.1 against 1.3 ms on the server).
        with connection.cursor() as cursor:
            for model in (Lab, Machine, Printer, PrintJob, PrintGcode, Booking):
                cursor.execute(f"ANALYZE {model._meta.db_table}")


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


def undo_claims() -> None:
    """Put the claimed jobs back in the queue and the printers back to idle, as after fill()."""
    from machines.models import Booking, Printer, PrintJob

    PrintJob.objects.exclude(status=PrintJob.Status.QUEUED).update(
        status=PrintJob.Status.QUEUED,
        machine=None,
        booking=None,
        gcode=None,
        dispatch_token="",
        remote_name="",
        claimed_at=None,
    )
    Booking.objects.all().delete()
    Printer.objects.update(state="idle", job_name="", message="", progress=None)


def set_based_claims(count: int) -> tuple[float, float]:
    """The baseline: the irreducible writes of `count` claims, by sets, in one transaction:
    one bulk INSERT of their timeline rows, one conditional UPDATE claiming the jobs (each
    for its machine) whose count is checked. The UPDATE is the dispatcher's own
    (`update_by_pk`: one `UPDATE … FROM (VALUES …)`, far cheaper than Django's
    Case/When), so the writes cost the same on both sides. Returns the wall and CPU seconds."""
    from django.db import transaction
    from django.utils import timezone

    from machines.models import Booking, Machine, PrintJob
    from machines.printing.dispatch import update_by_pk

    machines = list(Machine.objects.order_by("pk").values_list("pk", flat=True)[:count])
    jobs = list(
        PrintJob.objects.filter(status=PrintJob.Status.QUEUED)
        .order_by("-priority", "queued_at")
        .values_list("pk", flat=True)[:count]
    )
    pairs = list(zip(jobs, machines, strict=True))
    start, cpu = time.perf_counter(), time.process_time()
    now = timezone.now()
    with transaction.atomic():
        Booking.objects.bulk_create(
            [
                Booking(machine_id=m, kind=Booking.Kind.PRINT_JOB, start=now, end=now + timedelta(minutes=33))
                for _, m in pairs
            ]
        )
        claimed = update_by_pk(
            PrintJob,
            columns=("machine",),
            rows={j: (m,) for j, m in pairs},
            same={"status": PrintJob.Status.DISPATCHING, "dispatch_token": "x", "claimed_at": now},
            where={"status": PrintJob.Status.QUEUED},
        )
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert claimed == len(pairs), (claimed, len(pairs))
    return elapsed, cpu


def dispatcher() -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from machines.models import PrintJob
    from machines.printing import dispatch

    print(
        f"{'dispatcher tick':<40}{'hub':>10}{'per printer':>13}{'set writes':>13}{'ratio':>8}"
        f"{'hub CPU':>10}{'set CPU':>10}{'CPU ratio':>11}{'statements':>12}"
    )
    for jobs, printers in SIZES:
        fill(jobs, printers)
        fulls, bases, full_cpus, base_cpus = [], [], [], []
        for _ in range(RUNS):
            start, cpu = time.perf_counter(), time.process_time()
            claimed = dispatch.dispatch_tick()
            fulls.append(time.perf_counter() - start)
            full_cpus.append(time.process_time() - cpu)
            assert len(claimed) == printers, (len(claimed), printers)
            assert PrintJob.objects.filter(status=PrintJob.Status.AWAITING_OPERATOR).count() == printers
            undo_claims()
            wall, used = set_based_claims(printers)
            bases.append(wall)
            base_cpus.append(used)
            undo_claims()
        full, base, full_cpu, base_cpu = min(fulls), min(bases), min(full_cpus), min(base_cpus)
        # The all-idle tick once more, its statements counted (logging them costs time),
        # which leaves every printer busy for the next measure.
        with CaptureQueriesContext(connection) as counted:
            dispatch.dispatch_tick()
        busy = min(_timed(dispatch.dispatch_tick) for _ in range(5))
        freed = free_some(0.1)
        start = time.perf_counter()
        again = dispatch.dispatch_tick()
        partial = time.perf_counter() - start
        assert len(again) == freed
        label = f"{jobs:,} jobs, {printers} printers"
        print(
            f"{label + ': all idle':<40}{full * 1000:>8.1f}ms{full / printers * 1000:>11.2f}ms"
            f"{base * 1000:>11.1f}ms{full / base:>7.2f}x"
            f"{full_cpu * 1000:>8.1f}ms{base_cpu * 1000:>8.1f}ms{full_cpu / base_cpu:>10.2f}x"
            f"{len(counted.captured_queries):>12}"
        )
        print(f"{label + ': nothing to do (all busy)':<40}{busy * 1000:>8.1f}ms")
        print(
            f"{label + f': {freed} came free':<40}{partial * 1000:>8.1f}ms{partial / freed * 1000:>11.2f}ms"
        )


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def octoprint_overhead() -> None:
    import requests
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

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
        owner = User.objects.filter(username="bench").first() or User.objects.create_user(
            "bench", password="x"
        )
        lab = Lab.objects.filter(slug="octo-lab").first() or services.lab_create(
            creator=owner, name="Octo lab", slug="octo-lab"
        )
        Lab.objects.filter(pk=lab.pk).update(approved_at=lab.created_at)  # as a hub administrator would
        lab.refresh_from_db()
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

        statements, hub_cpu = [], []

        def hub(n: int, *, count: bool = False, new_file: bool = False) -> float:
            dispatch.printer_poll(machine_id=machine.pk)  # the poller's view: idle, fresh
            # The same bytes each run, as the direct calls send them; or a file the hub has
            # never seen (one comment more), which it stores and reads anew.
            body = data + f"; run {n}\n".encode() if new_file else data
            # Statements are counted on a run of their own: logging them costs time.
            counted = CaptureQueriesContext(connection) if count else contextlib.nullcontext()
            start, cpu = time.perf_counter(), time.process_time()
            with counted:
                job = printing.print_job_submit(
                    lab=lab, owner=owner, upload=SimpleUploadedFile(f"hub-{n}.gcode", body, "text/plain")
                )
            if isinstance(counted, CaptureQueriesContext):
                statements.append(len(counted.captured_queries))
            job.refresh_from_db()
            elapsed = time.perf_counter() - start
            hub_cpu.append(time.process_time() - cpu)
            assert job.status == PrintJob.Status.PRINTING, (job.status, job.reason)
            printing.print_job_cancel(job=job, actor=owner)
            wait_state("Operational")
            printing.printer_confirm_cleared(machine=machine, actor=owner)
            return elapsed

        dispatch.printer_poll(machine_id=machine.pk)
        dispatch.printer_poll(machine_id=machine.pk)
        hub(0)
        direct(0)  # warm both paths
        # The three in turns, the order rotated each round, so that all of them see the
        # same moments of OctoPrint and of the machine. (Run in blocks, one after the
        # other, the direct calls' median moved between 21 and 33 ms from one run of the
        # bench to the next, and the ratio with it.)
        kinds = ("same file", "direct", "new file")
        times: dict[str, list[float]] = {kind: [] for kind in kinds}
        cpus: dict[str, list[float]] = {"same file": [], "new file": []}
        n = 0
        for round_ in range(OCTOPRINT_RUNS):
            for k in range(len(kinds)):
                kind = kinds[(round_ + k) % len(kinds)]
                n += 1
                if kind == "direct":
                    times[kind].append(direct(n))
                else:
                    times[kind].append(hub(n, new_file=kind == "new file"))
                    cpus[kind].append(hub_cpu.pop())
        hub(n + 1, count=True)
        same_cpu = statistics.median(cpus["same file"])
        hub_times, direct_times, new_times = (times[kind] for kind in kinds)
        h, d = statistics.median(hub_times), statistics.median(direct_times)
        print(
            f"\n{'submit → printing (median of ' + str(OCTOPRINT_RUNS) + ')':<40}{'hub':>10}{'direct REST':>13}{'ratio':>8}"
        )
        print(f"{'G-code, 3000 moves (66 kB)':<40}{h * 1000:>8.0f}ms{d * 1000:>11.0f}ms{h / d:>7.2f}x")
        print(f"{'  hub minus direct':<40}{(h - d) * 1000:>8.0f}ms")
        print(f"{'  hub: CPU of this process, statements':<40}{same_cpu * 1000:>8.0f}ms{statements[0]:>13}")
        new = statistics.median(new_times)
        print(f"{'  a new file each run':<40}{new * 1000:>8.0f}ms{d * 1000:>11.0f}ms{new / d:>7.2f}x")
        print(f"{'  hub: CPU of this process':<40}{statistics.median(cpus['new file']) * 1000:>8.0f}ms")
    finally:
        server.kill()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["dispatcher", "submit"], help="run one part (both by default)")
    only = parser.parse_args().only
    boot()
    if only != "submit":
        dispatcher()
    if only != "dispatcher":
        octoprint_overhead()
