"""Reads and guards: who may see or change a design, what its repository holds at a revision,
its mirrors, proposals and mesh analyses. What changes a design is in designs/services/."""

from __future__ import annotations

import functools
import hashlib
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils.html import escape

from designs.diffs import DiffBudget, FileDiff, compare
from designs.git import ChangedFile, Commit, GitError, Repository, Tag, TreeEntry
from designs.lfs_store import MAX_POINTER_BYTES, Pointer, StoreError, lfs_store, resolve_pointer, valid_oid
from designs.meshes import MeshError, canonical_units, figures_in_units, fits, is_mesh_path
from designs.models import (
    AssemblyCheck,
    BlobDiff,
    ChangeProposal,
    Collaborator,
    Design,
    LfsLock,
    LfsObject,
    Make,
    MeshAnalysis,
    ModuleUse,
    PullMirror,
    PushMirror,
    ReleaseAsset,
    Star,
    Watch,
)
from designs.paths import is_image_path
from hub.auth import Viewer
from hub.exceptions import NotFound, PermissionDenied, ValidationError
from hub.markdown import MAX_MARKDOWN_CHARS, RENDERER_VERSION, render_markdown
from hub.models import Credential, User
from hub.records import credentials_by_source


def designs_visible_to(user: Viewer) -> QuerySet[Design]:
    """Public designs, plus private ones the user owns or collaborates on."""
    designs = Design.objects.select_related("owner", "forked_from__owner").prefetch_related("tags")
    return _visible(designs, user)


def _visible(designs: QuerySet[Design], user: Viewer) -> QuerySet[Design]:
    """`designs` narrowed to those `user` may see: the one visibility rule of every lookup."""
    if not user.is_authenticated:
        return designs.filter(visibility=Design.Visibility.PUBLIC)
    collaborates = Collaborator.objects.filter(design=OuterRef("pk"), user=user)
    return designs.filter(Q(visibility=Design.Visibility.PUBLIC) | Q(owner=user) | Exists(collaborates))


# What hub.notifications calls a notification about a design (registered in designs.apps).
DESIGN_TARGET = "designs.design"


def design_ids_visible_to(user: Viewer) -> QuerySet[Design, int]:
    """The ids (one column, for a subquery) of the designs `user` may see."""
    return _visible(Design.objects.all(), user).values_list("pk", flat=True)


def design_get(*, user: Viewer, owner: str, slug: str) -> Design:
    """The design, or NotFound — also when it exists but `user` may not see it."""
    design = designs_visible_to(user).filter(owner__username=owner, slug__iexact=slug).first()
    if design is None:
        raise NotFound(f"No design {owner}/{slug}.")
    return design


def design_get_for_history(*, user: Viewer, owner: str, slug: str) -> Design:
    """As design_get (the same filter and visibility rule, NotFound alike), for pages that
    only read the repository: the design's id, slug, visibility and default branch and
    its owner's id and username (the other fields deferred), read by one statement that
    Django compiled once per process (`_history_lookup`)."""
    if "\0" in owner or "\0" in slug:  # in no name; PostgreSQL refuses it in a value
        raise NotFound(f"No design {owner}/{slug}.")
    db = connections[DEFAULT_DB_ALIAS]
    sql, params = _history_lookup(db.vendor, signed_in=user.is_authenticated)
    # IExact prepares its value so (escaping LIKE's wildcards on SQLite).
    given = {_OWNER_MARK: owner, _SLUG_MARK: db.ops.prep_for_iexact_query(slug), _VIEWER_MARK: user.pk}
    with db.cursor() as cursor:
        cursor.execute(sql, [given.get(p, p) for p in params])
        row = cursor.fetchone()
    if row is None:
        raise NotFound(f"No design {owner}/{slug}.")
    *values, username = row
    design = Design.from_db(db.alias, _HISTORY_FIELDS, values)
    design.owner = User.from_db(db.alias, ["id", "username"], [design.owner_id, username])
    return design


# design_get_for_history's statement is the queryset's own, compiled with these marks in
# place of the owner, the slug and the signed-in viewer's id: building and compiling the
# queryset cost ~0.6 ms of every history request, ten times the statement itself. The
# marks are values no URL or user has (a record separator; a negative id).
_OWNER_MARK, _SLUG_MARK, _VIEWER_MARK = "\x1eowner\x1e", "\x1eslug\x1e", -1_846_271
_MARKS = (_OWNER_MARK, _SLUG_MARK, _VIEWER_MARK)
_HISTORY_FIELDS = ["id", "owner_id", "slug", "visibility", "default_branch"]


@functools.cache
def _history_lookup(vendor: str, *, signed_in: bool) -> tuple[str, tuple[Any, ...]]:
    """The statement (for the `vendor` database) and its parameters, marks in place."""
    viewer: Viewer = User(pk=_VIEWER_MARK) if signed_in else AnonymousUser()
    designs = Design.objects.filter(owner__username=_OWNER_MARK, slug__iexact=_SLUG_MARK)
    query = _visible(designs, viewer).values_list(*_HISTORY_FIELDS, "owner__username")[:1].query
    sql, params = query.get_compiler(DEFAULT_DB_ALIAS).as_sql()
    # Each mark once, the viewer's in both of the rule's terms: else the rule or Django
    # changed, and the marks may no longer be where the request's values belong.
    expected = {_OWNER_MARK: 1, _SLUG_MARK: 1, _VIEWER_MARK: 2 if signed_in else 0}
    if {mark: sum(1 for p in params if p == mark) for mark in _MARKS} != expected:
        raise AssertionError(f"the history lookup's marks moved: {params!r}")
    return sql, tuple(params)


