"""Files attached to releases (docs/releases.md): upload, delete, and the clean-up after
a tag is deleted.

A release is an annotated tag (designs/services/commits.py makes and deletes them); its
files are `ReleaseAsset` rows whose bytes live in the content-addressed store of Git LFS
objects (designs.lfs_store), written through the store's own hashing, size-checking
path. A file's name is taken once per release: uploading a second file under a name in
use is a 409, and replacing a file means deleting it first, so a download link never
changes its bytes silently.
"""

from __future__ import annotations

import unicodedata
from typing import IO

from django.conf import settings
from django.db import IntegrityError, transaction

from designs.lfs_store import StoreError, lfs_store
from designs.models import Design, LfsObject, ReleaseAsset
from designs.selectors import release_asset_get, require_writer
from hub.exceptions import Conflict, NotFound, TooLarge, ValidationError
from hub.models import User

MAX_NAME_CHARS = 255
MAX_TAG_CHARS = 255  # ReleaseAsset.tag
MAX_CONTENT_TYPE_CHARS = 100
# Unicode's control (Cc), format (Cf: the bidirectional overrides that make "exe.pdf"
# read as "fdp.exe"), surrogate and private-use characters: none belongs in a file name.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co"})


def release_asset_name_check(name: str) -> str:
    """`name` as a release file is stored (NFC), or a 400 saying what is wrong with it."""
    name = unicodedata.normalize("NFC", name or "")
    if not name.strip():
        raise ValidationError("Give the file a name.", field="name")
    if len(name) > MAX_NAME_CHARS:
        raise ValidationError(
            f"The file name is {len(name):,} characters long; the limit is {MAX_NAME_CHARS}.", field="name"
        )
    if "/" in name or "\\" in name:
        raise ValidationError("A release file's name cannot contain '/' or '\\'.", field="name")
    if name in (".", ".."):
        raise ValidationError(f"{name!r} is not a file name.", field="name")
    if name != name.strip():
        raise ValidationError("A release file's name cannot start or end with a space.", field="name")
    if any(unicodedata.category(char) in REFUSED_CATEGORIES for char in name):
        raise ValidationError(
            "A release file's name cannot contain control or invisible formatting characters.", field="name"
        )
    return name


def _require_tag(design: Design, tag: str) -> None:
    if len(tag) > MAX_TAG_CHARS:
        raise ValidationError(
            f"Files can be attached only to releases whose tag is at most {MAX_TAG_CHARS} characters."
        )
    if "\0" in tag or design.repo.resolve_ref(f"refs/tags/{tag}") is None:
        raise NotFound(f"There is no release {tag!r}.")


def release_asset_upload(
    *,
    design: Design,
    user: User,
    tag: str,
    name: str,
    content: IO[bytes],
    content_type: str,
    size: int | None = None,
) -> ReleaseAsset:
    """Attach `content` to release `tag` of `design` as `name`.

    Only writers may. `content` is read in chunks into the object store, which hashes it
    and stops one byte past FABHUB_RELEASE_ASSET_MAX_BYTES (a 413): it is never held in
    memory whole. `size`, when the caller knows it (an upload spooled to disk), refuses
    an oversized file before reading it. A release holds at most
    FABHUB_RELEASE_ASSET_MAX_COUNT files; a name already in use is a 409.
    """
    require_writer(design, user)
    name = release_asset_name_check(name)
    _require_tag(design, tag)
    limit = settings.FABHUB_RELEASE_ASSET_MAX_BYTES
    if size is not None and size > limit:
        raise TooLarge(
            f"{name} is {size:,} bytes; a release file may be at most {limit:,} bytes.", limit=limit
        )
    # The same checks run again under the lock below; here they spare storing a file
    # that would be refused.
    _check_room(design, tag, name)
    try:
        pointer = lfs_store().add(content, max_size=limit)
    except StoreError as exc:
        raise TooLarge(f"{name}: {exc}", limit=limit) from exc
    with transaction.atomic():
        # One writer at a time per design, so that two uploads cannot both take the last
        # place, and so that a tag deleted while the file streamed in (its files pruned
        # under this lock) is seen here rather than leaving a file for a later tag of the
        # same name.
        Design.objects.select_for_update().filter(pk=design.pk).first()
        try:
            _require_tag(design, tag)
            _check_room(design, tag, name)
        except (Conflict, NotFound):
            _forget_unused(pointer.oid)
            raise
        if not lfs_store().exists(pointer.oid):
            # A refused upload of the same bytes deleted them (under this lock) meanwhile.
            raise Conflict(f"{name} was not stored completely: send it again.")
        LfsObject.objects.get_or_create(oid=pointer.oid, defaults={"size": pointer.size})
        try:
            with transaction.atomic():
                return ReleaseAsset.objects.create(
                    design=design,
                    tag=tag,
                    name=name,
                    sha256=pointer.oid,
                    size=pointer.size,
                    content_type=(content_type or "application/octet-stream")[:MAX_CONTENT_TYPE_CHARS],
                    uploaded_by=user,
                )
        except IntegrityError:
            raise _name_taken(tag, name) from None


def _forget_unused(oid: str) -> None:
    # A refused upload's bytes go, unless something knows the object: a release file, or
    # an LfsObject row (a Git LFS upload, or an earlier release file), which keeps it.
    if not (ReleaseAsset.objects.filter(sha256=oid).exists() or LfsObject.objects.filter(oid=oid).exists()):
        lfs_store().delete(oid)


def _name_taken(tag: str, name: str) -> Conflict:
    return Conflict(f"Release {tag} already has a file named {name!r}: delete it first to replace it.")


def _check_room(design: Design, tag: str, name: str) -> None:
    files = ReleaseAsset.objects.filter(design=design, tag=tag)
    if files.filter(name=name).exists():
        raise _name_taken(tag, name)
    limit = settings.FABHUB_RELEASE_ASSET_MAX_COUNT
    if files.count() >= limit:
        raise Conflict(f"Release {tag} has {limit} files, the most a release may hold.")


def release_asset_delete(*, design: Design, user: User, tag: str, name: str) -> None:
    """Remove file `name` from release `tag`. Its bytes stay in the store, which may hold
    them for other files or Git LFS objects (objects are named by content)."""
    require_writer(design, user)
    asset = release_asset_get(design, tag=tag, name=name)
    # Conditional delete: of two racing deletes, one gets NotFound rather than both succeeding.
    deleted, _ = ReleaseAsset.objects.filter(pk=asset.pk).delete()
    if not deleted:
        raise NotFound(f"{name} was just removed from {tag}.")


def release_assets_prune(*, design: Design) -> int:
    """Delete the files of `design`'s releases whose tag is gone (deleted on a page, by the
    API or by a push, or by a mirror's refresh); how many. A tag made again under the
    same name starts without files."""
    attached = ReleaseAsset.objects.filter(design=design)
    with transaction.atomic():
        # Under the lock uploads take: an upload that checked its tag before the tag went
        # has committed its file by now, and the tags read below see that tag gone.
        Design.objects.select_for_update().filter(pk=design.pk).first()
        if not attached.exists():
            return 0
        tags = {ref.removeprefix("refs/tags/") for ref in design.repo.ref_names("refs/tags/")}
        gone = set(attached.values_list("tag", flat=True).distinct()) - tags
        if not gone:
            return 0
        deleted, _ = attached.filter(tag__in=gone).delete()
    return deleted
