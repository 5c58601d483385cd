"""Notifications of labs: stored for the member's page and API, e-mailed after the commit
when the set-up sends mail. Bookings and the print queue both tell people through here."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from hub.models import User
from hub.queue import enqueue
from machines.models import Booking, Lab, LabMembership, Notification


def notify(
    *, user: User, subject: str, body: str = "", lab: Lab | None = None, booking: Booking | None = None
) -> Notification:
    """Store a notification, and e-mail it once the transaction commits."""
    note = Notification.objects.create(user=user, lab=lab, booking=booking, subject=subject[:200], body=body)
    if settings.FABHUB_EMAIL_NOTIFICATIONS and user.email:
        enqueue("machines.tasks.send_notification_email", note.pk)
    return note


def notify_managers(
    lab: Lab, *, subject: str, body: str = "", booking: Booking | None = None, but: User | None = None
) -> None:
    managers = User.objects.filter(
        lab_memberships__lab=lab,
        lab_memberships__role=LabMembership.Role.MANAGER,
        lab_memberships__status=LabMembership.Status.ACTIVE,
    )
    for manager in managers:
        if but is None or manager.pk != but.pk:
            notify(user=manager, subject=subject, body=body, lab=lab, booking=booking)


def notification_mark_read(*, user: User, notification_id: int | None = None) -> int:
    """Mark one notification (or all of them) read; returns how many changed."""
    rows = Notification.objects.filter(user=user, read_at__isnull=True)
    if notification_id is not None:
        rows = rows.filter(pk=notification_id)
    return rows.update(read_at=timezone.now())