def design_role(design: Design, user: Viewer) -> str | None:
    """'owner', 'write', 'read' or None."""
    if not user.is_authenticated:
        return "read" if design.visibility == Design.Visibility.PUBLIC else None
    if design.owner_id == user.pk:
        return "owner"
    collaborator = design.collaborators.filter(user=user).values_list("role", flat=True).first()
    if collaborator:
        return collaborator
    return "read" if design.visibility == Design.Visibility.PUBLIC else None


def design_can_write(design: Design, user: Viewer) -> bool:
    return design_role(design, user) in ("owner", "write")


def design_mirror(design: Design) -> PullMirror | None:
    """The design's pull mirror settings, or None. Django remembers the answer on the
    instance (the reverse one-to-one cache, the miss included), so asking twice is free."""
    try:
        return design.pull_mirror
    except PullMirror.DoesNotExist:
        return None


def refuse_local_writes(design: Design) -> None:
    """PermissionDenied if `design` is a pull mirror: only its refresh changes it."""
    mirror = design_mirror(design)
    if mirror is not None:
        raise PermissionDenied(
            f"{design.full_name} is a read-only mirror of {mirror.url}: change it there, or fork it "
            "here and change the fork. (The next refresh would undo a local change.)"
        )


def require_writer(design: Design, user: Viewer) -> None:
    """PermissionDenied unless `user` may change `design`'s refs here (a writer, and the
    design is not a pull mirror)."""
    if not design_can_write(design, user):
        raise PermissionDenied(f"You cannot write to {design.full_name}.")
    refuse_local_writes(design)


def push_mirrors_of(design: Design) -> list[PushMirror]:
    return list(PushMirror.objects.filter(design=design).order_by("pk"))


@dataclass(frozen=True)
class RefMoveFollowers:
    """What follows a design's ref move (designs/services/refs.py), read at once."""

    push_mirror_ids: list[int]  # enabled push mirrors, in id order
    proposal_ids: list[int]  # open proposals it is the source or target of, newest 100
    in_assemblies: bool | None  # an assembly, or a module of one, on this hub
    was_assembly: bool | None  # its head before the move was read as an assembly

    PROPOSALS_FOLLOWED = 100


def ref_move_followers(*, design_id: int, head_before: str | None) -> RefMoveFollowers:
    """The push mirrors, open proposals and assembly ties a ref move of `design_id` must
    follow, in one statement: four ORM reads cost ~2 ms of every mirror refresh, mostly
    building and compiling them. `head_before`: the default branch's head before the move,
    to learn whether the assembly ties changed (`in_assemblies` and `was_assembly` are None
    when it is None: not read)."""
    mirrors, proposals = PushMirror._meta.db_table, ChangeProposal._meta.db_table
    parts = [
        f"SELECT 1, id FROM {mirrors} WHERE design_id = %s AND enabled = %s",
        # The newest first, as ChangeProposal's ordering; a subquery for its LIMIT.
        f"SELECT 2, id FROM (SELECT id FROM {proposals} WHERE (target_id = %s OR source_id = %s)"
        f" AND status = %s ORDER BY number DESC LIMIT {RefMoveFollowers.PROPOSALS_FOLLOWED}) open_proposals",
    ]
    params: list[Any] = [design_id, True, design_id, design_id, ChangeProposal.Status.OPEN]
    if head_before is not None:
        parts += [
            f"SELECT 3, 0 FROM (SELECT 1 FROM {ModuleUse._meta.db_table} WHERE assembly_id = %s"
            " OR module_id = %s LIMIT 1) module_uses",
            f"SELECT 4, 0 FROM (SELECT 1 FROM {AssemblyCheck._meta.db_table} WHERE design_id = %s"
            " AND commit_sha = %s AND is_assembly = %s LIMIT 1) assembly_checks",
        ]
        params += [design_id, design_id, design_id, head_before, True]
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        rows = cursor.fetchall()
    kinds = [kind for kind, _ in rows]
    return RefMoveFollowers(
        push_mirror_ids=sorted(pk for kind, pk in rows if kind == 1),
        proposal_ids=[pk for kind, pk in rows if kind == 2],
        in_assemblies=None if head_before is None else 3 in kinds,
        was_assembly=None if head_before is None else 4 in kinds,
    )


def design_resolve(design: Design, rev: str | None) -> str:
    """The commit sha `rev` (default: the default branch) names, or NotFound."""
    rev = rev or design.default_branch
    sha = design.repo.resolve(rev)
    if sha is None:
        if rev == design.default_branch and design.repo.is_empty():
            raise NotFound(f"{design.full_name} has no commits yet.")
        raise NotFound(f"No branch, tag or commit {rev!r} in {design.full_name}.")
    return sha


# A history longer than this is not counted while someone waits for its first page: a
# worker counts it (services.history). Up to it, counting costs about one page read. The
# commit-graph tells a history surely this long without a process (Repository.depth).
HISTORY_COUNTED_INLINE = 1_000

# How long a counted history length is kept. A commit's history never changes, but each
# ref and path has keys of its own: they must not pile up for ever.
HISTORY_COUNT_KEPT_S = 30 * 24 * 3600


def history_path(path: str | None) -> str | None:
    """The path a history is filtered by, as its cache keys and git see it: without
    leading or trailing slashes; None for the whole history."""
    return (path.strip("/") or None) if path else None


