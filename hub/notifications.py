"""Notifications of every kind: one inbox per person, one service that writes to it.

Feature apps tell people through `notify` (designs: proposals, releases, forks, module
upgrades; machines: bookings, labs, the print queue). The hub imports no feature app, so
what a notification is about is a (`target_type`, `target_id`) pair, and the app that owns
the target registers here, from its AppConfig.ready, which targets a person may still see
(`register_notification_target`). Every read of the inbox (list, count, mark read, the
e-mail task) keeps only the notifications whose target the reader may see *now*: a person
who lost access to a private design no longer sees what they were told about it, and a
target type nobody registered is hidden (fail closed).

E-mail goes out from a background task after the commit, when the recipient has an
address, the hub sends mail (FABHUB_EMAIL_NOTIFICATIONS) and their preference for the
kind (NotificationPreference, else EMAIL_BY_DEFAULT) says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from hub import mail
from hub.exceptions import ValidationError
from hub.models import Notification, NotificationKind, NotificationPreference, User
from hub.queue import enqueue

Kind = NotificationKind

# Everything a person is told about their own things or their own conversations is
# e-mailed unless they say otherwise; news of designs they merely watch is not.
EMAIL_BY_DEFAULT: dict[str, bool] = {kind: kind != Kind.RELEASE for kind in Kind.values}

# target type -> the rows of that type a person may see (a query of the target's model,
# whose pk is the target id), or None: a target that is always the recipient's to see
# (their booking, their lab's news).
VisibleIds = Callable[[User], "QuerySet[Any]"]
_targets: dict[str, VisibleIds | None] = {}


def register_notification_target(type_name: str, *, visible_ids: VisibleIds | None) -> None:
    """Declare a kind of target ("designs.design") and who may still see one. Called from
    an AppConfig.ready; registering a name twice replaces the rule (tests reload apps)."""
    _targets[type_name] = visible_ids


def _visible(rows: QuerySet[Notification], user: User) -> QuerySet[Notification]:
    """`rows` narrowed to the notifications whose target `user` may see now: one query,
    each target type a correlated EXISTS. Correlated, not `target_id IN (…)`: the set of
    designs a person may see holds every public design, and the navigation asks this on
    every page; EXISTS looks up only the targets of the rows read."""
    allowed = Q(target_type="")
    for type_name, visible_ids in _targets.items():
        if visible_ids is None:
            allowed |= Q(target_type=type_name)
        else:
            seen = Exists(visible_ids(user).filter(pk=OuterRef("target_id")))
            allowed |= Q(seen, target_type=type_name)
    return rows.filter(allowed)


# -- writing --------------------------------------------------------------------------------


def notify(
    *,
    recipient: User,
    kind: str,
    subject: str,
    body: str = "",
    actor: User | None = None,
    link: str = "",
    target_type: str = "",
    target_id: int | None = None,
) -> Notification | None:
    """Tell `recipient`; None when they are the actor (nobody is told of their own act)."""
    if actor is not None and actor.pk == recipient.pk:
        return None
    if kind not in Kind.values:
        raise ValueError(f"Unknown notification kind {kind!r}.")
    if target_type and target_type not in _targets:
        raise ValueError(f"No app registered notification target {target_type!r}.")
    if link and not link.startswith("/"):
        raise ValueError(f"A notification's link is a path on this hub, not {link!r}.")
    note = Notification.objects.create(
        recipient=recipient,
        kind=kind,
        actor=actor,
        subject=subject[:200],
        body=body,
        link=link[:500],
        target_type=target_type,
        target_id=target_id,
    )
    if settings.FABHUB_EMAIL_NOTIFICATIONS and recipient.email:
        enqueue("hub.tasks.send_notification_email", note.pk)
    return note


def notify_each(
    *,
    recipients: Iterable[User],
    kind: str,
    subject: str,
    body: str = "",
    actor: User | None = None,
    link: str = "",
    target_type: str = "",
    target_id: int | None = None,
) -> list[Notification]:
    """`notify` once per distinct recipient, the actor left out."""
    seen: set[int] = set()
    notes = []
    for recipient in recipients:
        if recipient.pk in seen:
            continue
        seen.add(recipient.pk)
        note = notify(
            recipient=recipient,
            kind=kind,
            subject=subject,
            body=body,
            actor=actor,
            link=link,
            target_type=target_type,
            target_id=target_id,
        )
        if note is not None:
            notes.append(note)
    return notes


def notification_mark_read(*, user: User, notification_id: int | None = None) -> int:
    """Mark one of `user`'s notifications (or all of them) read; how many changed. Only
    those `user` may still see: a hidden one cannot be probed by its id."""
    rows = _visible(Notification.objects.filter(recipient=user, read_at__isnull=True), user)
    if notification_id is not None:
        rows = rows.filter(pk=notification_id)
    # The visibility filter holds subqueries, which an UPDATE on SQLite cannot take with
    # its own table in them: update by the ids it selects.
    return Notification.objects.filter(pk__in=list(rows.values_list("pk", flat=True))).update(
        read_at=timezone.now()
    )


@transaction.atomic
def notification_preferences_set(*, user: User, email: dict[str, bool]) -> dict[str, bool]:
    """Set which kinds are e-mailed to `user`; kinds not named keep their setting."""
    unknown = sorted(set(email) - set(Kind.values))
    if unknown:
        raise ValidationError(f"No notification kind {', '.join(map(repr, unknown))}.")
    for kind, wanted in email.items():
        NotificationPreference.objects.update_or_create(
            user=user, kind=kind, defaults={"email": bool(wanted)}
        )
    return notification_preferences(user)


def notification_email_send(*, notification_id: int) -> bool:
    """E-mail one notification if it is still to be sent: its recipient has an address,
    wants this kind by e-mail and may still see what it is about. True if sent."""
    note = Notification.objects.select_related("recipient").filter(pk=notification_id).first()
    if note is None or not note.recipient.email or not settings.FABHUB_EMAIL_NOTIFICATIONS:
        return False
    recipient = note.recipient
    if not notification_preferences(recipient).get(note.kind, False):
        return False
    if not _visible(Notification.objects.filter(pk=note.pk), recipient).exists():
        return False
    body = note.body or note.subject
    if note.link:
        root = settings.FABHUB_PUBLIC_URL.rstrip("/")
        body = f"{body}\n\n{root}{note.link}" if root else f"{body}\n\n{note.link}"
    return mail.send(to=recipient.email, subject=note.subject, body=body)


# -- reading ----------------------------------------------------------------------------------


def notifications_of(user: User, *, unread: bool = False) -> QuerySet[Notification]:
    """`user`'s inbox, newest first, without what they may no longer see."""
    rows = Notification.objects.filter(recipient=user).select_related("actor")
    if unread:
        rows = rows.filter(read_at__isnull=True)
    return _visible(rows, user)


def notifications_unread_count(user: User) -> int:
    return _visible(Notification.objects.filter(recipient=user, read_at__isnull=True), user).count()


def notification_preferences(user: User) -> dict[str, bool]:
    """Every kind -> whether it is e-mailed to `user` (their choice, else the default)."""
    chosen = dict(NotificationPreference.objects.filter(user=user).values_list("kind", "email"))
    return {kind: chosen.get(kind, EMAIL_BY_DEFAULT[kind]) for kind in Kind.values}
