"""The Celery application.

Without a broker (the embedded default) tasks run in-process, eagerly, after the
transaction that queued them commits; with ``CELERY_BROKER_URL`` (Redis, RabbitMQ) they go
to separate worker processes. The code that queues them is the same in both set-ups.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")

app = Celery("fabhub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
