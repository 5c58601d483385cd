"""Commits, pushes, branches and tags: the writes that move a design's refs."""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files import File

from designs import paths
from designs.git import FileEdit, Person, RefMoved, Repository, TreeRefused, valid_ref_name
from designs.lfs_store import LFS_ATTRIBUTES, Pointer, StoreError, lfs_store, pointer_text
from designs.models import Design
from designs.selectors import design_release_notes, require_writer
from designs.services import watches
from designs.services.lfs import lfs_object_link
from designs.services.refs import refs_changed
from designs.services.releases import release_assets_prune
from hub.exceptions import Conflict, NotFound, PermissionDenied, TooLarge, ValidationError
from hub.markdown import check_length
from hub.models import User
from hub.queue import enqueue

logger = logging.getLogger(__name__)

# How many times a commit is rebuilt on a branch that moved under it before giving up.
MAX_COMMIT_ATTEMPTS = 20


def person_for(user: User) -> Person:
    email = user.email or f"{user.username}@users.noreply.fabhub"
    return Person(user.get_full_name() or user.username, email)


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
    require_writer(design, author)
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

    def attempt() -> str | None:
        """Build the commit on the branch's current head; None if another writer won the race."""
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
        try:
            tree = repo.build_tree(head, edits)
        except TreeRefused as exc:
            raise ValidationError(
                "Git refuses these files, as it would in a push: " + "; ".join(exc.problems) + ".",
                problems=exc.problems,
            ) from None
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
            return None
        return sha

    sha = attempt()
    if sha is None:
        # Lost a race: take turns with the other hub writers so nobody starves.
        with repo.writers_turn():
            for _attempt in range(MAX_COMMIT_ATTEMPTS):
                sha = attempt()
                if sha is not None:
                    break
    if sha is None:
        raise Conflict(f"{branch} is changing too fast; try again.", current_head=repo.branch_head(branch))
    refs_changed(design, new_commits=[sha])
    return sha


def upload_edits(*, design: Design, base: str, uploads: Sequence[Upload]) -> list[FileEdit]:
    """The edits that put `uploads` on the tree (or commit) `base` of `design`'s repository,
    stored as `design_commit` stores them: the same size limits, LFS pointers past
    FABHUB_LFS_THRESHOLD_BYTES or where a .gitattributes pattern asks (the objects linked
    to `design`). Git's object checks run when the caller builds the tree."""
    upload_paths = [paths.clean_path(u.path) for u in uploads]
    blob_shas, in_lfs = _store_uploads(design, uploads)
    lfs_blobs = {upload_paths[i]: blob_shas[i] for i in sorted(in_lfs)}
    edits = [FileEdit(path, sha) for path, sha in zip(upload_paths, blob_shas, strict=True)]
    existing = design.repo.all_paths(base)
    if lfs_blobs or any(_may_hold_lfs_patterns(p) for p in (*existing, *upload_paths)):
        by_path = dict(zip(upload_paths, uploads, strict=True))
        edits = _lfs_edits(design, base, edits, by_path, lfs_blobs)
    return edits


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


def default_branch_among(branches: list[str]) -> str:
    """The branch a design takes as default when its own is missing: main, then master,
    then the first by name."""
    return next((b for b in ("main", "master") if b in branches), sorted(branches)[0])


def _adopt_pushed_default_branch(design: Design, before: dict[str, str], after: dict[str, str]) -> None:
    """The first push into a design without its default branch names it (GitHub's rule):
    `git push origin dev` into an empty design makes `dev` the default branch. With
    several branches pushed at once, `main`, then `master`, then the first by name."""
    heads_after = sorted(ref.removeprefix("refs/heads/") for ref in after if ref.startswith("refs/heads/"))
    if not heads_after or design.default_branch in heads_after:
        return
    if any(ref.startswith("refs/heads/") for ref in before):
        return  # the design had branches: removing the default one is not a first push
    branch = default_branch_among(heads_after)
    design.repo.set_default_branch(branch)
    Design.objects.filter(pk=design.pk).update(default_branch=branch)
    design.default_branch = branch


def design_pushed(*, design: Design, refs_before: dict[str, str], pusher: User | None = None) -> list[str]:
    """After a push: learn of the new commits (only those) and return them, newest first;
    new tags are releases, announced to the design's watchers (`pusher` is not told)."""
    repo = design.repo
    refs_after = repo.refs()
    if refs_after == refs_before:
        return []
    moved = [sha for ref, sha in refs_after.items() if refs_before.get(ref) != sha]
    _adopt_pushed_default_branch(design, refs_before, refs_after)
    known = [f"^{sha}" for sha in refs_before.values()]
    # The new commits and the files they add, in one walk of what arrived only.
    new_commits, added_blobs = repo.commits_and_blobs(moved, known)
    refs_changed(design, new_commits=new_commits, added_blobs=added_blobs)
    watches.release_notify(design=design, tags=watches.tags_added(refs_before, refs_after), actor=pusher)
    logger.info(
        "push to %s: %d ref(s) moved, %d new commit(s)", design.full_name, len(moved), len(new_commits)
    )
    return new_commits


# -- branches and tags --------------------------------------------------------------------


def branch_create(*, design: Design, user: User, name: str, start: str | None = None) -> str:
    require_writer(design, user)
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
    require_writer(design, user)
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
    require_writer(design, user)
    repo = design.repo
    if not valid_ref_name("tags", name):
        raise ValidationError(f"{name!r} is not a valid tag name.")
    sha = repo.resolve(target or design.default_branch)
    if sha is None:
        raise NotFound(f"No branch, tag or commit {target!r} to tag.")
    if repo.resolve(f"refs/tags/{name}") is not None:
        raise Conflict(f"A tag named {name!r} already exists.")
    check_length(notes or "", field="notes")
    try:
        repo.create_tag(name, sha, (notes or "").strip() or name, person_for(user))
    except RefMoved:
        raise Conflict(f"A tag named {name!r} already exists.") from None
    # Its notes are rendered now, while the person who wrote them waits, not later readers.
    tag = next((t for t in repo.tags() if t.name == name), None)
    if tag is not None:
        design_release_notes(design, tag)
    # A new release of a module: the assemblies that use it offer the upgrade.
    enqueue("designs.tasks.assembly_refresh", design.pk)
    watches.release_notify(design=design, tags=[name], actor=user)
    return sha


def tag_delete(*, design: Design, user: User, name: str) -> None:
    require_writer(design, user)
    if not design.allow_tag_changes:
        raise PermissionDenied(
            f"{name!r} is a release: tags cannot be deleted or moved "
            "(the owner can allow it in the design's settings)."
        )
    repo = design.repo
    old = repo.resolve_ref(f"refs/tags/{name}")
    if old is None:
        raise NotFound(f"There is no tag {name!r}.")
    repo.delete_ref(f"refs/tags/{name}", old)
    release_assets_prune(design=design)  # the release's files go with it
    enqueue("designs.tasks.assembly_refresh", design.pk)