def history_path_exists(design: Design, *, sha: str, path: str | None, newest: Commit | None = None) -> bool:
    """Whether the commit `sha` holds something at `path` (a history path, see
    history_path; None: the whole history, which always exists). One tree lookup, unless
    `newest` (the first commit of the first page of `path`'s history from `sha`) shows it.

    git's history of a path follows, from `sha`, a single line of commits that leave the
    path as it is until the first one that changes it, and that one is shown first: when
    it is not a merge (whose files a log does not list) and leaves a file there, `sha`
    holds that file too."""
    if path is None:
        return True
    if newest is not None and len(newest.parents) <= 1:
        under = f"{path}/"
        if any(f.status != "deleted" and (f.path == path or f.path.startswith(under)) for f in newest.files):
            return True
    return design.repo.entry(sha, path) is not None


@dataclass(frozen=True)
class HistoryPage:
    sha: str  # the commit `rev` named
    commits: list[Commit]
    total: int | None  # None: a long history not counted yet (a worker is counting it)
    has_next: bool


def design_history(
    design: Design, *, rev: str | None, path: str | None, offset: int, limit: int
) -> HistoryPage:
    """One page of the commits reachable from `rev`, optionally touching `path`, and the
    history's exact length when it is known or cheap to know (HistoryPage.total)."""
    path = history_path(path)
    if path and "\0" in path:
        raise NotFound("No path holds a NUL byte.")
    sha = design_resolve(design, rev)
    repo = design.repo
    count_key, latest_key = _history_count_keys(design, rev=rev, sha=sha, path=path)
    # One commit more than the page says whether a next page exists, whatever the total.
    total = cache.get(count_key)
    if total is not None:
        commits = repo.log(sha, path=path, skip=offset, limit=limit + 1)
    else:
        commits, total = repo.log_and_count(
            sha,
            path=path,
            skip=offset,
            limit=limit + 1,
            counted=cache.get(latest_key),
            at_most=HISTORY_COUNTED_INLINE,
        )
        if total is None and len(commits) <= limit and (commits or not offset):
            total = offset + len(commits)  # this page is the last: the length is in sight
        if total is not None:
            cache.set_many({count_key: total, latest_key: (sha, total)}, timeout=HISTORY_COUNT_KEPT_S)
    return HistoryPage(sha=sha, commits=commits[:limit], total=total, has_next=len(commits) > limit)


def design_history_count(design: Design, *, rev: str | None, sha: str, path: str | None) -> int:
    """The length of the history of `sha` (which `rev` named), optionally touching `path`,
    counted and cached as design_history does: what a worker runs for a long history.
    After new commits on a counted head, only they are counted (when that can be exact)."""
    path = history_path(path)
    count_key, latest_key = _history_count_keys(design, rev=rev, sha=sha, path=path)
    total = cache.get(count_key)
    if total is None:
        counted = cache.get(latest_key)
        if counted is None:
            total = design.repo.count_commits(sha, path=path)
        else:
            total = design.repo.count_commits_since(sha, path=path, counted=counted)
        cache.set_many({count_key: total, latest_key: (sha, total)}, timeout=HISTORY_COUNT_KEPT_S)
    return total


def _history_count_keys(design: Design, *, rev: str | None, sha: str, path: str | None) -> tuple[str, str]:
    # A commit's history never changes, so its length is cached by sha (for
    # HISTORY_COUNT_KEPT_S). The latest count of each ref is kept too: after a push, only
    # the new commits are counted. `path` is a history_path.
    name = hashlib.sha256(f"{rev or design.default_branch}\0{path or ''}".encode(errors="replace"))
    return (
        f"history-count:{design.pk}:{sha}:{path or ''}",
        f"history-count-latest:{design.pk}:{name.hexdigest()}",
    )


def design_tree(design: Design, *, rev: str | None, path: str = "") -> tuple[str, list[TreeEntry]]:
    sha = design_resolve(design, rev)
    repo = design.repo
    if path:
        entry = repo.entry(sha, path)
        if entry is None or entry.kind != "tree":
            raise NotFound(f"No folder {path!r} at {sha[:10]}.")
    entries = repo.ls_tree(sha, path)
    # Folders first, then files, each alphabetically: what people expect of a file list.
    entries.sort(key=lambda e: (e.kind != "tree", e.name.lower()))
    return sha, entries


def design_file(design: Design, *, rev: str | None, path: str) -> tuple[str, TreeEntry]:
    sha = design_resolve(design, rev)
    entry = design.repo.entry(sha, path) if path else None
    if entry is None or entry.kind != "blob":
        raise NotFound(f"No file {path!r} at {sha[:10]}.")
    return sha, entry


def design_image_blob(design: Design, *, blob_sha: str, name: str) -> TreeEntry:
    """A blob of the design's own repository, to be served as the picture `name` names
    (its type comes from the name): the diff pages' before and after, by blob sha, as a
    side may be at no revision the page names (a commit's parent). NotFound unless the
    name is a picture's and the sha a blob the design's repository holds."""
    if not is_image_path(name) or not re.fullmatch(r"[0-9a-f]{40}", blob_sha) or "/" in name:
        raise NotFound("No such picture.")
    found = design.repo.object_types_and_sizes([blob_sha]).get(blob_sha)
    if found is None or found[0] != "blob":
        raise NotFound("No such picture.")
    return TreeEntry(path=name, mode="100644", kind="blob", sha=blob_sha, size=found[1])


def design_branches(design: Design) -> list[dict[str, Any]]:
    """Branches with their heads, the default branch first, then by name."""
    branches: list[dict[str, Any]] = [
        {"name": name, "head": head, "default": name == design.default_branch}
        for name, head in design.repo.branches()
    ]
    branches.sort(key=lambda b: (not b["default"], b["name"].lower()))
    return branches


def design_tag(design: Design, name: str) -> Tag:
    tag = next((t for t in design.repo.tags() if t.name == name), None)
    if tag is None:
        raise NotFound(f"There is no tag {name!r}.")
    return tag


