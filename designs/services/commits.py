"""Writes to designs: creating, committing, branching, tagging, forking, sharing."""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.files import File
from django.db import IntegrityError, transaction
from django.utils import timezone

from designs import paths
from designs.git import FileEdit, GitError, Person, RefMoved, Repository, valid_ref_name
from designs.lfs_store import LFS_ATTRIBUTES, Pointer, StoreError, lfs_store, pointer_text
from designs.models import (
    Collaborator,
    Design,
    DesignLfsObject,
    LfsLock,
    LfsObject,
    Tag,
    repo_path,
    slug_validator,
)
from designs.selectors import design_can_write, design_role, lfs_objects_readable, lfs_objects_served
from hub.exceptions import Conflict, NotFound, PermissionDenied, TooLarge, ValidationError
from hub.models import User

logger = logging.getLogger(__name__)

# How many times a commit is rebuilt on a branch that moved under it before giving up.
MAX_COMMIT_ATTEMPTS = 20


def person_for(user: User) -> Person:
    email = user.email or f"{user.username}@users.noreply.fabhub"
    return Person(user.get_full_name() or user.username, email)


def _clean_tags(names: Sequence[str]) -> list[Tag]:
    tags = []
    for name in names:
        slug = name.strip().lower().replace(" ", "-")
        if slug:
            tags.append(Tag.objects.get_or_create(name=slug[:50])[0])
    return tags


def _check_slug(slug: str) -> None:
    from django.core.exceptions import ValidationError as DjangoValidationError

    try:
        slug_validator(slug)
    except DjangoValidationError as exc:
        raise ValidationError(f"Invalid design name {slug!r}: {exc.messages[0]}") from exc
    if slug.endswith(".git"):
        raise ValidationError("A design name cannot end in '.git'.")


def design_create(
    *,
    owner: User,
    slug: str,
    title: str,
    licence: str,
    summary: str = "",
    visibility: str = Design.Visibility.PUBLIC,
    tags: Sequence[str] = (),
    default_branch: str = "main",
) -> Design:
    _check_slug(slug)
    if not valid_ref_name("heads", default_branch):
        raise ValidationError(f"{default_branch!r} is not a valid branch name.")
    if Design.objects.filter(owner=owner, slug__iexact=slug).exists():
        raise Conflict(f"You already have a design named {slug!r}.")
    path = repo_path(owner.username, slug)
    if path.exists():
        raise Conflict(f"A repository for {owner.username}/{slug} already exists on disk.")
    design = Design(
        owner=owner,
        slug=slug,
        title=title or slug,
        summary=summary,
        licence=licence,
        visibility=visibility,
        default_branch=default_branch,
    )
    try:
        with transaction.atomic():
            design.save()
            design.tags.set(_clean_tags(tags))
            Repository.init_bare(path, default_branch=default_branch)
    except IntegrityError as exc:
        shutil.rmtree(path, ignore_errors=True)
        raise Conflict(f"You already have a design named {slug!r}.") from exc
    except Exception:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return design


def design_update(
    *,
    design: Design,
    title: str | None = None,
    summary: str | None = None,
    licence: str | None = None,
    visibility: str | None = None,
    tags: Sequence[str] | None = None,
    default_branch: str | None = None,
    allow_default_branch_rewrite: bool | None = None,
) -> Design:
    if licence is not None and licence != design.licence and design.is_fork:
        raise ValidationError(
            f"A fork keeps the licence of the design it was forked from ({design.licence})."
        )
    if default_branch is not None and default_branch != design.default_branch:
        if design.repo.branch_head(default_branch) is None:
            raise ValidationError(f"There is no branch {default_branch!r}.")
        design.repo.set_default_branch(default_branch)
        design.default_branch = default_branch
    for name, value in (
        ("title", title),
        ("summary", summary),
        ("licence", licence),
        ("visibility", visibility),
        ("allow_default_branch_rewrite", allow_default_branch_rewrite),
    ):
        if value is not None:
            setattr(design, name, value)
    design.updated_at = timezone.now()
    design.save()
    if tags is not None:
        design.tags.set(_clean_tags(tags))
    return design


