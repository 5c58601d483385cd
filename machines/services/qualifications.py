"""Qualifications: who has been trained on which machine, or kind of machine, until when."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime

from django.db import transaction
from django.utils import timezone

from hub.exceptions import PermissionDenied, ValidationError
from hub.models import User
from machines import selectors
from machines.models import Lab, Machine, Qualification
from machines.records import qualification_credential_issue, qualification_credential_revoke
from machines.selectors import lab_role, require_manager
from machines.services.timeline import timelines_lock


@transaction.atomic
def qualification_record(
    *,
    lab: Lab,
    actor: User,
    member: User,
    trained_on,
    machine: Machine | None = None,
    kind: str = "",
    trainer: User | None = None,
    expires_on=None,
) -> Qualification:
    require_manager(lab, actor)
    if lab_role(lab, member) not in ("member", "manager"):
        raise ValidationError(f"{member.username} is not a member of {lab.name}.")
    if (machine is None) == (not kind):
        raise ValidationError("Give either a machine or a kind of machine, not both.")
    if machine is not None and machine.lab_id != lab.pk:
        raise ValidationError(f"{machine.name} is not a machine of {lab.name}.")
    if kind and kind not in Machine.Kind.values:
        raise ValidationError(f"{kind!r} is not a kind of machine.")
    if expires_on is not None and expires_on < trained_on:
        raise ValidationError("The qualification expires before the training date.")
    qualification = Qualification.objects.create(
        lab=lab,
        member=member,
        machine=machine,
        kind=kind,
        trained_on=trained_on,
        trainer=trainer or actor,
        expires_on=expires_on,
        recorded_by=actor,
    )
    # The member's portable proof of it, signed now (hub.records).
    qualification_credential_issue(qualification)
    return qualification


@transaction.atomic
def qualification_revoke(*, qualification: Qualification, actor: User, reason: str = "") -> None:
    """The member is no longer qualified; the signed record of it is revoked, so a
    verifier that checks online sees it too."""
    require_manager(qualification.lab, actor)
    # A booking racing the revocation commits first (the start check then cancels it) or is refused.
    machines = None if qualification.machine_id is None else [qualification.machine_id]
    timelines_lock(lab_id=qualification.lab_id, machine_ids=machines)
    qualification_credential_revoke(
        qualification,
        reason=reason or f"Withdrawn by {qualification.lab.name} on {timezone.localdate():%Y-%m-%d}.",
    )
    qualification.delete()


def require_qualified(
    member: User, machine: Machine, start: datetime, *, held: Collection[Qualification] | None = None
) -> None:
    """`held`: the member's qualifications for the machine or its kind, when the caller
    has read them already (`selectors.booking_context`)."""
    if not machine.requires_qualification:
        return
    lab = machine.lab
    today = timezone.now().astimezone(lab.zone).date()
    on_start = start.astimezone(lab.zone).date()

    def valid_on(day: date) -> bool:
        if held is None:
            return selectors.qualification_for(member, machine, day) is not None
        return any(q.valid_on(day) for q in held)

    if not valid_on(today):
        raise PermissionDenied(
            f"{machine.name} needs a training: ask a manager of {lab.name} to record your qualification."
        )
    if not valid_on(on_start):
        raise PermissionDenied(f"Your qualification for {machine.name} expires before {on_start:%d %b %Y}.")
