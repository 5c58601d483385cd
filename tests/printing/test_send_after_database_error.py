"""Sending a job to its printer is not run again after a database error (hub.celery.HubTask
retries most tasks): print_job_send is not one transaction, and a second run with the same
token could start the print twice. A job left dispatching is the sweeper's."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from machines.models import PrintJob
from machines.printing import jobs
from machines.tasks import send_print_job
from tests.printing.factories import claimed_to_send

S = PrintJob.Status


@pytest.mark.django_db
def test_a_database_error_after_the_start_does_not_send_the_job_again(lab, bob, tmp_path, monkeypatch):
    job = claimed_to_send(lab, bob, tmp_path)
    assert job.status == S.DISPATCHING and job.dispatch_token

    starts: list[int] = []

    def started_then_database_gone(job, token, **kwargs):
        # The print was handed to the printer; the database goes away before it is recorded.
        starts.append(job.pk)
        raise OperationalError("the database system is starting up")

    monkeypatch.setattr(jobs, "job_started", started_then_database_gone)
    result = send_print_job.apply(args=(job.pk, job.dispatch_token))
    assert isinstance(result.result, OperationalError)
    assert starts == [job.pk]  # ran once: not retried
    job.refresh_from_db()
    assert job.status == S.DISPATCHING  # for the sweeper