def design_delete(*, design: Design) -> None:
    path = design.repo_path
    design.delete()
    transaction.on_commit(lambda: shutil.rmtree(path, ignore_errors=True))


# -- commits ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """A file to put at `path`. `content` is an open file (Django upload or any file object)."""

    path: str
    content: File


@dataclass(frozen=True)
class Rename:
    old_path: str
    new_path: str


def _store_uploads(design: Design, uploads: Sequence[Upload]) -> tuple[list[str], set[int]]:
    """Write uploads as blobs with one git process; spool in-memory ones to disk first.

    Uploads over FABHUB_LFS_THRESHOLD_BYTES go to the LFS store instead and their blob is
    the pointer, so a browser never puts a 200 MB file into git history. Returns the blob
    shas in order and the indexes of the uploads stored with LFS.
    """
    limit = settings.FABHUB_MAX_UPLOAD_BYTES
    threshold = settings.FABHUB_LFS_THRESHOLD_BYTES
    for upload in uploads:
        if upload.content.size is not None and upload.content.size > limit:
            raise TooLarge(
                f"{upload.path} is {upload.content.size:,} bytes; the limit per file is "
                f"{limit:,} bytes ({limit // (1024 * 1024)} MB).",
                limit=limit,
            )
    with tempfile.TemporaryDirectory(prefix="fabhub-upload-") as tmp:
        files: list[Path] = []
        in_lfs: set[int] = set()
        for index, upload in enumerate(uploads):
            if (upload.content.size or 0) > threshold and _may_use_lfs(upload.path):
                pointer = _lfs_object_from_upload(design, upload)
                spooled = Path(tmp) / str(index)
                spooled.write_bytes(pointer_text(pointer.oid, pointer.size))
                files.append(spooled)
                in_lfs.add(index)
                continue
            on_disk = getattr(upload.content, "temporary_file_path", None)
            if on_disk is not None:
                files.append(Path(on_disk()))
                continue
            spooled = Path(tmp) / str(index)
            with spooled.open("wb") as out:
                upload.content.seek(0)
                for chunk in upload.content.chunks():
                    out.write(chunk)
            files.append(spooled)
        return design.repo.write_blobs(files), in_lfs


def _may_use_lfs(path: str) -> bool:
    # git reads .gitattributes files before any filter runs: they must stay plain blobs.
    return path.rsplit("/", 1)[-1] != ".gitattributes"


def _lfs_object_from_upload(design: Design, upload: Upload) -> Pointer:
    """Put an upload into the LFS store and let `design` serve it."""
    upload.content.seek(0)
    try:
        pointer = lfs_store().add(upload.content, max_size=settings.FABHUB_MAX_LFS_OBJECT_BYTES)
    except StoreError as exc:
        raise TooLarge(f"{upload.path}: {exc}", limit=settings.FABHUB_MAX_LFS_OBJECT_BYTES) from exc
    lfs_object_link(design=design, oid=pointer.oid, size=pointer.size)
    return pointer


