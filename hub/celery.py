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
    of being dropped. Such an error means its transaction did not commit, and tasks are
    written to be run again (late acknowledgement, the sweepers). Measured by the scale
    harness (scripts/scale-harness): without this, a PostgreSQL restart under load
    dropped a hundred README and assembly refreshes and left analyses for the sweep."""

    autoretry_for = (OperationalError, InterfaceError)
    retry_backoff = 2  # 2, 4, 8… seconds, with jitter
    retry_backoff_max = 60
    # Celery's default max_retries (3) stands unless a task sets its own: about 14 s in
    # all, longer than PostgreSQL's crash recovery took under the harness's load.


app = Celery("fabhub", task_cls=HubTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
