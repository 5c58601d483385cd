"""Queueing background work: `enqueue(task, *args)` after the transaction commits.

- With a broker (`CELERY_BROKER_URL`): Celery workers on any machine run it.
- Without one (the embedded default): a worker thread inside this process runs it, so
  a request never waits for the work it queued and no outside service is needed.
- In tests: Celery's eager mode runs it inline, deterministically.
The task functions are the same in all three.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections, connection, transaction

logger = logging.getLogger(__name__)
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _embedded_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fabhub-worker")
        return _pool


def _run_embedded(task, args: tuple, kwargs: dict) -> None:
    close_old_connections()
    try:
        task.apply(args=args, kwargs=kwargs, throw=True)
    except Exception:
        logger.exception("background task %s failed", task.name)
    finally:
        connection.close()


def enqueue(task, *args, **kwargs) -> None:
    """Run `task(*args, **kwargs)` in the background once the current transaction commits."""

    def send() -> None:
        if settings.FABHUB_EMBEDDED_WORKER:
            _embedded_pool().submit(_run_embedded, task, args, kwargs)
        else:
            task.apply_async(args=args, kwargs=kwargs)

    transaction.on_commit(send)


def wait_for_embedded_worker() -> None:
    """Block until the embedded worker is idle (for management commands and demos)."""
    if _pool is not None:
        _pool.submit(lambda: None).result()