def design_commit(
    *,
    design: Design,
    author: User,
    message: str,
    branch: str | None = None,
    uploads: Sequence[Upload] = (),
    deletes: Sequence[str] = (),
    renames: Sequence[Rename] = (),
    expected_head: str | None = None,
) -> str:
    """Apply uploads, deletions and renames to `branch` as one commit; return its sha.

    With `expected_head`, the branch must still be there (else Conflict with the current
    head). Without it, a commit racing another one is rebuilt on top of it as long as
    the other commit touched none of the same paths; otherwise Conflict. Nothing is ever
    overwritten: the ref moves by compare-and-swap. Uploads over FABHUB_LFS_THRESHOLD_BYTES,
    or on paths a .gitattributes pattern tracks with LFS, are committed as Git LFS pointers
    (`_store_uploads`, `_lfs_edits`).
    """
    if not design_can_write(design, author):
        raise PermissionDenied(f"You cannot write to {design.full_name}.")
    _refuse_if_mirror(design)
    message = (message or "").strip()
    if not message:
        raise ValidationError("A commit message is required.")
    branch = branch or design.default_branch
    if not valid_ref_name("heads", branch):
        raise ValidationError(f"{branch!r} is not a valid branch name.")
    if not (uploads or deletes or renames):
        raise ValidationError("Nothing to commit: add, delete or rename at least one file.")
    repo = design.repo

    upload_paths = [paths.clean_path(u.path) for u in uploads]
    delete_paths = [paths.clean_path(p) for p in deletes]
    rename_pairs = [(paths.clean_path(r.old_path), paths.clean_path(r.new_path)) for r in renames]
    touched = upload_paths + delete_paths + [p for pair in rename_pairs for p in pair]
    if len(set(touched)) != len(touched):
        raise ValidationError("The same path appears twice in one commit.")
    paths.check_no_aliases(upload_paths + [new for _, new in rename_pairs], [])

    blob_shas, in_lfs = _store_uploads(design, uploads)
    # path → pointer blob of the uploads stored with LFS; small uploads join it when a
    # .gitattributes pattern sends their path through the LFS filter.
    lfs_blobs = {upload_paths[i]: blob_shas[i] for i in sorted(in_lfs)}
    uploads_by_path = dict(zip(upload_paths, uploads, strict=True))
    identity = person_for(author)

    for _attempt in range(MAX_COMMIT_ATTEMPTS):
        head = repo.branch_head(branch)
        if expected_head and head != expected_head:
            raise Conflict(
                f"{branch} has moved since you started: its head is now {head}.",
                current_head=head,
            )
        if head is None and not repo.is_empty():
            raise NotFound(f"There is no branch {branch!r} in {design.full_name}.")
        existing = repo.all_paths(head) if head else []
        edits = _plan_edits(repo, head, existing, upload_paths, blob_shas, delete_paths, rename_pairs)
        if lfs_blobs or any(_may_hold_lfs_patterns(p) for p in (*existing, *upload_paths)):
            edits = _lfs_edits(design, head, edits, uploads_by_path, lfs_blobs)
        tree = repo.build_tree(head, edits)
        if head and tree == repo.tree_of(head):
            raise ValidationError("Nothing changed: the files are identical to the current ones.")
        sha = repo.commit_tree(tree, [head] if head else [], message, author=identity, committer=identity)
        try:
            repo.update_ref(f"refs/heads/{branch}", sha, head, message=f"fabhub: commit by {author.username}")
        except RefMoved:
            if expected_head:
                current = repo.branch_head(branch)
                raise Conflict(
                    f"{branch} has moved: its head is now {current}.", current_head=current
                ) from None
            moved_to = repo.branch_head(branch)
            if head and moved_to:
                overlap = repo.changed_paths(head, moved_to) & set(touched)
                if overlap:
                    raise Conflict(
                        f"{branch} changed {', '.join(sorted(overlap))} while you committed; "
                        "reload and try again.",
                        current_head=moved_to,
                    ) from None
            continue
        _after_refs_changed(design, new_commits=[sha])
        return sha
    raise Conflict(f"{branch} is changing too fast; try again.", current_head=repo.branch_head(branch))


def _plan_edits(
    repo: Repository,
    head: str | None,
    existing: list[str],
    upload_paths: list[str],
    blob_shas: list[str],
    delete_paths: list[str],
    rename_pairs: list[tuple[str, str]],
) -> list[FileEdit]:
    existing_set = set(existing)
    folders = {p.rsplit("/", i)[0] for p in existing for i in range(1, p.count("/") + 1)}
    edits: list[FileEdit] = []

    def check_target(path: str) -> None:
        if path in folders:
            raise ValidationError(f"{path!r} is a folder; a file cannot replace it.")
        parts = path.split("/")
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth])
            if prefix in existing_set:
                raise ValidationError(f"{prefix!r} is a file, so {path!r} cannot be created under it.")

    new_names = upload_paths + [new for _, new in rename_pairs]
    paths.check_no_aliases(new_names, existing)
    for path, sha in zip(upload_paths, blob_shas, strict=True):
        check_target(path)
        edits.append(FileEdit(path, sha))
    for path in delete_paths:
        if path in existing_set:
            edits.append(FileEdit(path, None))
        elif path in folders:
            edits += [FileEdit(p, None) for p in existing if p.startswith(path + "/")]
        else:
            raise NotFound(f"There is no file {path!r} to delete.")
    for old, new in rename_pairs:
        entry = repo.entry(head, old) if head else None
        if entry is None or entry.kind != "blob":
            raise NotFound(f"There is no file {old!r} to rename.")
        if new in existing_set:
            raise Conflict(f"{new!r} already exists; delete it first or pick another name.")
        check_target(new)
        edits += [FileEdit(old, None), FileEdit(new, entry.sha, entry.mode)]
    return edits


