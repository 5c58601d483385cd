"""The hub's own system checks (hub/checks.py)."""

from __future__ import annotations

from django.test import override_settings

from hub.checks import visibility_outlasts_every_task, workers_share_the_cache


@override_settings(CELERY_BROKER_URL="redis://redis:6379/0")
def test_the_default_visibility_timeout_outlasts_every_task_with_redis():
    assert visibility_outlasts_every_task() == []


@override_settings(
    CELERY_BROKER_URL="redis://redis:6379/0",
    CELERY_BROKER_TRANSPORT_OPTIONS={"visibility_timeout": 7200},
)
def test_a_visibility_timeout_shorter_than_a_task_names_each_such_task():
    errors = visibility_outlasts_every_task()

    named = {error.msg.split()[2] for error in errors}
    # The archive tasks may run 6 hours: Redis would hand them to a second worker.
    assert {"hub.tasks.archive_build", "hub.tasks.archive_import"} <= named
    assert all(error.id == "hub.E001" for error in errors)
    assert "designs.tasks.diffs_run" not in named  # its 30 minutes fit in 2 hours


@override_settings(CELERY_BROKER_URL="", CELERY_BROKER_TRANSPORT_OPTIONS={"visibility_timeout": 1})
def test_without_a_visibility_based_broker_there_is_nothing_to_check():
    assert visibility_outlasts_every_task() == []


LOCAL = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
SHARED = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://redis:6379/1"}
}


@override_settings(CELERY_BROKER_URL="redis://redis:6379/0", CACHES=LOCAL)
def test_workers_with_a_cache_of_each_process_s_own_are_an_error():
    errors = workers_share_the_cache()
    assert [error.id for error in errors] == ["hub.E002"]
    assert "REDIS_CACHE_URL" in errors[0].hint


@override_settings(CELERY_BROKER_URL="redis://redis:6379/0", CACHES=SHARED)
def test_workers_with_a_shared_cache_are_fine():
    assert workers_share_the_cache() == []


@override_settings(CELERY_BROKER_URL="", CACHES=LOCAL)
def test_without_a_broker_tasks_run_in_the_web_process_and_its_cache_is_enough():
    assert workers_share_the_cache() == []
