"""Comparing two revisions of a design, file by file.

Each changed file gets a status and size delta; a *differ* chosen by the file's name then
adds a detailed comparison: a unified diff for text, a row-level diff for CSV bills of
materials. Other kinds plug in with `register_differ`, or with `register_prepared_differ`
when they read rows for the files they compare (the geometric mesh differ).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from designs import bom
from designs.git import SUBMODULE_MODE, ChangedFile, Repository

MAX_TEXT_DIFF_BYTES = 1024 * 1024
BINARY_SNIFF_BYTES = 8000


@dataclass(frozen=True)
class DiffBudget:
    """How much one answer compares in detail: at most `files` files whose blobs (old and
    new) add up to at most `bytes`. Files beyond it are listed with their sizes only, as
    kind "deferred", and are compared on request one at a time (`compare(only_path=…)`).
    Pages thus stay small, and a worker's memory bounded, whatever a commit holds."""

    files: int
    bytes: int


# What a diff page shows at once (the commit, compare and proposal pages).
PAGE_BUDGET = DiffBudget(files=100, bytes=2 * 1024 * 1024)


@dataclass
class FileDiff:
    status: str
    path: str
    old_path: str | None
    old_sha: str | None
    new_sha: str | None
    old_size: int | None
    new_size: int | None
    kind: str = "binary"  # what `detail` holds: "text", "bom", "binary", or a plug-in's kind
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def size_delta(self) -> int:
        return (self.new_size or 0) - (self.old_size or 0)


# A differ gets the repository and one file's change and returns (kind, detail), or None
# to let the next differ try.
Differ = Callable[[Repository, FileDiff], "tuple[str, dict[str, Any]] | None"]
# A differ that reads database rows for each file (the mesh differ's analyses) would cost
# a query per changed file. It registers a preparer instead: called once per comparison
# with every file to diff, the preparer reads what they all need in one go and returns
# the differ to use for each of them.
Prepare = Callable[[Repository, "list[FileDiff]"], Differ]
# In the order they are tried: (the function registered, so that registering it twice is
# harmless; its preparer).
_differs: list[tuple[Callable[..., Any], Prepare]] = []


def register_differ(differ: Differ, *, first: bool = True) -> None:
    """Add a differ; `first` puts it ahead of the built-in text and BOM ones."""
    _register(differ, lambda repo, changes: differ, first=first)


def register_prepared_differ(prepare: Prepare, *, first: bool = True) -> None:
    """Add a differ made for each comparison by `prepare(repo, changes)`; `first` as above."""
    _register(prepare, prepare, first=first)


def _register(registered: Callable[..., Any], prepare: Prepare, *, first: bool) -> None:
    if any(known is registered for known, _ in _differs):
        return
    if first:
        _differs.insert(0, (registered, prepare))
    else:
        _differs.append((registered, prepare))


def _read_pair(repo: Repository, change: FileDiff) -> tuple[bytes, bytes]:
    old = repo.read_blob(change.old_sha) if change.old_sha else b""
    new = repo.read_blob(change.new_sha) if change.new_sha else b""
    return old, new


def _too_big(change: FileDiff) -> bool:
    return max(change.old_size or 0, change.new_size or 0) > MAX_TEXT_DIFF_BYTES


def _is_text(data: bytes) -> bool:
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        return False
    try:
        data[:BINARY_SNIFF_BYTES].decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the sniff boundary is still text.
        return exc.start >= BINARY_SNIFF_BYTES - 4
    return True


def bom_differ(repo: Repository, change: FileDiff) -> tuple[str, dict[str, Any]] | None:
    if not bom.is_bom_path(change.path) or _too_big(change):
        return None
    old, new = _read_pair(repo, change)
    if not (_is_text(old) and _is_text(new)):
        return None
    try:
        result = bom.diff_bom(old.decode("utf-8", "replace"), new.decode("utf-8", "replace"))
    except bom.BomParseError:
        return None
    detail = {
        "key_column": result.key_column,
        "quantity_column": result.quantity_column,
        "added": result.added,
        "removed": result.removed,
        "changed": result.changed,
        "rows": [
            {
                "kind": c.kind,
                "key": c.key,
                "old": c.old,
                "new": c.new,
                "quantity_delta": c.quantity_delta,
                "changed_fields": c.changed_fields,
            }
            for c in result.changes
        ],
        "patch": repo.unified_diff(change.old_sha, change.new_sha),
    }
    return "bom", detail


def text_differ(repo: Repository, change: FileDiff) -> tuple[str, dict[str, Any]] | None:
    if _too_big(change):
        return "binary", {"reason": f"too large to show a text diff (over {MAX_TEXT_DIFF_BYTES:,} bytes)"}
    old, new = _read_pair(repo, change)
    if not (_is_text(old) and _is_text(new)):
        return None
    patch = repo.unified_diff(change.old_sha, change.new_sha)
    # Drop git's header lines naming blob shas; the page shows paths itself.
    body = patch.split("\n@@", 1)
    patch = "@@" + body[1] if len(body) == 2 else ""
    added = sum(1 for line in patch.splitlines() if line.startswith("+"))
    removed = sum(1 for line in patch.splitlines() if line.startswith("-"))
    return "text", {"patch": patch, "additions": added, "deletions": removed}


