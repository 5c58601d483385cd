"""Celery tasks of machines: thin wrappers that take ids and call a service."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone

logger = logging.getLogger(__name__)


@shared_task(time_limit=60, max_retries=3, bind=True)
def send_notification_email(self, notification_id: int) -> bool:
    from machines.models import Notification

    note = Notification.objects.select_related("user").filter(pk=notification_id).first()
    if note is None or not note.user.email:
        return False
    try:
        send_mail(note.subject, note.body or note.subject, None, [note.user.email])
    except OSError as exc:  # the mail server is down or refused us: worth another go
        raise self.retry(exc=exc, countdown=60) from exc
    return True


@shared_task(time_limit=120)
def check_starting_bookings() -> int:
    """Check the members of bookings that start soon (run every minute by beat)."""
    from machines import services
    from machines.models import Booking

    now = timezone.now()
    soon = now + timedelta(minutes=settings.FABHUB_BOOKING_START_CHECK_MINUTES)
    ids = Booking.objects.filter(
        kind=Booking.Kind.BOOKING, status__in=Booking.ACTIVE, start_checked_at__isnull=True,
        start__lte=soon, end__gt=now,
    ).values_list("pk", flat=True)
    checked = 0
    for booking_id in ids:
        if services.booking_check_start(booking_id=booking_id) is not None:
            checked += 1
    return checked
