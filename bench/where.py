"""Where can I make this: 50, 100 and 200 labs of 10 printers with busy queues and timelines.

For each size, `machines.where.where_to_make` (every lab's best option: fit, material,
membership and qualification, the queue played forward in the dispatcher's order around
the timeline and opening hours, cost) against a hand-written SQL query run in the same
process on the same database, which computes per machine what the answer rests on: the
fit (the same rotation-aware rule, in exact numeric arithmetic), the queue ahead of the
part for the printer's material (the sum of the queued jobs' timeline spans, shared among
the lab's printers of that material) and the next free slot of the part's length after it
(the first gap of the machine's timeline, by LEAD over its rows). Both answers are
checked against each other: the same labs and printers fit, and where the part has no
queue ahead and the lab is always open, the same start.

Printed: best of 5 for each, the ratio (goal ≤ 2×), how much of the answer's time its
queries take (executing and receiving rows; the rest is Python) and the time per lab as
labs grow. Then the same comparison in CPU time, best of 5: this process's
(time.process_time) plus the PostgreSQL backend's (its /proc/<pid>/schedstat, when the
server runs on this machine), which other work on a busy machine disturbs far less than
wall-clock time.

Run `python bench/where.py`: without a PostgreSQL DATABASE_URL it starts a throw-away
server through scripts/with-postgres. `--history N` adds N past timeline rows per printer
(all ended before now, as a lab's years of bookings and prints leave them): the answer
must cost the same with them, since it reads only the rows that overlap its window.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SIZES = (50, 100, 200)
MACHINES_PER_LAB = 10
QUEUED_PER_LAB = 15
BOOKINGS_PER_MACHINE = 20
RUNS = 5
VOLUMES = [(180, 180, 180), (250, 210, 210), (250, 210, 220), (300, 300, 400), (220, 220, 250)]
MATERIALS = ["PLA", "PLA", "PETG", "ABS"]
# 280 mm long: it fits a 250 × 210 bed only diagonally, and never a 180 mm cube.
PART = (280.0, 40.0, 20.0)
PART_VOLUME = 80_000.0


def ensure_postgres() -> None:
    if os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        return
    script = str(ROOT / "scripts" / "with-postgres")
    os.execv(script, [script, sys.executable, *sys.argv])


def fill(labs: int, now: datetime, viewer, *, history: int = 0) -> None:
    """A fresh set of approved labs with printers, queues, timelines, hours and prices,
    and `history` past timeline rows per printer."""
    from datetime import time as clock

    from django.db import connection

    from machines.models import (
        Booking,
        Lab,
        LabMembership,
        Machine,
        MaterialPrice,
        OpeningHours,
        Printer,
        PrintJob,
        PrintSettings,
        Qualification,
    )

    for model in (PrintJob, Booking, Printer, Machine, OpeningHours, Lab):
        model.objects.all().delete()
    rng = random.Random(labs)
    rows = Lab.objects.bulk_create(
        [
            Lab(
                name=f"Lab {n}",
                slug=f"lab-{n}",
                timezone="Europe/Paris",
                approved_at=now,
                latitude=rng.uniform(43, 51),
                longitude=rng.uniform(-1, 7),
            )
            for n in range(labs)
        ]
    )
    # Every tenth lab is always open and queues no PLA: its start can be checked exactly.
    quiet = {lab.pk for n, lab in enumerate(rows) if n % 10 == 0}
    OpeningHours.objects.bulk_create(
        [
            OpeningHours(lab=lab, weekday=d, opens=clock(8), closes=clock(22))
            for lab in rows
            if lab.pk not in quiet and lab.pk % 2
            for d in range(7)
        ]
    )
    PrintSettings.objects.bulk_create(
        [
            PrintSettings(
                lab=lab,
                currency="CHF" if n % 7 == 3 else "EUR",
                price_per_job=Decimal(n % 4),
                unattended_overnight=n % 3 == 0,
            )
            for n, lab in enumerate(rows)
        ]
    )
    MaterialPrice.objects.bulk_create(
        [
            MaterialPrice(lab=lab, material=m, price_per_gram=Decimal("0.03"))
            for lab in rows
            for m in ("PLA", "PETG")
        ]
    )
    LabMembership.objects.bulk_create([LabMembership(lab=lab, user=viewer) for lab in rows[::3]])
    Qualification.objects.bulk_create(
        [
            Qualification(lab=lab, member=viewer, kind="fdm_printer", trained_on=now.date())
            for lab in rows[::3]
        ]
    )
    machines = Machine.objects.bulk_create(
        [
            Machine(
                lab=lab,
                name=f"P{m}",
                slug=f"p{m}",
                kind=Machine.Kind.FDM_PRINTER,
                work_x_mm=VOLUMES[(n + m) % len(VOLUMES)][0],
                work_y_mm=VOLUMES[(n + m) % len(VOLUMES)][1],
                work_z_mm=VOLUMES[(n + m) % len(VOLUMES)][2],
                requires_qualification=m % 2 == 0,
            )
            for n, lab in enumerate(rows)
            for m in range(MACHINES_PER_LAB)
        ]
    )
    Printer.objects.bulk_create(
        [
            Printer(machine=machine, material=MATERIALS[n % len(MATERIALS)], state="idle")
            for n, machine in enumerate(machines)
        ]
    )
    jobs = []
    for lab in rows:
        for n in range(QUEUED_PER_LAB):
            material = rng.choice(["PETG", "ABS"] if lab.pk in quiet else MATERIALS)
            jobs.append(
                PrintJob(
                    lab=lab,
                    owner=viewer,
                    file_kind=PrintJob.FileKind.MESH,
                    path=f"part-{n}.stl",
                    material=material,
                    status=PrintJob.Status.QUEUED,
                    priority=rng.choice([0, 1, 1, 1, 2]),
                    queued_at=now - timedelta(minutes=rng.randint(1, 48 * 60)),
                    estimated_seconds=rng.randint(10, 360) * 60,
                    copies=rng.choice([1, 1, 1, 2]),
                    size_mm={"obb": [rng.randint(10, 260), rng.randint(10, 200), rng.randint(5, 150)]},
                )
            )
    PrintJob.objects.bulk_create(jobs, batch_size=5000)
    bookings = []
    for machine in machines:
        # Perhaps a print running now, then people's bookings and maintenance over two weeks.
        cursor = (
            now - timedelta(minutes=30)
            if rng.random() < 0.5
            else now + timedelta(minutes=rng.randint(0, 600))
        )
        for k in range(BOOKINGS_PER_MACHINE):
            length = timedelta(minutes=rng.randint(30, 240))
            bookings.append(
                Booking(
                    machine=machine,
                    kind=Booking.Kind.PRINT_JOB if k == 0 else Booking.Kind.BOOKING,
                    member=None if k == 0 else viewer,
                    start=cursor,
                    end=cursor + length,
                )
            )
            cursor += length + timedelta(minutes=rng.randint(20, 16 * 60 // 1))
    bookings += past_rows(machines, history, now, viewer, rng)
    Booking.objects.bulk_create(bookings, batch_size=5000)
    with connection.cursor() as c:
        c.execute("ANALYZE")


def past_rows(machines: list, per_machine: int, now: datetime, viewer, rng: random.Random) -> list:
    """`per_machine` timeline rows per machine that ended before the earliest row above
    (so before now), going back day by day: mostly done prints and bookings, which stay
    approved after they end, and one in ten cancelled. Made in the order they started, as
    a lab's history is written."""
    from machines.models import Booking

    rows = []
    for machine in machines:
        cursor = now - timedelta(hours=1)
        for _ in range(per_machine):
            length = timedelta(minutes=rng.randint(30, 240))
            cursor -= length + timedelta(minutes=rng.randint(20, 16 * 60))
            booking = rng.random() < 0.3
            rows.append(
                Booking(
                    machine=machine,
                    kind=Booking.Kind.BOOKING if booking else Booking.Kind.PRINT_JOB,
                    member=viewer if booking else None,
                    status=Booking.Status.CANCELLED if rng.random() < 0.1 else Booking.Status.APPROVED,
                    start=cursor,
                    end=cursor + length,
                )
            )
    rows.sort(key=lambda row: row.start)
    return rows