def design_changes(design: Design, *, base: str | None, head: str) -> list[ChangedFile]:
    return design.repo.diff(base, head)


MAX_README_BYTES = 512 * 1024
REVISION_PLACEHOLDER = "fabhub-revision-placeholder"
README_NAMES = ("readme.md", "readme.markdown", "readme.txt", "readme")


def design_readme_entry(design: Design, *, sha: str) -> TreeEntry | None:
    return readme_among(design.repo.ls_tree(sha))


def readme_among(entries: Iterable[TreeEntry]) -> TreeEntry | None:
    """The README among a commit's `entries` (its root folder's, or all of them)."""
    found = {e.name.lower(): e for e in entries if e.kind == "blob" and "/" not in e.path}
    for name in README_NAMES:
        if name in found:
            return found[name]
    return None


def render_design_markdown(design: Design, text: str, *, ref: str) -> str:
    """Markdown that lives in `design` (a README, release notes, a proposal's text) as
    sanitised HTML: relative images point at raw files, relative links at file pages,
    both at revision `ref` (or REVISION_PLACEHOLDER, filled in when shown)."""
    owner, slug = design.owner.username, design.slug

    def raw_url(path: str) -> str:
        return f"{reverse('design-raw', args=[owner, slug, path])}?ref={ref}"

    def page_url(path: str) -> str:
        return f"{reverse('design-blob', args=[owner, slug, path])}?ref={ref}"

    return render_markdown(text, raw_url=raw_url, page_url=page_url)


def design_readme(design: Design, *, sha: str) -> tuple[str | None, str]:
    """(path, sanitised HTML) of the README at `sha`; links point at the same revision.

    The HTML is rendered once per README blob and renderer version into the shared
    cache (linear time, at most MAX_README_BYTES); the revision in its links is filled
    in per request.
    """
    entry = design_readme_entry(design, sha=sha)
    if entry is None:
        return None, ""
    owner, slug = design.owner.username, design.slug
    key = f"readme:{RENDERER_VERSION}:{design.pk}:{owner}/{slug}:{entry.sha}:{entry.path}"
    html = cache.get(key)
    if html is None:
        text = design.repo.read_blob(entry.sha)[:MAX_README_BYTES].decode("utf-8", "replace")
        if entry.name.lower().endswith((".md", ".markdown")):
            html = render_design_markdown(design, text, ref=REVISION_PLACEHOLDER)
        else:
            html = f"<pre>{escape(text)}</pre>"
        cache.set(key, html, timeout=24 * 3600)
    return entry.path, html.replace(REVISION_PLACEHOLDER, sha)


def design_release_notes(design: Design, tag: Tag) -> str:
    """A tag's notes (its annotated message) as sanitised HTML, Markdown like the README;
    relative links point into the tagged commit. Rendered once per tag, message and
    renderer version into the shared cache (`tag_create` renders it when the tag is made)."""
    if not tag.message.strip() or tag.message.strip() == tag.name:
        return ""
    digest = hashlib.sha256(tag.message.encode()).hexdigest()[:16]
    key = f"release-notes:{RENDERER_VERSION}:{design.pk}:{tag.name}:{tag.target}:{digest}"
    html = cache.get(key)
    if html is None:
        html = render_design_markdown(design, tag.message[:MAX_MARKDOWN_CHARS], ref=tag.target)
        cache.set(key, html, timeout=7 * 24 * 3600)
    return html


def clone_url(design: Design, request=None) -> str:
    """The address `git clone` takes: FABHUB_PUBLIC_URL if set, else the request's host."""
    path = reverse("design-detail", args=[design.owner.username, design.slug]).rstrip("/") + ".git"
    if settings.FABHUB_PUBLIC_URL:
        return settings.FABHUB_PUBLIC_URL.rstrip("/") + path
    return request.build_absolute_uri(path) if request is not None else path


# -- Git LFS ------------------------------------------------------------------------------

# Fewer query parameters than any database allows; git-lfs asks about 100 objects at a time.
OID_QUERY_CHUNK = 500


def _lfs_sizes(oids: Iterable[str], **filters) -> dict[str, int]:
    wanted = [oid for oid in dict.fromkeys(oids) if valid_oid(oid)]
    sizes: dict[str, int] = {}
    for start in range(0, len(wanted), OID_QUERY_CHUNK):
        chunk = wanted[start : start + OID_QUERY_CHUNK]
        sizes.update(LfsObject.objects.filter(oid__in=chunk, **filters).values_list("oid", "size").distinct())
    return sizes


def lfs_objects_served(design: Design, oids: Iterable[str]) -> dict[str, int]:
    """oid → size of the LFS objects among `oids` that `design` may serve."""
    return _lfs_sizes(oids, links__design=design)


def lfs_objects_readable(user: Viewer, oids: Iterable[str]) -> dict[str, int]:
    """oid → size of the LFS objects among `oids` served by some design `user` can see."""
    return _lfs_sizes(oids, links__design__in=designs_visible_to(user).values("pk"))


def lfs_pointer_served(design: Design, data: bytes) -> Pointer | None:
    """The object `data` points to, if it is an LFS pointer to an object `design` serves."""
    pointer = resolve_pointer(data)
    if pointer is None or lfs_objects_served(design, [pointer.oid]).get(pointer.oid) != pointer.size:
        return None
    return pointer


