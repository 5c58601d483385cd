"""The Celery application.

Without a broker (the embedded default) tasks run in-process, eagerly, after the
transaction that queued them commits; with ``CELERY_BROKER_URL`` (Redis, RabbitMQ) they go
to separate worker processes. The code that queues them is the same in both set-ups.
"""

from __future__ import annotations

import os

from celery import Celery, Task
from django.db import InterfaceError, OperationalError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")


class HubTask(Task):
    """Every task's base: one that meets its database gone (PostgreSQL restarting or
    failing over, a dropped connection, SQLite busy) runs again a little later instead
    of being dropped. Measured by the scale harness (scripts/scale-harness): without
    this, a PostgreSQL restart under load dropped a hundred README and assembly
    refreshes and left analyses for the sweep.

    Such an error does not mean that nothing was written: a task that commits in steps
    may have committed some before it. Only a task whose work is safe to run again
    after a partial commit keeps this retry; the others opt out with
    ``autoretry_for=()``, commented at the task. Per task:

    - opted out: ``machines.tasks.send_print_job`` (a second run could upload and start
      a print again; a job left DISPATCHING is the queue sweeper's).
    - retried: every other task. Each either recomputes from the repositories and the
      database (analyses, diffs, mirrors and push mirrors, proposals, README, history,
      assemblies, polling, dispatch ticks, the sweeps, archive builds, expiry), runs
      again whole by design (``archive_import``: objects mapped by source id; its file
      is deleted only once the outcome is saved), claims
      its work in the same transaction as the work (``settle_bookings``,
      ``check_starting_bookings``), or repeats
      harmlessly (``cancel_on_printer``, ``send_notification_email``, which reads
      before it sends and writes nothing after; ``prepare_print_job``,
      claimed with a lease that a re-run waits out, and ``slice_print_job_for``,
      guarded by the job's status, both store G-code by its hash).
    """

    autoretry_for = (OperationalError, InterfaceError)
    retry_backoff = 2  # 2, 4, 8… seconds, with jitter
    retry_backoff_max = 60
    # Celery's default max_retries (3) stands unless a task sets its own: about 14 s in
    # all, longer than PostgreSQL's crash recovery took under the harness's load.


app = Celery("fabhub", task_cls=HubTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