def submodule_detail(change: ChangedFile) -> dict[str, Any]:
    """The commits a submodule was pinned at before and after (None: not a submodule then).

    Its shas name commits of another repository, which the hub does not hold: nothing
    is read, the pins are the whole comparison."""
    return {
        "old_commit": change.old_sha if change.old_mode == SUBMODULE_MODE else None,
        "new_commit": change.new_sha if change.new_mode == SUBMODULE_MODE else None,
    }


def compare(
    repo: Repository,
    base: str | None,
    head: str,
    *,
    details: bool = True,
    budget: DiffBudget | None = None,
    only_path: str | None = None,
) -> list[FileDiff]:
    """Every changed file with its sizes and, within `budget` (None: no limit), the
    detailed comparison its differ makes. `only_path`: that one file (the "show this
    file's diff" link of a deferred file), compared whatever the budget."""
    changes: list[ChangedFile] = repo.diff(base, head)
    if only_path is not None:
        changes = [c for c in changes if c.path == only_path]
        budget = None
    files = [c for c in changes if not c.is_submodule]
    sizes = repo.blob_sizes([c.old_sha for c in files if c.old_sha] + [c.new_sha for c in files if c.new_sha])
    diffs = [
        FileDiff(
            status=c.status,
            path=c.path,
            old_path=c.old_path,
            old_sha=c.old_sha,
            new_sha=c.new_sha,
            old_size=sizes.get(c.old_sha) if c.old_sha else None,
            new_size=sizes.get(c.new_sha) if c.new_sha else None,
        )
        if not c.is_submodule
        else FileDiff(
            status=c.status,
            path=c.path,
            old_path=c.old_path,
            old_sha=c.old_sha,
            new_sha=c.new_sha,
            old_size=None,
            new_size=None,
            kind="submodule",
            detail=submodule_detail(c),
        )
        for c in changes
    ]
    # Pure renames (same blob) have nothing to compare; submodules have only their pins.
    to_diff = [d for d in diffs if d.old_sha != d.new_sha and d.kind != "submodule"] if details else []
    if not to_diff:
        return diffs
    if budget is not None:
        to_diff = within_files(budget, to_diff)
    # Plug-in differs first (the mesh differ compares stored analyses, not the blobs), then
    # the built-in ones, which read both blobs: the budget's bytes are for those.
    plugins = [prepare(repo, to_diff) for _, prepare in _differs]
    unclaimed = []
    for file_diff in to_diff:
        for differ in plugins:
            found = differ(repo, file_diff)
            if found is not None:
                file_diff.kind, file_diff.detail = found
                break
        else:
            unclaimed.append(file_diff)
    if budget is not None:
        unclaimed = within_bytes(budget, unclaimed)
    for file_diff in unclaimed:
        _builtin_detail(repo, file_diff)
    return diffs


def _builtin_detail(repo: Repository, file_diff: FileDiff) -> None:
    for builtin in (bom_differ, text_differ):
        found = builtin(repo, file_diff)
        if found is not None:
            file_diff.kind, file_diff.detail = found
            return


def differ_key(change: FileDiff) -> str:
    """Which built-in comparison a file gets, from its name alone (no blob read): with the
    two blob shas, what a cached result of `detail_of` depends on."""
    return "bom" if bom.is_bom_path(change.path) else "text"


def detail_of(repo: Repository, change: FileDiff) -> tuple[str, dict[str, Any]]:
    """One file's detailed comparison, as `compare` makes it (plug-ins, then the built-in
    differs), whatever its size: for the background worker that fills a page's diffs."""
    for _, prepare in _differs:
        found = prepare(repo, [change])(repo, change)
        if found is not None:
            return found
    _builtin_detail(repo, change)
    return change.kind, change.detail


def _defer(file_diff: FileDiff, budget: DiffBudget) -> None:
    file_diff.kind = "deferred"
    file_diff.detail = {
        "reason": f"not shown: this page compares at most {budget.files} files and "
        f"{budget.bytes // (1024 * 1024)} MB of text at once"
    }


def within_files(budget: DiffBudget, candidates: list[FileDiff]) -> list[FileDiff]:
    """The first `budget.files` files; the others become "deferred" rows (sizes only)."""
    for file_diff in candidates[budget.files :]:
        _defer(file_diff, budget)
    return candidates[: budget.files]


def within_bytes(budget: DiffBudget, candidates: list[FileDiff]) -> list[FileDiff]:
    """The files whose blobs fit in `budget.bytes`, in order; the others are deferred."""
    chosen: list[FileDiff] = []
    left = budget.bytes
    for file_diff in candidates:
        cost = (file_diff.old_size or 0) + (file_diff.new_size or 0)
        if cost <= left:
            chosen.append(file_diff)
            left -= cost
        else:
            _defer(file_diff, budget)
    return chosen