def _may_hold_lfs_patterns(path: str) -> bool:
    return path.rsplit("/", 1)[-1] == ".gitattributes"


def _lfs_edits(
    design: Design,
    head: str | None,
    edits: list[FileEdit],
    uploads: dict[str, Upload],
    lfs_blobs: dict[str, str],
) -> list[FileEdit]:
    """`edits`, made consistent with Git LFS at `head`.

    An upload whose path a .gitattributes pattern sends through the LFS filter becomes an
    LFS object whatever its size (as `git lfs track` users expect), and every upload stored
    with LFS gets a line in the root .gitattributes unless a pattern covers it already.
    git itself says what the patterns mean (`check-attr`), so no pattern is misread.
    `lfs_blobs` is updated in place: a retry on a moved branch reuses the pointers.
    """
    repo = design.repo
    filters = repo.attribute_values(head, edits, "filter", list(uploads))
    for path, upload in uploads.items():
        if path not in lfs_blobs and filters.get(path) == "lfs" and _may_use_lfs(path):
            pointer = _lfs_object_from_upload(design, upload)
            lfs_blobs[path] = repo.write_blob(pointer_text(pointer.oid, pointer.size))
    edits = [FileEdit(e.path, lfs_blobs[e.path], e.mode) if e.path in lfs_blobs else e for e in edits]
    uncovered = [path for path in lfs_blobs if filters.get(path) != "lfs"]
    if not uncovered:
        return edits
    current = next((e for e in edits if e.path == ".gitattributes"), None)
    if current is not None:
        text = repo.read_blob(current.sha) if current.sha else b""
    else:
        entry = repo.entry(head, ".gitattributes") if head else None
        text = repo.read_blob(entry.sha) if entry is not None and entry.kind == "blob" else b""
    if text and not text.endswith(b"\n"):
        text += b"\n"
    text += b"".join(_gitattributes_line(path) for path in uncovered)
    edits = [e for e in edits if e.path != ".gitattributes"]
    edits.append(FileEdit(".gitattributes", repo.write_blob(text)))
    filters = repo.attribute_values(head, edits, "filter", uncovered)
    overridden = [path for path in uncovered if filters.get(path) != "lfs"]
    if overridden:
        raise ValidationError(
            f"{', '.join(overridden)} must be stored with Git LFS (over "
            f"{settings.FABHUB_LFS_THRESHOLD_BYTES:,} bytes), but a .gitattributes file in its "
            "folder turns the LFS filter off; change that file first."
        )
    return edits


def _gitattributes_line(path: str) -> bytes:
    """`/<path> filter=lfs …` matching exactly this file: anchored at the root by the
    leading slash, wildcard characters escaped, C-quoted when it holds whitespace."""
    pattern = "/" + re.sub(r"([*?\[\]\\])", r"\\\1", path)
    if any(ch.isspace() or ch == '"' for ch in pattern):
        pattern = '"' + pattern.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{pattern} {LFS_ATTRIBUTES}\n".encode()


def _after_refs_changed(design: Design, *, new_commits: list[str]) -> None:
    """What follows new commits, from the web, the API or a push: the hub learns of them."""
    from designs.analysis import analyses_queue, design_refresh_cover

    Design.objects.filter(pk=design.pk).update(updated_at=timezone.now())
    design.repo.refresh_commit_graph()
    design_refresh_cover(design)
    analyses_queue(design=design, commits=new_commits)
    _follow_refs_elsewhere(design)


