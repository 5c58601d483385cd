"""Bookings on PostgreSQL with 100,000 rows: availability of one machine for a month, and
booking creation from 8 concurrent clients.

Baselines, measured in the same run on the same database:
- availability: one plain SQL query that computes the same free slots with multiranges
  (opening hours − bookings − closures, in the lab's zone); the two answers are compared;
- creation: plain INSERTs of the same rows from 8 clients (the exclusion constraint still
  checks them), without the hub's rules, lock or checks.

Run `python bench/bookings.py`: without a PostgreSQL DATABASE_URL it starts a throw-away
server through scripts/with-postgres (fsync off: absolute write figures are optimistic,
the ratios are what to read).
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOKINGS = 100_000
MACHINES = 20
RUNS = 300
CLIENTS = 8
PER_CLIENT = 150
ZONE = "Europe/Paris"


def ensure_postgres() -> None:
    if os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        return
    script = str(ROOT / "scripts" / "with-postgres")
    os.execv(script, [script, sys.executable, *sys.argv])


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


def row(label: str, hub: list[float], base: list[float]) -> None:
    hub_median, hub_p99 = percentiles(hub)
    base_median, base_p99 = percentiles(base)
    print(
        f"{label:<44}{hub_median * 1000:>8.2f}ms{hub_p99 * 1000:>8.2f}ms"
        f"{base_median * 1000:>8.2f}ms{base_p99 * 1000:>8.2f}ms{hub_median / base_median:>7.2f}x"
    )


PLAIN_SQL = """
WITH win AS (SELECT tstzrange(%(start)s, %(end)s, '[)') AS r),
days AS (
  SELECT d::date AS day FROM generate_series(
    (%(start)s AT TIME ZONE %(tz)s)::date - 1, (%(end)s AT TIME ZONE %(tz)s)::date + 1, interval '1 day') AS d
),
open AS (
  SELECT coalesce(range_agg(tstzrange(
    (day + h.opens) AT TIME ZONE %(tz)s,
    ((CASE WHEN h.closes = '00:00' THEN day + 1 ELSE day END) + h.closes) AT TIME ZONE %(tz)s, '[)')),
    '{}'::tstzmultirange) AS m
  FROM days JOIN machines_openinghours h ON h.lab_id = %(lab)s AND h.weekday = extract(isodow FROM day) - 1
),
busy AS (
  SELECT coalesce(range_agg(tstzrange(b.start, b."end", '[)')), '{}'::tstzmultirange) AS m
  FROM machines_booking b, win
  WHERE b.machine_id = %(machine)s AND b.status IN ('pending', 'approved')
    AND tstzrange(b.start, b."end", '[)') && win.r
),
closed AS (
  SELECT coalesce(range_agg(tstzrange(c.start, c."end", '[)')), '{}'::tstzmultirange) AS m
  FROM machines_closure c, win WHERE c.lab_id = %(lab)s AND tstzrange(c.start, c."end", '[)') && win.r
)
SELECT lower(r), upper(r)
FROM (SELECT unnest((open.m - busy.m - closed.m) * tstzmultirange(win.r)) AS r FROM open, busy, closed, win) AS s
ORDER BY 1
"""


def main() -> None:
    ensure_postgres()
    sys.path.insert(0, str(ROOT / "bench"))
    from _django import setup

    setup()
    from django.db import connection, connections

    from hub.exceptions import Conflict
    from hub.models import User
    from machines import selectors, services, timeline
    from machines.models import Booking, Machine

    assert connection.vendor == "postgresql", "this benchmark needs PostgreSQL"
    # A site administrator: the lab is approved as it is created (labs wait for approval).
    manager = User.objects.create_user("bench-manager", is_staff=True)
    lab = services.lab_create(
        creator=manager,
        name="Bench Lab",
        slug="bench",
        timezone=ZONE,
        max_horizon_days=3650,
        min_notice_minutes=0,
        max_booking_minutes=24 * 60,
    )
    from datetime import time as clock

    services.lab_set_hours(lab=lab, actor=manager, hours=[(d, clock(8), clock(22)) for d in range(7)])
    machines = [
        services.machine_create(
            lab=lab, actor=manager, name=f"Printer {n}", slug=f"p{n}", kind=Machine.Kind.FDM_PRINTER
        )
        for n in range(MACHINES)
    ]
    members = [User.objects.create_user(f"member{n}") for n in range(CLIENTS)]
    for member in members:
        services.membership_join(lab=lab, user=member)

    # 100,000 one-hour bookings, 7 a day per machine (08:00, 10:00, … 20:00 local), from
    # about two years ago onwards; every tenth one cancelled (history that must not count).
    print(f"Filling {BOOKINGS:,} bookings on {MACHINES} machines…", flush=True)
    first_day = date(2024, 6, 3)
    per_machine = BOOKINGS // MACHINES
    started = time.perf_counter()
    batch = []
    for machine in machines:
        for n in range(per_machine):
            day = first_day + timedelta(days=n // 7)
            start = timeline.wall_clock(day, clock(8 + 2 * (n % 7)), lab.zone)
            batch.append(
                Booking(
                    machine=machine,
                    member=members[n % CLIENTS],
                    created_by=manager,
                    start=start,
                    end=start + timedelta(hours=1),
                    status=Booking.Status.CANCELLED if n % 10 == 9 else Booking.Status.APPROVED,
                )
            )
            if len(batch) == 10_000:
                Booking.objects.bulk_create(batch)
                batch = []
    Booking.objects.bulk_create(batch)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    last_day = first_day + timedelta(days=per_machine // 7)
    print(
        f"  {Booking.objects.count():,} rows ({first_day} to {last_day}) in {time.perf_counter() - started:.1f}s\n"
    )

    # -- availability of one machine for a month ---------------------------------------------------
    machine = Machine.objects.select_related("lab").get(pk=machines[7].pk)
    month_start = timeline.wall_clock(date(2025, 5, 1), clock(0), lab.zone)
    month_end = timeline.wall_clock(date(2025, 6, 1), clock(0), lab.zone)
    now = datetime(2025, 4, 1, tzinfo=UTC)
    params = {"start": month_start, "end": month_end, "tz": ZONE, "lab": lab.pk, "machine": machine.pk}

    def hub_availability():
        return selectors.machine_free_slots(machine, month_start, month_end, now=now)

    def plain_availability():
        with connection.cursor() as cursor:
            cursor.execute(PLAIN_SQL, params)
            return [(s.astimezone(UTC), e.astimezone(UTC)) for s, e in cursor.fetchall()]

    hub_answer, plain_answer = hub_availability(), plain_availability()
    same = hub_answer == plain_answer
    hub_times, plain_times = [], []
    for _ in range(RUNS):
        t = time.perf_counter()
        hub_availability()
        hub_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        plain_availability()
        plain_times.append(time.perf_counter() - t)

    print(f"{'':<44}{'hub':>20}{'plain SQL':>20}")
    print(f"{'case':<44}{'median':>10}{'p99':>10}{'median':>10}{'p99':>10}{'ratio':>8}")
    row(f"availability, 1 machine, 1 month ({len(hub_answer)} slots)", hub_times, plain_times)
    print(f"  same free slots from both: {'yes' if same else 'NO'}")

    # -- booking creation from 8 concurrent clients ----------------------------------------------------
    # Client c books day d (far in the future, empty), hour slot c, on one of 4 machines:
    # the clients meet on the same machines' locks but never on the same slot.
    hot = machines[:4]
    future = date(2031, 1, 6)

    def slots(client: int):
        for n in range(PER_CLIENT):
            day = future + timedelta(days=n)
            start = timeline.wall_clock(day, clock(8 + client), lab.zone)
            yield hot[n % len(hot)], start, start + timedelta(minutes=50)

    def run_clients(work) -> tuple[list[float], float, list[Exception]]:
        latencies: list[float] = []
        errors: list[Exception] = []
        lock = threading.Lock()
        barrier = threading.Barrier(CLIENTS)

        def client(c: int) -> None:
            mine = []
            try:
                barrier.wait()
                for machine_, start, end in slots(c):
                    t = time.perf_counter()
                    work(c, machine_, start, end)
                    mine.append(time.perf_counter() - t)
            except Exception as exc:
                errors.append(exc)
            finally:
                connections.close_all()
                with lock:
                    latencies.extend(mine)

        threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
        wall = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return latencies, time.perf_counter() - wall, errors

    def hub_create(c, machine_, start, end):
        services.booking_create(machine=machine_, member=members[c], start=start, end=end)

    def plain_insert(c, machine_, start, end):
        with connection.cursor() as cursor:
            cursor.execute(
                'INSERT INTO machines_booking (machine_id, kind, status, member_id, created_by_id, start, "end", '
                "note, reason, created_at, needs_decision, held_amount) VALUES (%s, 'booking', 'approved', %s, %s, %s, "
                "%s, '', '', now(), false, 0)",
                [
                    machine_.pk,
                    members[c].pk,
                    members[c].pk,
                    start + timedelta(days=400),
                    end + timedelta(days=400),
                ],
            )

    # The statements one booking takes (BEGIN and COMMIT included when the hub opens a
    # transaction), on a slot no client uses.
    from django.test.utils import CaptureQueriesContext

    probe = timeline.wall_clock(date(2033, 1, 3), clock(9), lab.zone)
    with CaptureQueriesContext(connection) as statements:
        services.booking_create(
            machine=hot[0], member=members[0], start=probe, end=probe + timedelta(hours=1)
        )
    print(f"  statements per booking: {len(statements.captured_queries)}")

    # CPU of this process (the clients' threads: Django, the rules, psycopg), per booking:
    # what the clients spend besides waiting for the server.
    cpu = time.process_time()
    hub_lat, hub_wall, hub_errors = run_clients(hub_create)
    hub_cpu, cpu = time.process_time() - cpu, time.process_time()
    plain_lat, plain_wall, plain_errors = run_clients(plain_insert)
    plain_cpu = time.process_time() - cpu
    assert not hub_errors and not plain_errors, (hub_errors[:2], plain_errors[:2])
    total = CLIENTS * PER_CLIENT
    row(f"create 1 booking, {CLIENTS} clients", hub_lat, plain_lat)
    hub_rate, plain_rate = total / hub_wall, total / plain_wall
    print(
        f"{'  throughput (bookings/s)':<44}{hub_rate:>18.0f}{plain_rate:>20.0f}"
        f"{plain_rate / hub_rate:>15.2f}x slower ({hub_rate / plain_rate * 100:.0f} % of the plain rate; goal >= 25 %)"
    )
    print(
        f"{'  client CPU per booking (this process)':<44}{hub_cpu / total * 1000:>16.2f}ms"
        f"{plain_cpu / total * 1000:>18.2f}ms"
    )

    # The race the table must survive: every client for one slot at once.
    start = timeline.wall_clock(date(2032, 3, 3), clock(10), lab.zone)
    outcomes: list[str] = []
    race_start = threading.Barrier(CLIENTS)

    def racer(c: int) -> None:
        try:
            race_start.wait()
            services.booking_create(
                machine=hot[0], member=members[c], start=start, end=start + timedelta(hours=1)
            )
            outcomes.append("booked")
        except Conflict:
            outcomes.append("conflict")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=racer, args=(c,)) for c in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(
        f"  {CLIENTS} clients racing for one slot: {outcomes.count('booked')} booked, "
        f"{outcomes.count('conflict')} clear conflicts"
    )


if __name__ == "__main__":
    main()
