"""The dispatcher's hand-written statements on PostgreSQL: their parameters do not grow
with the printers and jobs of a tick (psycopg splits a statement of more than 50 at every
mark each time it runs), whatever the text of the values they carry; the times they
read and write are exact; and their reads load times with psycopg's own loader."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import BaseTzLoader
from django.utils import timezone
from psycopg.pq import Format

from machines.models import Booking, Machine, Printer, PrintJob
from machines.printing import dispatch
from tests.concurrency import on_postgres
from tests.printing.factories import make_printer, queued_job

S = PrintJob.Status


def statements_of_a_tick() -> list[tuple[str, int]]:
    """Each statement of one dispatcher tick: its first words and its number of parameters."""
    seen: list[tuple[str, int]] = []

    def record(execute, sql, params, many, context):
        if not sql.startswith(("SAVEPOINT", "RELEASE SAVEPOINT")):  # the test's transaction
            seen.append((" ".join(sql.split()[:4]), len(params or ())))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        dispatch.dispatch_tick()
    return seen


# The claim's writes: their parameters grow with the claims, as the baseline's do
# (bench/print_queue.py: the same bulk INSERT and `update_by_pk`).
WRITES = ("INSERT INTO", 'UPDATE "machines_printjob" SET', 'UPDATE "machines_printer" SET')


@on_postgres
@pytest.mark.django_db
def test_the_dispatchers_reads_and_locks_take_as_many_parameters_for_many_printers_as_for_one(
    lab, bob, tmp_path
):
    make_printer(lab, slug="p0")
    queued_job(lab, bob, tmp_path, name="first.gcode")
    one = statements_of_a_tick()
    PrintJob.objects.update(status=S.CANCELLED)
    Printer.objects.update(state="idle", job_name="", message="")
    materials = ["PLA", "PETG", "ABS"]
    for n in range(1, 7):
        make_printer(lab, slug=f"p{n}", material=materials[n % 3], colour=["", "red"][n % 2])
    for n in range(24):
        queued_job(lab, bob, tmp_path, name=f"part-{n}.gcode", material=materials[n % 3])
    Booking.objects.all().delete()
    many = statements_of_a_tick()
    assert PrintJob.objects.filter(status=S.AWAITING_OPERATOR).count() == 7
    kept = [(sql, count) for sql, count in one if not sql.startswith(WRITES)]
    assert [s for s, _ in kept] == [s for s, _ in many if not s.startswith(WRITES)]
    assert kept == [(sql, count) for sql, count in many if not sql.startswith(WRITES)]
    assert all(count <= 50 for _, count in kept)


@pytest.mark.django_db
def test_printers_whose_material_and_colour_are_any_text_still_take_their_jobs(lab, bob, tmp_path):
    """The groups' values travel as arrays on PostgreSQL: quotes, commas, braces, a
    backslash and the word NULL in a material or a colour are values like any other."""
    odd = 'P"L,A {X} \\ NULL'
    make_printer(lab, slug="odd", material=odd, colour="it's, {red}")
    make_printer(lab, slug="null", material="NULL", colour="NULL")
    make_printer(lab, slug="plain", material="PLA")
    jobs = [
        queued_job(lab, bob, tmp_path, name="odd.gcode", material=odd, colour="it's, {red}"),
        queued_job(lab, bob, tmp_path, name="null.gcode", material="NULL", colour="NULL"),
        queued_job(lab, bob, tmp_path, name="plain.gcode", material="PLA"),
    ]
    assert sorted(dispatch.dispatch_tick()) == sorted(j.pk for j in jobs)
    machines = dict(PrintJob.objects.filter(pk__in=[j.pk for j in jobs]).values_list("path", "machine__slug"))
    assert [machines[j.path] for j in jobs] == ["odd", "null", "plain"]


@pytest.mark.django_db
def test_a_timeline_is_taken_only_up_to_the_microsecond_its_next_row_starts(lab):
    """The planned ends travel as text on PostgreSQL (`_time_array`): a row starting one
    microsecond before a plan's end refuses it; one starting at its end does not."""
    printer = make_printer(lab)
    now = timezone.now().replace(microsecond=123456)
    end = now + timedelta(minutes=33, microseconds=654321)
    (idle,) = dispatch.idle_printers(now=now)
    plan = dispatch.Plan(idle, job=None, gcode=None, end=end)  # type: ignore[arg-type]
    machine = Machine.objects.get(pk=printer.pk)
    row = Booking.objects.create(
        machine=machine,
        kind=Booking.Kind.MAINTENANCE,
        status=Booking.Status.APPROVED,
        start=end - timedelta(microseconds=1),
        end=end + timedelta(hours=1),
    )
    assert dispatch._take_timelines([plan], now=now) == 0
    Booking.objects.filter(pk=row.pk).update(start=end)
    assert dispatch._take_timelines([plan], now=now) == 1


