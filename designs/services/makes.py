"""Makes: a person's "I made one" of a design at one exact commit, issued as a signed record
(hub.records, docs/portability.md). Print records of the lab print queue are makes too;
machines issues those."""

from __future__ import annotations

import hashlib
import re
from datetime import date, timedelta
from typing import IO

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from designs import selectors
from designs.models import Design, Make
from hub import records
from hub.exceptions import NotFound, PermissionDenied, ValidationError
from hub.images import photo_clean
from hub.models import Credential, User

MAX_NOTES_CHARS = 4000
MAX_WHERE_CHARS = 200
SHA = re.compile(r"[0-9a-f]{40}")
# Makes older than the hub's idea of open hardware are typing mistakes, not history.
EARLIEST_MADE_ON = date(1970, 1, 1)


def _check_fields(*, notes: str, where: str, outcome: str, made_on: date) -> None:
    if len(notes) > MAX_NOTES_CHARS:
        raise ValidationError(f"Notes are at most {MAX_NOTES_CHARS:,} characters; these are {len(notes):,}.")
    if len(where) > MAX_WHERE_CHARS:
        raise ValidationError(f"'Where' is at most {MAX_WHERE_CHARS} characters; it is {len(where)}.")
    if outcome not in Make.Outcome.values:
        raise ValidationError(f"The outcome is one of {', '.join(Make.Outcome.values)}, not {outcome!r}.")
    # A day of slack: the maker's calendar may be ahead of the hub's.
    if made_on > timezone.localdate() + timedelta(days=1):
        raise ValidationError(f"{made_on.isoformat()} is in the future: give the day you made it.")
    if made_on < EARLIEST_MADE_ON:
        raise ValidationError(f"{made_on.isoformat()} is too long ago: give the day you made it.")


def _check_version(design: Design, *, commit_sha: str, path: str) -> None:
    if not SHA.fullmatch(commit_sha) or design.repo.resolve(commit_sha) != commit_sha:
        raise ValidationError(f"{design.full_name} has no commit {commit_sha[:40]!r}.")
    if path and design.repo.entry(commit_sha, path) is None:
        raise ValidationError(f"There is no {path!r} in {design.full_name} at {commit_sha[:10]}.")


def make_credential_issue(make: Make, *, photo_sha256: str | None) -> Credential:
    design = make.design
    design_url = records.hub_root() + reverse(
        "design-detail", args=[design.owner.username, design.slug]
    ).lstrip("/")
    what = f"{make.path} of {design.full_name}" if make.path else design.full_name
    details = {
        "design": design.full_name,
        "designUrl": design_url,
        "commit": make.commit_sha,
        "path": make.path or None,
        "outcome": make.outcome,
        "where": make.where or None,
        "madeOn": make.made_on.isoformat(),
        "photoSha256": photo_sha256,
    }
    return records.credential_issue(
        kind=Credential.Kind.MAKE,
        source=selectors.make_source(make),
        subject=make.maker,
        name=f"Made {design.full_name}",
        description=(
            f"{make.maker.username} made {what} at commit {make.commit_sha[:10]}: "
            f"{make.get_outcome_display().lower()}."
        ),
        achievement_type="Achievement",
        details=details,
    )


@transaction.atomic
def make_create(
    *,
    design: Design,
    maker: User,
    commit_sha: str,
    path: str = "",
    photo: IO[bytes] | None = None,
    notes: str = "",
    where: str = "",
    outcome: str = Make.Outcome.WORKS,
    made_on: date | None = None,
) -> Make:
    """Record that `maker` made `design` (or the part at `path`) at `commit_sha`, and sign it.

    The photo is checked and re-encoded without its metadata (hub.images.photo_clean)
    before anything is stored; a refused photo stores nothing.
    """
    if selectors.design_role(design, maker) is None:
        raise NotFound(f"No design {design.full_name}.")
    made_on = made_on or timezone.localdate()
    path = path.strip("/")
    _check_fields(notes=notes, where=where, outcome=outcome, made_on=made_on)
    _check_version(design, commit_sha=commit_sha, path=path)
    cleaned = photo_clean(photo, name=getattr(photo, "name", "photo")) if photo is not None else None
    make = Make.objects.create(
        design=design,
        maker=maker,
        commit_sha=commit_sha,
        path=path,
        notes=notes,
        where=where,
        outcome=outcome,
        made_on=made_on,
    )
    make_credential_issue(make, photo_sha256=cleaned.sha256 if cleaned else None)
    if cleaned is not None:
        # Last, so that a refusal above leaves no file behind.
        make.photo.save(cleaned.content.name or "photo.jpg", cleaned.content, save=False)
        make.save(update_fields=["photo"])
    return make


@transaction.atomic
def make_delete(*, make: Make, actor: User) -> None:
    """The maker deletes their make; its signed record is revoked (verifiers see it)."""
    if make.maker_id != actor.pk:
        raise PermissionDenied("Only the person who made it can delete a make.")
    source = selectors.make_source(make)
    photo = make.photo.name
    storage = make.photo.storage
    make.delete()
    records.credential_revoke(source=source, reason="The maker deleted the make.")
    if photo:
        transaction.on_commit(lambda: storage.delete(photo))


def _stored_sha256(make: Make) -> str | None:
    if not make.photo:
        return None
    try:
        with make.photo.open("rb") as stored:
            return hashlib.file_digest(stored, "sha256").hexdigest()
    except OSError:
        return None


def makes_backfill() -> int:
    """Sign the makes that have no record (made before the hub signed them)."""
    have = set(
        Credential.objects.filter(
            source__startswith=selectors.MAKE_SOURCE + ":", revoked_at__isnull=True
        ).values_list("source", flat=True)
    )
    issued = 0
    for make in Make.objects.select_related("design__owner", "maker"):
        if selectors.make_source(make) not in have:
            make_credential_issue(make, photo_sha256=_stored_sha256(make))
            issued += 1
    return issued