def design_blob_to_file(design: Design, *, blob_sha: str, target: Path) -> None:
    """Write a blob's content to `target`: the file itself, or the LFS object it points to.

    The one place that resolves a pointer for code that reads files (mesh analysis, the
    print queue): a pointer the design does not serve (an object never uploaded, or not
    linked to this design) stays as the pointer text. Raises OSError when git cannot.
    """
    design.repo.blob_to_file(blob_sha, target)
    if target.stat().st_size >= MAX_POINTER_BYTES:
        return
    pointer = lfs_pointer_served(design, target.read_bytes())
    if pointer is None:
        return
    try:
        source = lfs_store().open(pointer.oid)
    except StoreError:
        return
    with source, target.open("wb") as out:
        shutil.copyfileobj(source, out, 1024 * 1024)


# Blobs up to this size are read through one git process, at most this much at a time;
# larger ones are streamed one by one, so memory stays bounded either way.
_BATCHED_BLOB_BYTES = 4 * 1024 * 1024
_BATCH_BYTES = 64 * 1024 * 1024


def design_blobs_to_files(design: Design, targets: dict[str, Path]) -> set[str]:
    """`design_blob_to_file` for many blobs (sha → target); return the shas written.

    The small ones are read through one git process rather than one each (1,000 small
    meshes in a push: 0.3 s instead of 6 s). Large ones, LFS pointers and any the batch
    could not read go through `design_blob_to_file`; a blob even that cannot write is
    left out of the answer.
    """
    written: set[str] = set()
    try:
        with design.repo.object_reader() as reader:
            sizes = reader.blob_sizes(targets)
            chunks: list[dict[str, int]] = [{}]
            total = 0
            for sha in targets:
                size = sizes.get(sha, _BATCHED_BLOB_BYTES + 1)
                if size > _BATCHED_BLOB_BYTES:
                    continue
                if chunks[-1] and total + size > _BATCH_BYTES:
                    chunks.append({})
                    total = 0
                chunks[-1][sha] = size
                total += size
            for chunk in chunks:
                for sha, data in reader.read_blobs(chunk).items():
                    if data is not None and not (len(data) < MAX_POINTER_BYTES and resolve_pointer(data)):
                        targets[sha].write_bytes(data)
                        written.add(sha)
    except (GitError, OSError):
        pass  # what was not written is tried one by one below
    for sha, target in targets.items():
        if sha in written:
            continue
        try:
            design_blob_to_file(design, blob_sha=sha, target=target)
        except OSError:
            continue
        written.add(sha)
    return written


def design_lfs_pointer(design: Design, entry: TreeEntry) -> Pointer | None:
    """The LFS object a file stands for, if the file is a pointer the design can serve."""
    if entry.kind != "blob" or entry.size is None or entry.size >= MAX_POINTER_BYTES:
        return None
    return lfs_pointer_served(design, design.repo.read_blob(entry.sha))


