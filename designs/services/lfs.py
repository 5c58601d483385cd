"""Git LFS writes: which design serves which object, uploads, locks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO

from django.conf import settings
from django.db import IntegrityError, transaction

from designs import paths
from designs.lfs_store import StoreError, lfs_store
from designs.models import Design, DesignLfsObject, LfsLock, LfsObject
from designs.selectors import design_role, lfs_objects_readable, lfs_objects_served, require_writer
from hub.exceptions import Conflict, NotFound, PermissionDenied, TooLarge, ValidationError
from hub.models import User

MAX_LOCK_PATH_BYTES = 1024
LINK_BATCH = 500


def lfs_object_link(*, design: Design, oid: str, size: int) -> None:
    """Let `design` serve the stored object `oid` (uploaded for it, or proven readable)."""
    with transaction.atomic():
        lfs_object, _ = LfsObject.objects.get_or_create(oid=oid, defaults={"size": size})
        DesignLfsObject.objects.get_or_create(design=design, lfs_object=lfs_object)


def lfs_objects_link(*, design: Design, objects: Sequence[tuple[str, int]]) -> None:
    """`lfs_object_link` for each of `objects` (oid, size), three statements per
    LINK_BATCH objects where it takes about ten per object (an archive import links a
    design's every object at once). Rows that exist already are kept, as get_or_create
    keeps them; the oids are the caller's to have checked (SQLite's INSERT OR IGNORE
    would skip a row its CHECK constraints refuse rather than raise)."""
    wanted = dict(objects)
    oids = list(wanted)
    with transaction.atomic():
        # Batches keep each statement under SQLite's limit on parameters.
        for start in range(0, len(oids), LINK_BATCH):
            batch = oids[start : start + LINK_BATCH]
            LfsObject.objects.bulk_create(
                [LfsObject(oid=oid, size=wanted[oid]) for oid in batch], ignore_conflicts=True
            )
            found = LfsObject.objects.filter(oid__in=batch).values_list("pk", flat=True)
            DesignLfsObject.objects.bulk_create(
                [DesignLfsObject(design=design, lfs_object_id=pk) for pk in found], ignore_conflicts=True
            )


def lfs_objects_present(*, design: Design, user: User, objects: Sequence[tuple[str, int]]) -> set[str]:
    """The oids among `objects` (oid, size) that a push to `design` need not upload.

    Those the design serves already, and those `user` can read in another design: the
    upload would only prove they have bytes they may read anyway, so the object is linked
    on the spot. Any other oid must be uploaded, even if the store has it, because knowing
    an oid (it is in every pointer file) must not be enough to get its content.
    """
    require_writer(design, user)
    store = lfs_store()
    wanted = dict(objects)
    served = lfs_objects_served(design, wanted)
    present = {oid for oid, size in wanted.items() if served.get(oid) == size and store.exists(oid)}
    elsewhere = lfs_objects_readable(user, [oid for oid in wanted if oid not in present])
    for oid, size in elsewhere.items():
        if wanted[oid] == size and store.exists(oid):
            lfs_object_link(design=design, oid=oid, size=size)
            present.add(oid)
    return present


def lfs_lock_create(*, design: Design, user: User, path: str) -> LfsLock:
    """Lock `path` for `user` (`git lfs lock`); Conflict (with `lock_id`) if it is held."""
    require_writer(design, user)
    path = paths.clean_path(path)
    if len(path.encode()) > MAX_LOCK_PATH_BYTES:
        # PostgreSQL cannot index much longer keys for the one-lock-per-path constraint.
        raise ValidationError(f"Paths longer than {MAX_LOCK_PATH_BYTES} bytes cannot be locked.")
    try:
        with transaction.atomic():
            return LfsLock.objects.create(design=design, path=path, owner=user)
    except IntegrityError:
        held = LfsLock.objects.filter(design=design, path=path).values_list("pk", flat=True).first()
        raise Conflict(f"{path} is already locked.", lock_id=held) from None


def lfs_lock_release(*, design: Design, user: User, lock_id: int, force: bool = False) -> LfsLock:
    """Remove a lock: its holder may, and with `force` the design's owner may."""
    require_writer(design, user)
    lock = LfsLock.objects.select_related("owner").filter(design=design, pk=lock_id).first()
    if lock is None:
        raise NotFound(f"There is no lock {lock_id}.")
    if lock.owner_id != user.pk:
        if not force:
            raise PermissionDenied(
                f"{lock.path} is locked by {lock.owner.username}; use --force to unlock it."
            )
        if design_role(design, user) != "owner":
            raise PermissionDenied(f"Only the owner of {design.full_name} can break another person's lock.")
    # Conditional delete: of two racing unlocks, one gets NotFound rather than both "succeeding".
    deleted, _ = LfsLock.objects.filter(pk=lock.pk).delete()
    if not deleted:
        raise NotFound(f"Lock {lock_id} was just removed.")
    return lock


def lfs_object_upload(*, design: Design, user: User, oid: str, size: int, stream: IO[bytes]) -> None:
    """Store an object pushed for `design`: refused, leaving nothing behind, unless the
    stream is exactly `size` bytes whose sha256 is `oid`."""
    require_writer(design, user)
    limit = settings.FABHUB_MAX_LFS_OBJECT_BYTES
    if size > limit:
        raise TooLarge(f"Object {oid} is {size:,} bytes; the limit is {limit:,} bytes.", limit=limit)
    try:
        lfs_store().save(oid, size, stream)
    except StoreError as exc:
        raise ValidationError(str(exc)) from exc
    lfs_object_link(design=design, oid=oid, size=size)