def _follow_refs_elsewhere(design: Design) -> None:
    """Push mirrors and open proposals follow the design's branches (designs/mirrors.py,
    designs/proposals.py); both queue background work."""
    from designs.mirrors import push_mirrors_queue
    from designs.proposals import proposals_follow

    push_mirrors_queue(design=design)
    proposals_follow(design=design)


def _refuse_if_mirror(design: Design) -> None:
    """A pull mirror is changed only by its refresh (designs/mirrors.py)."""
    from designs.mirrors import refuse_local_writes

    refuse_local_writes(design)


def design_pushed(*, design: Design, refs_before: dict[str, str]) -> list[str]:
    """After a push: learn of the new commits (only those) and return them, newest first."""
    repo = design.repo
    refs_after = repo.refs()
    if refs_after == refs_before:
        return []
    moved = [sha for ref, sha in refs_after.items() if refs_before.get(ref) != sha]
    known = [f"^{sha}" for sha in refs_before.values()]
    new_commits = repo.commits_between(moved, known)
    _after_refs_changed(design, new_commits=new_commits)
    logger.info(
        "push to %s: %d ref(s) moved, %d new commit(s)", design.full_name, len(moved), len(new_commits)
    )
    return new_commits


# -- branches and tags --------------------------------------------------------------------


def _require_writer(design: Design, user: User) -> None:
    if not design_can_write(design, user):
        raise PermissionDenied(f"You cannot write to {design.full_name}.")
    _refuse_if_mirror(design)


def branch_create(*, design: Design, user: User, name: str, start: str | None = None) -> str:
    _require_writer(design, user)
    repo = design.repo
    if not valid_ref_name("heads", name):
        raise ValidationError(f"{name!r} is not a valid branch name.")
    start_sha = repo.resolve(start or design.default_branch)
    if start_sha is None:
        raise NotFound(f"No branch, tag or commit {start or design.default_branch!r} to start from.")
    try:
        repo.update_ref(f"refs/heads/{name}", start_sha, None)
    except RefMoved:
        raise Conflict(f"A branch named {name!r} already exists.") from None
    return start_sha


def branch_delete(*, design: Design, user: User, name: str) -> None:
    _require_writer(design, user)
    if name == design.default_branch:
        raise ValidationError(f"{name!r} is the default branch and cannot be deleted.")
    repo = design.repo
    head = repo.branch_head(name)
    if head is None:
        raise NotFound(f"There is no branch {name!r}.")
    try:
        repo.delete_ref(f"refs/heads/{name}", head)
    except RefMoved:
        raise Conflict(f"{name} moved while it was being deleted; try again.") from None


def tag_create(*, design: Design, user: User, name: str, target: str | None, notes: str) -> str:
    """Tag a commit as a release. The notes are the annotated tag's message."""
    _require_writer(design, user)
    repo = design.repo
    if not valid_ref_name("tags", name):
        raise ValidationError(f"{name!r} is not a valid tag name.")
    sha = repo.resolve(target or design.default_branch)
    if sha is None:
        raise NotFound(f"No branch, tag or commit {target!r} to tag.")
    if repo.resolve(f"refs/tags/{name}") is not None:
        raise Conflict(f"A tag named {name!r} already exists.")
    try:
        repo.create_tag(name, sha, (notes or "").strip() or name, person_for(user))
    except RefMoved:
        raise Conflict(f"A tag named {name!r} already exists.") from None
    return sha


def tag_delete(*, design: Design, user: User, name: str) -> None:
    _require_writer(design, user)
    repo = design.repo
    old = repo.resolve_ref(f"refs/tags/{name}")
    if old is None:
        raise NotFound(f"There is no tag {name!r}.")
    repo.delete_ref(f"refs/tags/{name}", old)


# -- forks and collaborators --------------------------------------------------------------


