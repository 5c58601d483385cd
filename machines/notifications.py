"""Notifications of labs: bookings and the print queue tell people through here, into the
hub's one inbox (hub.notifications), e-mailed after the commit when the set-up sends mail.

A notice names its booking when it has one, else its lab (`target_type` "machines.booking"
or "machines.lab"): both stay the recipient's to see (registered in machines.apps), as
they were before the inbox moved to the hub.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.urls import reverse

from hub import notifications as inbox
from hub.models import Notification, NotificationKind, User
from machines.models import Booking, Lab, LabMembership

BOOKING_TARGET = "machines.booking"
LAB_TARGET = "machines.lab"


def notify(
    *, user: User, subject: str, body: str = "", lab: Lab | None = None, booking: Booking | None = None
) -> Notification:
    """Store a notification, and e-mail it once the transaction commits."""
    lab = lab or (booking.machine.lab if booking is not None else None)
    if booking is not None:
        kind, target_type, target_id = NotificationKind.LAB_BOOKING, BOOKING_TARGET, booking.pk
    elif lab is not None:
        kind, target_type, target_id = NotificationKind.LAB, LAB_TARGET, lab.pk
    else:
        kind, target_type, target_id = NotificationKind.LAB, "", None
    note = inbox.notify(
        recipient=user,
        kind=kind,
        subject=subject,
        body=body,
        link=reverse("lab-detail", args=[lab.slug]) if lab is not None else reverse("my-bookings"),
        target_type=target_type,
        target_id=target_id,
    )
    assert note is not None  # no actor: the recipient is never the one who acted
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


def notifications_about(*, booking: Booking | None = None, lab: Lab | None = None) -> QuerySet[Notification]:
    """The notices that name `booking`, or `lab` itself (not its bookings' notices)."""
    about = Q(pk__in=[])
    if booking is not None:
        about |= Q(target_type=BOOKING_TARGET, target_id=booking.pk)
    if lab is not None:
        about |= Q(target_type=LAB_TARGET, target_id=lab.pk)
    return Notification.objects.filter(about)
