"""Celery tasks of the hub: thin wrappers that take ids and call the archive jobs."""

from __future__ import annotations

from celery import shared_task

from hub import archives, notifications


@shared_task(acks_late=True, reject_on_worker_lost=True, time_limit=6 * 3600)
def archive_build(archive_id: str) -> bool:
    return archives.archive_build(archive_id=archive_id)


# Retried on a database error (hub.celery.HubTask): an import runs again whole by design
# (each object is mapped by its source id, kept records are not kept twice), and
# archive_import_run deletes the uploaded file only once the outcome is saved; a re-run
# that finds it gone marks the import failed.
@shared_task(acks_late=True, reject_on_worker_lost=True, time_limit=6 * 3600)
def archive_import(import_id: str) -> bool:
    return archives.archive_import_run(import_id=import_id)


@shared_task
def archives_expire() -> int:
    return archives.archives_expire()


# Retried on a database error (hub.celery.HubTask): it reads before it sends and writes
# nothing after. A mail server that is down is a logged line (hub.mail), not a retry.
@shared_task(time_limit=60)
def send_notification_email(notification_id: int) -> bool:
    return notifications.notification_email_send(notification_id=notification_id)
