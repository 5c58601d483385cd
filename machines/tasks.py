"""Celery tasks of machines: thin wrappers that take ids and call a service."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from machines import services
from machines.models import Booking
from machines.printing import dispatch
from machines.printing import services as printing
from machines.printing.drivers import PrinterError
from machines.printing.slicer import SlicerError
from machines.services import bookings

logger = logging.getLogger(__name__)


@shared_task(time_limit=120)
def check_starting_bookings() -> int:
    """Check the members of bookings that start soon (run every minute by beat)."""
    now = timezone.now()
    soon = now + timedelta(minutes=settings.FABHUB_BOOKING_START_CHECK_MINUTES)
    ids = Booking.objects.filter(
        kind=Booking.Kind.BOOKING,
        status__in=Booking.ACTIVE,
        start_checked_at__isnull=True,
        start__lte=soon,
        end__gt=now,
    ).values_list("pk", flat=True)
    checked = 0
    for booking_id in ids:
        # One transaction per booking: booking_check_start claims the check before it reads
        # the qualification, and a database error between the two must undo the claim, or
        # a re-run (hub.celery.HubTask retries this task) would skip the booking's check.
        with transaction.atomic():
            if services.booking_check_start(booking_id=booking_id) is not None:
                checked += 1
    return checked


@shared_task(time_limit=300)
def settle_bookings() -> int:
    """Charge the credit held by priced bookings that ended (run every few minutes)."""
    return bookings.bookings_settle()


# -- the print queue (machines/printing/) ----------------------------------------------------


# The two slicing tasks take Celery's own limit (CELERY_TASK_TIME_LIMIT): the slicer stops
# itself first, after FABHUB_SLICER_TIME_LIMIT_S per profile.
@shared_task(bind=True, max_retries=3)
def prepare_print_job(self, job_id: int):
    """Slice a job (or read its G-code); retried only when the slicer could not start."""
    try:
        job = printing.print_job_prepare(job_id=job_id)
    except SlicerError as exc:  # retryable by construction: print_job_prepare re-raises only those
        raise self.retry(exc=exc, countdown=30) from exc
    return job.status if job is not None else None


@shared_task
def slice_print_job_for(job_id: int, machine_id: int) -> bool:
    return printing.print_job_slice_for(job_id=job_id, machine_id=machine_id) is not None


# Not retried on a database error (hub.celery.HubTask): print_job_send is not one
# transaction; the same token passes again while the job is DISPATCHING, so a re-run could
# upload and start the print a second time (a second agent START, or an OctoPrint print
# that already finished). A job left DISPATCHING is the queue sweeper's.
@shared_task(time_limit=600, autoretry_for=())
def send_print_job(job_id: int, token: str) -> str:
    return dispatch.print_job_send(job_id=job_id, token=token)


@shared_task(bind=True, time_limit=120, max_retries=5)
def cancel_on_printer(self, machine_id: int, remote_name: str) -> bool:
    """Stop a cancelled job on its printer; retried while the printer does not answer
    (the poller also stops it when it sees it again)."""
    try:
        return dispatch.cancel_on_printer(machine_id=machine_id, remote_name=remote_name)
    except PrinterError as exc:
        if exc.retryable:
            raise self.retry(exc=exc, countdown=20) from exc
        logger.warning("could not cancel %s on machine %s: %s", remote_name, machine_id, exc.message)
        return False


@shared_task(time_limit=300)
def dispatch_print_jobs(lab_id: int | None = None) -> int:
    return len(dispatch.dispatch_tick(lab_id=lab_id))


@shared_task(time_limit=120)
def poll_printers() -> int:
    return dispatch.printers_poll()


@shared_task(time_limit=120)
def poll_printer(machine_id: int) -> str | None:
    """Reconcile one printer now (a lab agent reported a change)."""
    return dispatch.printer_poll(machine_id=machine_id)


@shared_task(time_limit=600)
def sweep_print_queue() -> dict:
    return dispatch.print_queue_sweep()