def fits_sql() -> str:
    """The rotation-aware fit as SQL over m.work_*: for each part extent standing up, the
    other two in the bed straight or tilted (Carver's condition, squared, in numeric)."""
    clauses = []
    for up in range(3):
        h = PART[up]
        p, q = sorted((PART[(up + 1) % 3], PART[(up + 2) % 3]), reverse=True)
        a = "greatest(m.work_x_mm, m.work_y_mm)::numeric"
        b = "least(m.work_x_mm, m.work_y_mm)::numeric"
        s = p * p + q * q
        lhs = f"({b} * {s} - {2 * p * q} * {a})"
        clauses.append(
            f"(m.work_z_mm >= {h} AND {b} >= {q} AND ({a} >= {p} OR "
            f"({lhs} >= 0 AND {lhs} ^ 2 >= {(p * p - q * q) ** 2} * ({s} - {a} ^ 2))))"
        )
    return "(" + " OR ".join(clauses) + ")"


BASELINE_SQL = """
WITH printers AS (
  SELECT m.id, m.lab_id, pr.material, {fits} AS fits
  FROM machines_machine m
  JOIN machines_printer pr ON pr.machine_id = m.id
  JOIN machines_lab l ON l.id = m.lab_id
  WHERE l.approved_at IS NOT NULL AND pr.accepts_jobs AND m.kind = 'fdm_printer' AND m.status = 'available'
),
shares AS (
  SELECT lab_id, material, count(*) AS printers FROM printers GROUP BY lab_id, material
),
queue AS (
  SELECT j.lab_id, j.material,
         sum(greatest(300, ceil(coalesce(j.estimated_seconds, 3600) * 1.1 / 60) * 60) * (j.copies - j.copies_done)) AS seconds
  FROM machines_printjob j
  WHERE j.status = 'queued' AND j.machine_kind = 'fdm_printer'
    AND (j.priority >= 1 OR j.queued_at < %(starving)s)
  GROUP BY j.lab_id, j.material
),
ready AS (
  SELECT p.id, p.lab_id, p.fits, coalesce(q.seconds, 0) AS queued,
         %(now)s + make_interval(secs => coalesce(q.seconds, 0) / s.printers) AS at
  FROM printers p
  JOIN shares s ON s.lab_id = p.lab_id AND s.material = p.material
  LEFT JOIN queue q ON q.lab_id = p.lab_id AND q.material = p.material
  WHERE p.material = %(material)s
)
SELECT r.id, r.lab_id, r.fits, r.queued,
  CASE WHEN r.fits THEN (
    SELECT min(c) FROM (
      SELECT r.at AS c WHERE NOT EXISTS (
        SELECT 1 FROM machines_booking b
        WHERE b.machine_id = r.id AND b.status IN ('pending', 'approved')
          AND b.start < r.at + %(span)s AND b."end" > r.at)
      UNION ALL
      SELECT g."end" FROM (
        SELECT b."end", lead(b.start) OVER (ORDER BY b.start) AS next
        FROM machines_booking b
        WHERE b.machine_id = r.id AND b.status IN ('pending', 'approved') AND b."end" > r.at
          AND b.start < %(lookahead)s
      ) g WHERE g.next IS NULL OR g.next - g."end" >= %(span)s
    ) s
  ) END AS next_free
FROM ready r
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--history", type=int, default=0, help="past timeline rows per printer")
    history = parser.parse_args().history
    ensure_postgres()
    sys.path.insert(0, str(ROOT / "bench"))
    from _django import best_of, setup

    setup()
    import time_machine
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from hub.models import User
    from machines.models import Booking, OpeningHours, PrintJob, Qualification
    from machines.printing.jobs import timeline_span
    from machines.where import Part, where_to_make

    assert connection.vendor == "postgresql", "this benchmark needs PostgreSQL"
    now = datetime(2026, 3, 23, 8, 0, tzinfo=UTC)
    viewer = User.objects.filter(username="bench").first() or User.objects.create_user("bench")
    part = Part(size_mm=PART, volume_mm3=PART_VOLUME)
    seconds = round(PART_VOLUME * 0.35 / 3.0)
    span = timeline_span(seconds)
    sql = BASELINE_SQL.format(fits=fits_sql())
    params: dict[str, Any] = {
        "now": now,
        "material": "PLA",
        "span": span,
        "lookahead": now + timedelta(days=14),
        "starving": now - timedelta(hours=settings.FABHUB_PRINT_STARVATION_HOURS),
    }

    def baseline() -> list[tuple]:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    server_cpu = _backend_cpu(connection)

    def cpu_of(fn: Callable[[], object]) -> float | None:
        """CPU seconds of one call, this process's and the database server's: best of RUNS."""
        if server_cpu is None:
            return None
        timings = []
        for _ in range(RUNS):
            server, client = server_cpu(), time.process_time()
            fn()
            timings.append(time.process_time() - client + server_cpu() - server)
        return min(timings)

    def in_queries() -> float:
        """Seconds one answer spends in its queries (executed, rows received)."""
        spent = 0.0

        def timed(execute, sql, params, many, context):
            nonlocal spent
            start = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                spent += time.perf_counter() - start

        with connection.execute_wrapper(timed):
            where_to_make(viewer=viewer, part=part)
        return spent

    print(
        f"{'labs × printers':<18}{'queued':>8}{'timeline':>10}{'where':>10}{'SQL':>10}{'ratio':>8}"
        f"{'in queries':>12}{'per lab':>10}{'queries':>9}{'where CPU':>11}{'SQL CPU':>10}{'ratio':>8}"
    )
    per_lab = []
    with time_machine.travel(now, tick=False):
        for labs in SIZES:
            fill(labs, now, viewer, history=history)
            answer = where_to_make(viewer=viewer, part=part)
            rows = baseline()
            _check(
                answer,
                rows,
                now,
                with_hours=set(OpeningHours.objects.values_list("lab_id", flat=True)),
                trained=set(Qualification.objects.values_list("lab_id", flat=True)),
            )
            # Counted on one untimed answer: the benches run with DEBUG off, so Django logs
            # statements only inside this context.
            with CaptureQueriesContext(connection) as counted:
                where_to_make(viewer=viewer, part=part)
            queries = len(counted.captured_queries)
            hub = best_of(RUNS, lambda: where_to_make(viewer=viewer, part=part))
            plain = best_of(RUNS, baseline)
            sql_part = min(in_queries() for _ in range(RUNS))
            hub_cpu = cpu_of(lambda: where_to_make(viewer=viewer, part=part))
            plain_cpu = cpu_of(baseline)
            per_lab.append(hub / labs)
            cpu = (
                f"{hub_cpu * 1000:>9.1f}ms{plain_cpu * 1000:>8.1f}ms{hub_cpu / plain_cpu:>7.2f}x"
                if hub_cpu is not None and plain_cpu is not None
                else f"{'(no server CPU: not a local server)':>37}"
            )
            print(
                f"{f'{labs} × {MACHINES_PER_LAB}':<18}{PrintJob.objects.count():>8,}{Booking.objects.count():>10,}"
                f"{hub * 1000:>8.1f}ms{plain * 1000:>8.1f}ms{hub / plain:>7.2f}x"
                f"{sql_part * 1000:>10.1f}ms{hub / labs * 1000:>8.2f}ms{queries:>9}{cpu}"
            )
    growth = per_lab[-1] / per_lab[0]
    print(
        f"time per lab from {SIZES[0]} to {SIZES[-1]} labs: ×{growth:.2f} "
        f"({'linear or better' if growth <= 1.15 else 'worse than linear'})"
    )


def _backend_cpu(connection) -> Callable[[], float] | None:
    """The CPU seconds the connection's PostgreSQL backend has used so far, read from
    /proc (nanoseconds on the CPU, first field of schedstat); None when that process is
    not a PostgreSQL backend on this machine (a remote server)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    proc = Path(f"/proc/{pid}")
    try:
        if (proc / "comm").read_text().strip() != "postgres":
            return None
        (proc / "schedstat").read_text()
    except OSError:
        return None
    return lambda: int((proc / "schedstat").read_text().split()[0]) / 1e9


def _check(answer, rows, now: datetime, *, with_hours: set[int], trained: set[int]) -> None:
    """Both answers agree: the same printers fit; the same start where nothing is ahead."""
    sql_fit = {machine_id for machine_id, _, fits, _, _ in rows if fits}
    sql_labs = {lab_id for _, lab_id, fits, _, _ in rows if fits}
    options = answer.options + answer.other_currencies
    hub_fit = {m.pk for o in options for m in o.machines}
    assert {o.lab.pk for o in options} == sql_labs, "the labs differ"
    assert hub_fit == sql_fit, "the printers that fit differ"
    exact = 0
    for option in options:
        assert option.start is None or option.start >= now
        lab_rows = [r for r in rows if r[1] == option.lab.pk and r[2]]
        if option.lab.pk in with_hours or option.lab.pk not in trained or any(r[3] for r in lab_rows):
            continue
        assert option.start == min(r[4] for r in lab_rows), (option.lab, option.start, lab_rows)
        exact += 1
    assert exact, "no lab to compare starts on"
    print(f"  checked: {len(options)} labs, {len(hub_fit)} printers fit; the same start at {exact} idle labs")


if __name__ == "__main__":
    main()