@on_postgres
@pytest.mark.django_db
def test_the_dispatchers_reads_load_times_with_psycopgs_loader_as_the_orm_reads_them(lab, bob, tmp_path):
    """Django's loader of `timestamptz` is Python (~3 µs a value); with the session in UTC
    psycopg's own gives the same values, tzinfo and all."""
    make_printer(lab)
    job = queued_job(lab, bob, tmp_path)
    queued_at = timezone.now().replace(microsecond=999999) - timedelta(days=400)
    PrintJob.objects.filter(pk=job.pk).update(queued_at=queued_at)
    loaders = []

    def record(execute, sql, params, many, context):
        loaders.append(context["cursor"].cursor.adapters.get_loader(_timestamptz(), Format.TEXT))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        (printer,) = dispatch.idle_printers(now=timezone.now())
        group = dispatch._group(printer)
        read = dispatch._candidates({group: 1}, starving_before=timezone.now() - timedelta(hours=24))
    assert len(loaders) == 3  # the idle printers, their labs, the candidates
    assert not any(issubclass(loader, BaseTzLoader) for loader in loaders)
    (candidate,) = read[group].jobs
    orm = PrintJob.objects.get(pk=job.pk).queued_at
    assert candidate.queued_at == queued_at == orm
    assert candidate.queued_at.tzinfo is orm.tzinfo


def _timestamptz() -> int:
    from psycopg.postgres import types

    return types["timestamptz"].oid


@on_postgres
@pytest.mark.django_db
def test_the_idle_read_looks_up_timelines_only_for_the_printers_it_finds_idle(lab, bob, tmp_path):
    """The timeline row is a subquery per printer: PostgreSQL must not plan it for every
    printer before the conditions that leave none idle. On statistics bench/print_queue.py's
    bulk changes left behind it did (56-64 ms a tick at 500 printers with nothing to do,
    ~1 ms now), which a test cannot make the planner do on demand: the idle printers are a
    MATERIALIZED CTE (a CTE scan in the plan, which the planner cannot fold into the rest),
    and with none idle no booking is read."""
    for n in range(30):
        make_printer(lab, slug=f"p{n}")
    for n in range(30):
        queued_job(lab, bob, tmp_path, name=f"part-{n}.gcode")
    dispatch.dispatch_tick()
    assert PrintJob.objects.filter(status=S.AWAITING_OPERATOR).count() == 30  # every printer busy
    captured: list[tuple[str, list]] = []
    fetch = dispatch._fetch

    def spy(read, sql, params, fields):
        if read == "idle":
            captured.append((sql, list(params)))
        return fetch(read, sql, params, fields)

    with connection.cursor() as cursor:
        # Statistics as bench/print_queue.py's bulk changes left them: many more printers
        # and machines than there are, hardly a timeline row.
        for table, rows in (("machines_printer", 6200), ("machines_machine", 2400), ("machines_booking", 1)):
            cursor.execute(
                "UPDATE pg_class SET reltuples = %s, relpages = %s WHERE relname = %s",
                [rows, rows // 50 + 1, table],
            )
        dispatch._fetch = spy
        try:
            assert dispatch.idle_printers(now=timezone.now()) == []
        finally:
            dispatch._fetch = fetch
        sql, params = captured[0]
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0][0]["Plan"]

    def nodes(node):
        return [node] + [found for child in node.get("Plans", []) for found in nodes(child)]

    assert any(node["Node Type"] == "CTE Scan" and node.get("CTE Name") == "idle" for node in nodes(plan))
    scans = [node for node in nodes(plan) if node.get("Relation Name") == "machines_booking"]
    assert scans, "the timeline row is read from the bookings"
    assert all(scan.get("Actual Loops", 0) == 0 for scan in scans), scans
