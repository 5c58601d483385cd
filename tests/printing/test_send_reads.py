"""What the send reads: its job, the job's G-code, machine and printer in one statement
of the columns it uses (`dispatch.SEND_FIELDS`), the rest of those rows only when a path
of the send names it, each value as a queryset reads it."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from hub.models import User
from machines.models import Lab, Machine, Printer, PrintGcode, PrintJob
from machines.printing import dispatch
from tests.printing.factories import claimed_to_send

pytestmark = pytest.mark.django_db
S = PrintJob.Status


def test_a_send_reads_its_job_in_one_statement_without_the_lab_or_the_owner(lab, bob, tmp_path):
    job = claimed_to_send(lab, bob, tmp_path)
    with CaptureQueriesContext(connection) as sent:
        assert dispatch.print_job_send(job_id=job.pk, token=job.dispatch_token) == "started"
    reads = [q["sql"] for q in sent.captured_queries if q["sql"].lstrip().upper().startswith("SELECT")]
    assert len(reads) == 1, reads
    for model in (Lab, User):
        assert model._meta.db_table not in reads[0]
    job.refresh_from_db()
    assert job.status == S.AWAITING_OPERATOR


def test_the_sends_rows_hold_what_a_queryset_reads(lab, bob, tmp_path):
    job = claimed_to_send(lab, bob, tmp_path)
    Printer.objects.filter(pk=job.machine_id).update(
        serial_port="/dev/ttyACM0", baudrate=115200, progress=12.5
    )
    read = dispatch._sending(job.pk)
    expected = PrintJob.objects.select_related("gcode", "machine", "machine__printer").get(pk=job.pk)
    pairs = [
        (read, expected, PrintJob),
        (read.printer_gcode, expected.printer_gcode, PrintGcode),
        (read.printer_machine, expected.printer_machine, Machine),
        (read.printer_machine.printer, expected.printer_machine.printer, Printer),
    ]
    for got, want, model in pairs:
        # Every field, those read and those left to read when used.
        for field in model._meta.concrete_fields:
            assert getattr(got, field.attname) == getattr(want, field.attname), (model, field.name)
        assert set(got.get_deferred_fields()).isdisjoint(
            dispatch._field(model, name).attname for name in dispatch.SEND_FIELDS[model]
        )
    assert read.lab == lab and read.owner == bob  # read when named (a failed send's notices)


def test_a_machine_without_its_printer_row_is_sent_to_as_before(lab, bob, tmp_path):
    job = claimed_to_send(lab, bob, tmp_path)
    Printer.objects.filter(pk=job.machine_id).delete()
    read = dispatch._sending(job.pk)
    assert read.printer_machine.pk == job.machine_id
    assert getattr(read.printer_machine, "printer", None) is None
