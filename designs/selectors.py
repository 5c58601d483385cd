"""Reads: which designs a person may see, and what a repository holds at a revision."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.urls import reverse
from django.utils.html import escape

from designs.git import ChangedFile, Commit, Tag, TreeEntry
from designs.lfs_store import MAX_POINTER_BYTES, Pointer, StoreError, lfs_store, resolve_pointer, valid_oid
from designs.models import Collaborator, Design, LfsLock, LfsObject
from hub.auth import Viewer
from hub.exceptions import NotFound
from hub.markdown import render_markdown


def designs_visible_to(user: Viewer) -> QuerySet[Design]:
    """Public designs, plus private ones the user owns or collaborates on."""
    designs = Design.objects.select_related("owner", "forked_from__owner").prefetch_related("tags")
    if not user.is_authenticated:
        return designs.filter(visibility=Design.Visibility.PUBLIC)
    collaborates = Collaborator.objects.filter(design=OuterRef("pk"), user=user)
    return designs.filter(Q(visibility=Design.Visibility.PUBLIC) | Q(owner=user) | Exists(collaborates))


def design_get(*, user: Viewer, owner: str, slug: str) -> Design:
    """The design, or NotFound — also when it exists but `user` may not see it."""
    design = designs_visible_to(user).filter(owner__username=owner, slug__iexact=slug).first()
    if design is None:
        raise NotFound(f"No design {owner}/{slug}.")
    return design


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


def design_resolve(design: Design, rev: str | None) -> str:
    """The commit sha `rev` (default: the default branch) names, or NotFound."""
    rev = rev or design.default_branch
    sha = design.repo.resolve(rev)
    if sha is None:
        if rev == design.default_branch and design.repo.is_empty():
            raise NotFound(f"{design.full_name} has no commits yet.")
        raise NotFound(f"No branch, tag or commit {rev!r} in {design.full_name}.")
    return sha


def design_history(
    design: Design, *, rev: str | None, path: str | None, offset: int, limit: int
) -> tuple[int, list[Commit]]:
    """(total count, one page of commits) reachable from `rev`, optionally touching `path`."""
    sha = design_resolve(design, rev)
    repo = design.repo
    # A commit's history never changes, so its length is cached by sha for good.
    count_key = f"history-count:{design.pk}:{sha}:{path or ''}"
    total = cache.get(count_key)
    if total is None:
        total = repo.count_commits(sha, path=path)
        cache.set(count_key, total, timeout=None)
    return total, repo.log(sha, path=path, skip=offset, limit=limit)


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


def design_branches(design: Design) -> list[dict]:
    """Branches with their heads, the default branch first, then by name."""
    branches = [
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
    entries = {e.name.lower(): e for e in design.repo.ls_tree(sha) if e.kind == "blob"}
    for name in README_NAMES:
        if name in entries:
            return entries[name]
    return None


def design_readme(design: Design, *, sha: str) -> tuple[str | None, str]:
    """(path, sanitised HTML) of the README at `sha`; links point at the same revision.

    Markdown rendering is slow on some hostile inputs (seconds for tens of KB), so the
    HTML is rendered once per README blob and cached; the revision in its links is
    filled in per request.
    """
    entry = design_readme_entry(design, sha=sha)
    if entry is None:
        return None, ""
    owner, slug = design.owner.username, design.slug
    key = f"readme:{design.pk}:{owner}/{slug}:{entry.sha}:{entry.path}"
    html = cache.get(key)
    if html is None:
        text = design.repo.read_blob(entry.sha)[:MAX_README_BYTES].decode("utf-8", "replace")
        if entry.name.lower().endswith((".md", ".markdown")):

            def raw_url(path: str) -> str:
                return f"{reverse('design-raw', args=[owner, slug, path])}?ref={REVISION_PLACEHOLDER}"

            def page_url(path: str) -> str:
                return f"{reverse('design-blob', args=[owner, slug, path])}?ref={REVISION_PLACEHOLDER}"

            html = render_markdown(text, raw_url=raw_url, page_url=page_url)
        else:
            html = f"<pre>{escape(text)}</pre>"
        cache.set(key, html, timeout=24 * 3600)
    return entry.path, html.replace(REVISION_PLACEHOLDER, sha)


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
