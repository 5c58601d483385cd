"""The signed records machines issues (hub.records, docs/portability.md): a qualification a
lab granted, and a make for every print that finished on a lab's printer.

Both are signed in the transaction that records the event (a rolled-back event signs
nothing) and carry copies of the names (lab, machine,
design), so they mean the same after the rows they came from are gone.
"""

from __future__ import annotations

from datetime import date, datetime, time

from django.urls import reverse
from django.utils import timezone

from designs.selectors import designs_visible_to
from hub import records
from hub.auth import Viewer
from hub.models import Credential
from machines.models import Lab, PrintRecord, Qualification

QUALIFICATION = "machines.qualification"
PRINT_RECORD = "machines.printrecord"


def qualification_source(qualification: Qualification) -> str:
    return f"{QUALIFICATION}:{qualification.pk}"


def print_record_source(record: PrintRecord) -> str:
    return f"{PRINT_RECORD}:{record.pk}"


def _lab_url(lab: Lab) -> str:
    return records.hub_root() + reverse("lab-detail", args=[lab.slug]).lstrip("/")


def _as_date(value: date | str | None) -> date | None:
    """A DateField's value as given to `create()`, which may still be its ISO text."""
    return date.fromisoformat(value) if isinstance(value, str) else value


def qualification_credential_issue(qualification: Qualification) -> Credential:
    lab = qualification.lab
    trained_on, expires_on = _as_date(qualification.trained_on), _as_date(qualification.expires_on)
    assert trained_on is not None
    trained_for = qualification.machine.name if qualification.machine else qualification.get_kind_display()
    zone_midnight = timezone.make_aware(datetime.combine(trained_on, time.min), lab.zone)
    until = (
        timezone.make_aware(datetime.combine(expires_on, time.max.replace(microsecond=0)), lab.zone)
        if expires_on
        else None
    )
    details = {
        "lab": lab.name,
        "labUrl": _lab_url(lab),
        "trainedFor": trained_for,
        "machine": qualification.machine.name if qualification.machine else None,
        "kind": qualification.kind or (qualification.machine.kind if qualification.machine else ""),
        "trainedOn": trained_on.isoformat(),
        "expiresOn": expires_on.isoformat() if expires_on else None,
        "trainer": qualification.trainer.username if qualification.trainer else None,
    }
    return records.credential_issue(
        kind=Credential.Kind.QUALIFICATION,
        source=qualification_source(qualification),
        subject=qualification.member,
        name=f"Qualified on {trained_for} at {lab.name}",
        description=f"{lab.name} recorded that {qualification.member.username} is trained to use {trained_for}.",
        achievement_type="License",
        details=details,
        valid_from=zone_midnight,
        valid_until=until,
    )


def qualification_credential_revoke(qualification: Qualification, *, reason: str) -> None:
    records.credential_revoke(source=qualification_source(qualification), reason=reason)


def print_record_credential_issue(record: PrintRecord) -> Credential | None:
    """A make for a print that finished; a failed or cancelled print made nothing, and a
    print whose owner has left has nobody to name."""
    if record.result != PrintRecord.Result.DONE or record.owner is None:
        return None
    details = {
        "design": record.design_name,
        "designUrl": records.hub_root() + record.design_name + "/" if record.design_name else None,
        "commit": record.commit_sha or None,
        "path": record.path,
        "blob": record.blob_sha or None,
        "gcodeSha256": record.gcode_sha or None,
        "slicer": record.slicer or None,
        "profile": record.profile_name or None,
        "material": record.material or None,
        "lab": record.lab.name,
        "labUrl": _lab_url(record.lab),
        "machine": record.machine_name,
        "outcome": "works",
        "madeOn": timezone.localtime(record.ended_at, record.lab.zone).date().isoformat(),
    }
    what = record.design_name or record.path
    return records.credential_issue(
        kind=Credential.Kind.MAKE,
        source=print_record_source(record),
        subject=record.owner,
        name=f"Made {what}",
        description=f"Printed {record.path} of {what} on {record.machine_name} at {record.lab.name}.",
        achievement_type="Achievement",
        details=details,
        valid_from=record.ended_at,
    )


# -- who may see them (registered with hub.records by machines.apps) -----------------------


def _object_id(credential: Credential) -> int | None:
    tail = credential.source.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else None


def qualification_visible(credential: Credential, viewer: Viewer) -> bool:
    """A lab's qualifications are public, as its members list is to its members and the
    person's profile is to all."""
    return True


def print_record_visible(credential: Credential, viewer: Viewer) -> bool:
    """As visible as the design printed: a print of a private design is private."""
    record_id = _object_id(credential)
    record = PrintRecord.objects.filter(pk=record_id).only("design_id").first() if record_id else None
    if record is None or record.design_id is None:
        return False
    return designs_visible_to(viewer).filter(pk=record.design_id).exists()


def qualifications_backfill() -> int:
    issued = 0
    have = set(
        Credential.objects.filter(
            source__startswith=QUALIFICATION + ":", revoked_at__isnull=True
        ).values_list("source", flat=True)
    )
    for qualification in Qualification.objects.select_related("lab", "member", "machine", "trainer"):
        if qualification_source(qualification) not in have:
            qualification_credential_issue(qualification)
            issued += 1
    return issued


def print_records_backfill() -> int:
    issued = 0
    have = set(
        Credential.objects.filter(source__startswith=PRINT_RECORD + ":").values_list("source", flat=True)
    )
    done = PrintRecord.objects.filter(result=PrintRecord.Result.DONE, owner__isnull=False)
    for record in done.select_related("lab", "owner"):
        if print_record_source(record) not in have and print_record_credential_issue(record):
            issued += 1
    return issued


def register() -> None:
    records.register_credential_source(
        records.CredentialSource(
            QUALIFICATION, can_view=qualification_visible, backfill=qualifications_backfill
        )
    )
    records.register_credential_source(
        records.CredentialSource(PRINT_RECORD, can_view=print_record_visible, backfill=print_records_backfill)
    )