def lfs_locks(
    design: Design,
    *,
    path: str | None = None,
    lock_id: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> tuple[list[LfsLock], str | None]:
    """One page of a design's LFS locks in id order, and the cursor of the next page."""
    locks = LfsLock.objects.filter(design=design).select_related("owner").order_by("pk")
    if path:
        locks = locks.filter(path=path)
    if lock_id:
        locks = locks.filter(pk=int(lock_id)) if lock_id.isdigit() else locks.none()
    if cursor:
        locks = locks.filter(pk__gte=int(cursor)) if cursor.isdigit() else locks.none()
    page = list(locks[: limit + 1])
    if len(page) > limit:
        return page[:limit], str(page[limit].pk)
    return page, None


def pointer_oids(repo: Repository, commits: list[str]) -> dict[str, int]:
    """oid → size of the Git LFS pointers among the files `commits` add or change."""
    blobs = [sha for sha, _ in repo.blobs_added_by(commits)]
    info = repo.object_types_and_sizes(blobs)
    small = [sha for sha, (kind, size) in info.items() if kind == "blob" and size < MAX_POINTER_BYTES]
    found: dict[str, int] = {}
    for data in repo.read_blobs(small).values():
        pointer = resolve_pointer(data)
        if pointer is not None:
            found[pointer.oid] = pointer.size
    return found


# -- mesh analysis ------------------------------------------------------------------------


def thumbnail_path(blob_sha: str) -> Path:
    return Path(settings.DATA_DIR) / "thumbnails" / blob_sha[:2] / f"{blob_sha}.png"


def viewer_path(blob_sha: str) -> Path:
    """Triangles for the 3D viewer: float32 little-endian, 9 per triangle, in mm."""
    return Path(settings.DATA_DIR) / "viewer" / blob_sha[:2] / f"{blob_sha}.bin"


def analyses_for_blobs(blob_shas: list[str]) -> dict[str, MeshAnalysis]:
    return {a.blob_sha: a for a in MeshAnalysis.objects.filter(blob_sha__in=blob_shas)}


def blob_diffs_for(keys: list[tuple[str, str, str]]) -> dict[tuple[str, str, str], BlobDiff]:
    """The cached comparisons of these (old blob, new blob, differ) keys, in one query."""
    wanted = set(keys)
    if not wanted:
        return {}
    # Each column by IN (served by the key's unique index), then the exact keys kept:
    # simpler SQL than an OR of triples. A cached diff of another pairing of these blobs
    # (two diffs sharing a side) is rare and just dropped here.
    rows = BlobDiff.objects.filter(
        old_sha__in={o for o, _, _ in wanted},
        new_sha__in={n for _, n, _ in wanted},
        differ__in={d for _, _, d in wanted},
    )
    return {(d.old_sha, d.new_sha, d.differ): d for d in rows if (d.old_sha, d.new_sha, d.differ) in wanted}


def parse_build_volume(text: str) -> tuple[float, float, float]:
    """'250x210x210' (mm) → (250.0, 210.0, 210.0), or ValidationError."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(0 < v < 100_000 for v in values):
        raise ValidationError(f"Build volume must look like 250x210x210 (mm), not {text!r}.")
    return values[0], values[1], values[2]


UNITS_ATTRIBUTE = "fabhub-units"


def declared_units(design: Design, *, sha: str, paths: list[str]) -> dict[str, str]:
    """Units declared for files with the `fabhub-units` git attribute at `sha`
    (`*.stl fabhub-units=inch` in .gitattributes): versioned with the design, so forks and
    mirrors keep them."""
    declared = {}
    for path, value in design.repo.attribute_values(sha, [], UNITS_ATTRIBUTE, paths).items():
        if value in ("unspecified", "unset", "set", ""):
            continue
        try:
            declared[path] = canonical_units(value)
        except MeshError:
            continue  # an unknown unit is ignored rather than guessed
    return declared


def figures_at(figures: dict | None, units: str | None) -> dict | None:
    """Stored figures, re-scaled when the path declares other units than the file did."""
    if figures is None or units is None or figures.get("units_source") == "declared":
        return figures
    return figures_in_units(figures, units)


def design_meshes(
    design: Design, *, sha: str, build_volume: tuple[float, float, float] | None = None
) -> list[dict]:
    """Every mesh file at commit `sha` with its analysis (and fit, given a build volume)."""
    entries = [
        e for e in design.repo.ls_tree(sha, recursive=True) if e.kind == "blob" and is_mesh_path(e.path)
    ]
    analyses = analyses_for_blobs([e.sha for e in entries])
    units = declared_units(design, sha=sha, paths=[e.path for e in entries])
    files = []
    for entry in entries:
        row = analyses.get(entry.sha)
        item = {
            "path": entry.path,
            "blob_sha": entry.sha,
            "size": entry.size,
            "status": row.status if row else "not-analysed",
            "figures": figures_at(row.figures, units.get(entry.path)) if row else None,
            "reason": row.reason if row else "",
            "has_thumbnail": bool(
                row and row.status == MeshAnalysis.Status.DONE and thumbnail_path(entry.sha).exists()
            ),
            "fits": None,
        }
        if build_volume and row and row.figures:
            item["fits"] = fits(row.figures["obb_size"], build_volume)
        files.append(item)
    return files


# -- change proposals and forks (writes: designs/services/proposals.py) --------------------

MAX_LISTED_COMMITS = 250
MAX_NETWORK_DEPTH = 50


def proposals_of(design: Design, *, status: str | None = None) -> QuerySet[ChangeProposal]:
    proposals = ChangeProposal.objects.filter(target=design).select_related(
        "author", "source__owner", "target__owner", "merged_by"
    )
    if status:
        proposals = proposals.filter(status=status)
    return proposals


def proposal_get(design: Design, number: int | str) -> ChangeProposal:
    try:
        number = int(number)
    except (TypeError, ValueError):
        raise NotFound(f"No proposal {number!r} in {design.full_name}.") from None
    proposal = proposals_of(design).filter(number=number).first()
    if proposal is None:
        raise NotFound(f"No proposal #{number} in {design.full_name}.")
    proposal.target = design
    return proposal


def proposal_commits(proposal: ChangeProposal) -> list[Commit]:
    """The commits the proposal brings (newest first), as last computed."""
    if not proposal.head_sha:
        return []
    base = proposal.target_sha if proposal.is_open else proposal.merge_base
    rev = f"{base}..{proposal.head_sha}" if base else proposal.head_sha
    return proposal.target.repo.log(rev, limit=MAX_LISTED_COMMITS)


def proposal_diff(
    proposal: ChangeProposal, *, budget: DiffBudget | None = None, only_path: str | None = None
) -> tuple[str | None, str, list[FileDiff]]:
    """(base, head, files): what the proposal changes, from where its branch left the target."""
    base = proposal.merge_base or None
    files = compare(proposal.target.repo, base, proposal.head_sha, budget=budget, only_path=only_path)
    return base, proposal.head_sha, files


def proposal_network(design: Design) -> int:
    """The id of the root of the design's fork network."""
    current, seen = design, 0
    while current.forked_from_id is not None and seen < MAX_NETWORK_DEPTH:
        current = Design.objects.only("pk", "forked_from_id").get(pk=current.forked_from_id)
        seen += 1
    return current.pk


def proposal_sources_for(user: Viewer, target: Design) -> list[Design]:
    """Designs `user` may propose from into `target`: those they can write in its network."""
    if not user.is_authenticated:
        return []
    root = proposal_network(target)
    writable = (
        Design.objects.filter(Q(owner=user) | Q(collaborators__user=user, collaborators__role="write"))
        .filter(Q(pk=target.pk) | Q(forked_from__isnull=False) | Q(forks__isnull=False))
        .select_related("owner")
        .distinct()
        .order_by("owner__username", "slug")
    )
    return [design for design in writable[:200] if proposal_network(design) == root]


def proposal_can_change(proposal: ChangeProposal, user: Viewer) -> bool:
    """Its author and the target's writers may edit, close and reopen a proposal."""
    if not user.is_authenticated:
        return False
    return proposal.author_id == user.pk or design_can_write(proposal.target, user)


def proposal_is_stale(proposal: ChangeProposal) -> bool:
    """Whether either branch moved since the merge figures were computed."""
    if not proposal.is_open:
        return False
    target_head = proposal.target.repo.branch_head(proposal.target_branch)
    if target_head != (proposal.target_sha or None):
        return True
    source = proposal.source
    if source is None:
        return False
    head = source.repo.branch_head(proposal.source_branch)
    return head is not None and head != proposal.head_sha


@dataclass(frozen=True)
class UpstreamStatus:
    upstream: Design
    branch: str
    upstream_branch: str
    head: str | None
    upstream_head: str | None
    ahead: int  # commits only the fork's branch has
    behind: int  # commits only the upstream's branch has

    @property
    def can_fast_forward(self) -> bool:
        return self.ahead == 0 and self.behind > 0


def design_upstream_status(
    design: Design, user: Viewer, *, branch: str | None = None
) -> UpstreamStatus | None:
    """How the fork's `branch` (default branch) compares with its upstream's default
    branch; None if it is not a fork or the upstream is gone or invisible to `user`."""
    if design.forked_from_id is None:
        return None
    upstream = designs_visible_to(user).filter(pk=design.forked_from_id).first()
    if upstream is None:
        return None
    branch = branch or design.default_branch
    head = design.repo.branch_head(branch)
    upstream_branch = upstream.default_branch
    upstream_head = upstream.repo.branch_head(upstream_branch)
    ahead = behind = 0
    if head and upstream_head and head != upstream_head:
        # Commits never change, so the counts for a pair of heads are kept (for a while:
        # a key per pair must not pile up for ever).
        key = f"ahead-behind:{head}:{upstream_head}"
        counted = cache.get(key)
        if counted is None:
            counted = design.repo.ahead_behind(head, upstream_head, other=upstream.repo)
            cache.set(key, counted, timeout=HISTORY_COUNT_KEPT_S)
        ahead, behind = counted
    elif upstream_head and not head:
        behind = upstream.repo.count_commits(upstream_head)
    return UpstreamStatus(upstream, branch, upstream_branch, head, upstream_head, ahead, behind)


# -- makes ("I made one"; writes: designs/services/makes.py) --------------------------------

MAKE_SOURCE = "designs.make"


def make_source(make: Make) -> str:
    """The name of a make's signed record in hub.records."""
    return f"{MAKE_SOURCE}:{make.pk}"


@dataclass(frozen=True)
class MakeRow:
    """A make with its live signed record (None if it has none yet)."""

    make: Make
    credential: Credential | None


@dataclass(frozen=True)
class MakesOfVersion:
    """The makes of one commit of a design, with the tags that point at the commit."""

    commit_sha: str
    tags: list[str]
    rows: list[MakeRow]


def makes_visible_to(user: Viewer) -> QuerySet[Make]:
    """Makes of the designs `user` may see: a make of a private design is as private."""
    return Make.objects.filter(design__in=designs_visible_to(user).values("pk")).select_related(
        "maker", "design__owner"
    )


def make_get(design: Design, make_id: int | str) -> Make:
    """A make of `design` (which the caller has loaded as its requester may see it)."""
    make = None
    if str(make_id).isdigit():
        make = (
            Make.objects.select_related("maker", "design__owner")
            .filter(design=design, pk=int(make_id))
            .first()
        )
    if make is None:
        raise NotFound(f"No make {make_id} of {design.full_name}.")
    return make


def make_rows(makes: Iterable[Make]) -> list[MakeRow]:
    """Each make with its signed record, read in one query."""
    makes = list(makes)
    credentials = credentials_by_source(make_source(make) for make in makes)
    return [MakeRow(make, credentials.get(make_source(make))) for make in makes]


def design_tags_by_commit(design: Design) -> dict[str, list[str]]:
    """commit sha → names of the tags that point at it (one git call)."""
    tags: dict[str, list[str]] = {}
    for tag in design.repo.tags():
        tags.setdefault(tag.target, []).append(tag.name)
    return tags


def makes_of_design(design: Design) -> list[MakesOfVersion]:
    """A design's makes grouped per commit, the version made most recently first. The
    caller has loaded `design` as its requester may see it, so every make of it shows."""
    rows = make_rows(Make.objects.filter(design=design).select_related("maker", "design__owner"))
    if not rows:
        return []
    tags = design_tags_by_commit(design)
    versions: dict[str, list[MakeRow]] = {}
    for row in rows:
        versions.setdefault(row.make.commit_sha, []).append(row)
    return [MakesOfVersion(sha, tags.get(sha, []), grouped) for sha, grouped in versions.items()]


def makes_by_person(person: User, *, viewer: Viewer) -> QuerySet[Make]:
    """What `person` made, of the designs `viewer` may see."""
    return makes_visible_to(viewer).filter(maker=person)


def make_credential_visible(credential: Credential, viewer: Viewer) -> bool:
    """Whether `viewer` may see the signed record of a make: if they may see its design."""
    tail = credential.source.rsplit(":", 1)[-1]
    if not tail.isdigit():
        return False
    return makes_visible_to(viewer).filter(pk=int(tail)).exists()


# -- a person's profile -------------------------------------------------------------------


def designs_of_person(person: User, *, viewer: Viewer) -> QuerySet[Design]:
    """The designs `person` owns that `viewer` may see, newest change first."""
    return designs_visible_to(viewer).filter(owner=person).order_by("-updated_at")


def upstreams_visible(designs: Iterable[Design], viewer: Viewer) -> set[int]:
    """Ids of the upstreams of `designs` that `viewer` may see (one query): a fork names its
    upstream only to those who may see it."""
    ids = {design.forked_from_id for design in designs if design.forked_from_id is not None}
    if not ids:
        return set()
    return set(designs_visible_to(viewer).filter(pk__in=ids).values_list("pk", flat=True))


# -- watching, stars and the lists' order (designs/services/watches.py) ---------------------

# The orders a design list offers (?sort=): the most recently updated first, or the most
# starred, forked or made, ties broken by the most recent update.
DESIGN_SORTS = ("updated", "stars", "forks", "makes")


def _counted(rows: QuerySet[Any], *, by: str) -> Coalesce:
    """The number of `rows` (filtered on OuterRef("pk") through `by`), as a subquery."""
    grouped = rows.order_by().values(by).annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(grouped, output_field=IntegerField()), 0)