def design_fork(*, design: Design, user: User, slug: str | None = None) -> Design:
    """Clone `design` with its whole history into `user`'s namespace, keeping attribution."""
    slug = slug or design.slug
    _check_slug(slug)
    if Design.objects.filter(owner=user, slug__iexact=slug).exists():
        raise Conflict(f"You already have a design named {slug!r}; pick another name for the fork.")
    fork_point = design.repo.resolve(design.default_branch)
    if fork_point is None:
        raise ValidationError("An empty design cannot be forked: it has no commits yet.")
    path = repo_path(user.username, slug)
    if path.exists():
        raise Conflict(f"A repository for {user.username}/{slug} already exists on disk.")
    fork = Design(
        owner=user,
        slug=slug,
        title=design.title,
        summary=design.summary,
        licence=design.licence,
        visibility=design.visibility,
        default_branch=design.default_branch,
        forked_from=design,
        forked_from_name=design.full_name,
        fork_point=fork_point,
        cover_blob_sha=design.cover_blob_sha,
    )
    try:
        with transaction.atomic():
            fork.save()
            fork.tags.set(design.tags.all())
            _share_lfs_objects(source=design, fork=fork)
            Repository.clone_bare(design.repo, path).refresh_commit_graph()
    except IntegrityError as exc:
        shutil.rmtree(path, ignore_errors=True)
        raise Conflict(f"You already have a design named {slug!r}.") from exc
    except GitError:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return fork


def _share_lfs_objects(*, source: Design, fork: Design) -> None:
    """The fork may serve the LFS objects its source serves; the bytes are not copied.

    Rows of its own rather than a walk up `forked_from` at read time: the fork keeps its
    files if the upstream is deleted (`forked_from` becomes NULL), and it does not gain
    objects the upstream adds after the fork (perhaps once made private).
    """
    object_ids = source.lfs_links.values_list("lfs_object_id", flat=True)
    DesignLfsObject.objects.bulk_create(
        (DesignLfsObject(design=fork, lfs_object_id=object_id) for object_id in object_ids.iterator()),
        batch_size=500,
        ignore_conflicts=True,
    )


def collaborator_set(*, design: Design, actor: User, user: User, role: str) -> Collaborator:
    if design.owner_id != actor.pk:
        raise PermissionDenied("Only the owner manages collaborators.")
    if user.pk == design.owner_id:
        raise ValidationError("The owner is not a collaborator of their own design.")
    collaborator, _ = Collaborator.objects.update_or_create(design=design, user=user, defaults={"role": role})
    return collaborator


def collaborator_remove(*, design: Design, actor: User, user: User) -> None:
    if design.owner_id != actor.pk:
        raise PermissionDenied("Only the owner manages collaborators.")
    Collaborator.objects.filter(design=design, user=user).delete()


# -- Git LFS ------------------------------------------------------------------------------

MAX_LOCK_PATH_BYTES = 1024


def lfs_object_link(*, design: Design, oid: str, size: int) -> None:
    """Let `design` serve the stored object `oid` (uploaded for it, or proven readable)."""
    with transaction.atomic():
        lfs_object, _ = LfsObject.objects.get_or_create(oid=oid, defaults={"size": size})
        DesignLfsObject.objects.get_or_create(design=design, lfs_object=lfs_object)


def lfs_objects_present(*, design: Design, user: User, objects: Sequence[tuple[str, int]]) -> set[str]:
    """The oids among `objects` (oid, size) that a push to `design` need not upload.

    Those the design serves already, and those `user` can read in another design: the
    upload would only prove they have bytes they may read anyway, so the object is linked
    on the spot. Any other oid must be uploaded, even if the store has it, because knowing
    an oid (it is in every pointer file) must not be enough to get its content.
    """
    _require_writer(design, user)
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
    _require_writer(design, user)
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
    _require_writer(design, user)
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
    _require_writer(design, user)
    limit = settings.FABHUB_MAX_LFS_OBJECT_BYTES
    if size > limit:
        raise TooLarge(f"Object {oid} is {size:,} bytes; the limit is {limit:,} bytes.", limit=limit)
    try:
        lfs_store().save(oid, size, stream)
    except StoreError as exc:
        raise ValidationError(str(exc)) from exc
    lfs_object_link(design=design, oid=oid, size=size)
