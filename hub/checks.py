"""System checks of the hub's own settings (`manage.py check`)."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, register

from hub.celery import app


@register()
def visibility_outlasts_every_task(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """With Redis (or SQS) as the broker, a task that is still running when the broker's
    visibility timeout runs out is handed to a second worker (tasks are acknowledged
    late): two archive builds of one account at once, say. Every task's time limit
    must therefore end before the visibility timeout."""
    broker = settings.CELERY_BROKER_URL
    if not broker.startswith(("redis", "rediss", "sqs")):
        return []
    _import_every_tasks_module()
    timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    too_long = sorted(
        (limit, name)
        for name, task in app.tasks.items()
        if not name.startswith("celery.")
        and (limit := task.time_limit or settings.CELERY_TASK_TIME_LIMIT or 0) >= timeout
    )
    return [
        Error(
            f"The task {name} may run {limit} s, not less than the broker's visibility "
            f"timeout ({timeout} s): a second worker would start it while it runs.",
            hint="Raise CELERY_VISIBILITY_TIMEOUT above the longest task time limit.",
            id="hub.E001",
        )
        for limit, name in too_long
    ]


# Caches that each process keeps to itself.
PROCESS_LOCAL_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


@register()
def workers_share_the_cache(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """With a broker, tasks run in Celery workers, other processes than the web's: what
    they leave in the cache for the web (a long history's count, say) is only seen there
    through a shared cache. A per-process cache loses it: the history page would say
    'Counting the commits…' for ever."""
    backend = settings.CACHES["default"]["BACKEND"]
    if not settings.CELERY_BROKER_URL or backend not in PROCESS_LOCAL_CACHES:
        return []
    return [
        Error(
            f"CELERY_BROKER_URL is set but the cache ({backend.rpartition('.')[2]}) is each "
            "process's own: what the workers cache for the web (history counts) is lost.",
            hint="Set REDIS_CACHE_URL (e.g. redis://redis:6379/1) for the web, the workers and beat.",
            id="hub.E002",
        )
    ]


def _import_every_tasks_module() -> None:
    """What Celery's autodiscovery imports (each installed app's `tasks`), without its
    import signal: Celery's Django fix-up answers that signal by running the checks."""
    for config in apps.get_app_configs():
        if importlib.util.find_spec(f"{config.name}.tasks") is not None:
            importlib.import_module(f"{config.name}.tasks")