def _forks_counted(viewer: Viewer) -> QuerySet[Design]:
    # Only the forks `viewer` may see: a count never tells of a private design.
    return _visible(Design.objects.filter(forked_from=OuterRef("pk")), viewer)


def designs_sorted(designs: QuerySet[Design], *, sort: str, viewer: Viewer) -> QuerySet[Design]:
    """`designs` in the order `sort` names (one of DESIGN_SORTS)."""
    if sort == "stars":
        key = _counted(Star.objects.filter(design=OuterRef("pk")), by="design")
    elif sort == "forks":
        key = _counted(_forks_counted(viewer), by="forked_from")
    elif sort == "makes":
        key = _counted(Make.objects.filter(design=OuterRef("pk")), by="design")
    else:
        return designs.order_by("-updated_at", "-pk")
    return designs.annotate(sort_key=key).order_by("-sort_key", "-updated_at", "-pk")


@dataclass(frozen=True)
class SocialCounts:
    stars: int
    watchers: int
    forks: int
    makes: int


def social_counts(designs: list[Design], *, viewer: Viewer) -> dict[int, SocialCounts]:
    """Stars, watchers (not ignoring), forks `viewer` may see and makes of each of
    `designs`: one query however many designs."""
    ids = [design.pk for design in designs]
    if not ids:
        return {}
    rows = (
        Design.objects.filter(pk__in=ids)
        .order_by()
        .annotate(
            n_stars=_counted(Star.objects.filter(design=OuterRef("pk")), by="design"),
            n_watchers=_counted(
                Watch.objects.filter(design=OuterRef("pk")).exclude(level=Watch.Level.IGNORE), by="design"
            ),
            n_forks=_counted(_forks_counted(viewer), by="forked_from"),
            n_makes=_counted(Make.objects.filter(design=OuterRef("pk")), by="design"),
        )
        .values_list("pk", "n_stars", "n_watchers", "n_forks", "n_makes")
    )
    return {pk: SocialCounts(*figures) for pk, *figures in rows}


def with_social_counts(designs: list[Design], *, viewer: Viewer) -> list[Design]:
    """`designs`, each with `.social` (SocialCounts) set for lists and pages."""
    counts = social_counts(designs, viewer=viewer)
    for design in designs:
        design.social = counts[design.pk]
    return designs


def watch_of(design: Design, user: Viewer) -> Watch | None:
    if not user.is_authenticated:
        return None
    return Watch.objects.filter(design=design, user=user).first()


def has_starred(design: Design, user: Viewer) -> bool:
    return user.is_authenticated and Star.objects.filter(design=design, user=user).exists()


# -- releases and their files (designs/services/releases.py) --------------------------------


@dataclass(frozen=True)
class Release:
    """A release as pages and the API show it: the tag, its notes as HTML, its files."""

    tag: Tag
    notes_html: str
    assets: list[ReleaseAsset]


def _assets_by_tag(design: Design, tags: Iterable[str]) -> dict[str, list[ReleaseAsset]]:
    wanted = list(tags)
    grouped: dict[str, list[ReleaseAsset]] = {name: [] for name in wanted}
    rows = ReleaseAsset.objects.filter(design=design).select_related("uploaded_by")
    if len(wanted) == 1:
        rows = rows.filter(tag=wanted[0])
    if wanted:
        for asset in rows:
            if asset.tag in grouped:
                grouped[asset.tag].append(asset)
    return grouped


def release_tags(design: Design) -> list[Tag]:
    """The tags of `design`'s releases, newest first (one git process): pages take a
    page of them to `design_releases`."""
    return design.repo.tags()


def design_releases(design: Design, tags: Sequence[Tag]) -> list[Release]:
    """The releases of `tags` (a page of `release_tags`) with notes and files: one query
    however many releases, and notes rendered only for these. Files whose tag is gone are
    not shown (they are deleted with the tag, `release_assets_prune`)."""
    assets = _assets_by_tag(design, (tag.name for tag in tags))
    return [Release(tag, design_release_notes(design, tag), assets[tag.name]) for tag in tags]


def design_release(design: Design, tag: str) -> Release:
    """One release of `design`, or NotFound."""
    found = design_tag(design, tag)
    return Release(found, design_release_notes(design, found), _assets_by_tag(design, [tag])[tag])


def latest_release(design: Design) -> Release | None:
    """The newest release of `design` (by tag date, as the releases page lists them), for
    the design page's small block; None when it has none."""
    tags = design.repo.tags()
    if not tags:
        return None
    newest = tags[0]
    return Release(
        newest, design_release_notes(design, newest), _assets_by_tag(design, [newest.name])[newest.name]
    )


def release_asset_get(design: Design, *, tag: str, name: str) -> ReleaseAsset:
    """File `name` of release `tag` of `design` (seen by whoever may see the design), or
    NotFound; a file left behind by a deleted tag is not found either."""
    # A NUL can be neither in a name nor in a tag; PostgreSQL and git would refuse it loudly.
    asset = (
        None if "\0" in tag + name else ReleaseAsset.objects.filter(design=design, tag=tag, name=name).first()
    )
    if asset is None or design.repo.resolve_ref(f"refs/tags/{tag}") is None:
        raise NotFound(f"Release {tag} has no file {name!r}.")
    return asset
