"""The rules every push must pass: ref protection, path names, blob sizes, LFS pointers.

A push's request runs them for git's pre-receive hook (designs/githttp.py, `PushCheck`)
on the objects the push brings, in quarantine. A pull mirror's refresh runs them too, on
what its fetch brought, before it publishes anything (designs/services/mirrors.py;
`update_errors` hands it what arrived, read once for both). They read git only, never the
database: the push's request runs them in a thread of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from designs import paths
from designs.git import ZERO_SHA, ChangeWalk, ObjectReader, Repository
from designs.lfs_store import MAX_POINTER_BYTES, LocalObjectStore, resolve_pointer
from hub.exceptions import ValidationError


@dataclass(frozen=True)
class PushRules:
    default_branch: str
    allow_default_branch_rewrite: bool
    max_blob_bytes: int
    # The local LFS store's folder; None skips the check that pointers name known objects.
    lfs_root: str | None = None
    allow_tag_changes: bool = False


@dataclass(frozen=True)
class Arrival:
    """What an update brings: its new commits (newest first) and the files, as (blob sha,
    path), that they add or change."""

    commits: list[str]
    added_blobs: list[tuple[str, str]]


def push_errors(
    repo: Repository,
    updates: list[tuple[str, str, str]],
    rules: PushRules,
    *,
    already_have: list[str] | None = None,
) -> list[str]:
    """Why the push must be refused; empty if it may go in.

    `updates` are (old, new, ref) as git gives them to the hook. What they bring is what
    their new tips reach and `already_have` (object ids) does not; None means no ref
    reaches it: a push in quarantine, where every ref still holds its old value.
    """
    with repo.object_reader() as reader:
        errors, _ = update_errors(repo, reader, updates, rules, already_have=already_have)
    return errors


def update_errors(
    repo: Repository,
    reader: ObjectReader,
    updates: list[tuple[str, str, str]],
    rules: PushRules,
    *,
    already_have: list[str] | None = None,
    walk: ChangeWalk | None = None,
) -> tuple[list[str], Arrival]:
    """`push_errors`, and what arrived, read from `reader` (a process of `repo`'s the
    caller may ask more of) and one walk of the new commits.

    A mirror names what it has already published in `already_have`: its fetch has moved
    the staging refs, so "reached by no ref" would find nothing new. `walk`: a walk of
    `repo`'s started beforehand (`Repository.fetch_quarantined`'s), asked for the new
    commits instead of a `git log` started now.
    """
    errors = []
    default_ref = f"refs/heads/{rules.default_branch}"
    for old, new, ref in updates:
        if ref.startswith("refs/tags/") and old != ZERO_SHA and not rules.allow_tag_changes:
            name = ref.removeprefix("refs/tags/")
            what = "deleted" if new == ZERO_SHA else "moved"
            errors.append(
                f"{name} is a release: tags cannot be {what} (the owner can allow it in the "
                "design's settings)."
            )
    for old, new, ref in updates:
        if ref != default_ref or rules.allow_default_branch_rewrite:
            continue
        if new == ZERO_SHA:
            errors.append(f"{rules.default_branch} is the default branch and cannot be deleted.")
        elif old != ZERO_SHA and not repo.is_ancestor(old, new):
            errors.append(
                f"{rules.default_branch} is the default branch: force pushes that rewrite its "
                "history are refused (the owner can allow them in the design's settings)."
            )
    for _, new, ref in updates:
        if new != ZERO_SHA:
            if not _is_text(ref):
                # git takes any bytes in a ref name; the hub keeps names as text.
                shown = ref.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                errors.append(f"{shown}: ref names must be UTF-8 text.")
                continue
            try:
                paths.check_visible(
                    ref.removeprefix("refs/heads/").removeprefix("refs/tags/"), what="Ref names"
                )
            except ValidationError as exc:
                errors.append(exc.message)
    tips = list(dict.fromkeys(new for _, new, _ in updates if new != ZERO_SHA))
    exclusions = None if already_have is None else [f"^{sha}" for sha in dict.fromkeys(already_have)]

    walker: ChangeWalk | Repository = repo
    if walk is not None and exclusions is not None:
        walker = walk
        walk.begin(tips, exclusions=exclusions)  # git walks while the reader answers below
    kinds = dict(zip(tips, reader.peeled_types(tips), strict=True))
    aliases = []
    for tip in tips:
        if kinds[tip] not in ("commit", "tree"):
            continue
        try:
            # Read by the reader's process: no `ls-tree` started per tip.
            paths.check_no_aliases(reader.all_paths(tip), [])
        except ValidationError as exc:
            aliases.append(f"{tip[:10]}: {exc.message}")
    commits, changes = walker.commits_and_changes(tips, exclusions=exclusions)
    # Names that arrive: a deletion must go through, it is how a bad name already in the
    # history (from before a rule) is removed.
    for path in dict.fromkeys(path for status, _, _, path in changes if path and status != "D"):
        try:
            paths.clean_path(path)
        except ValidationError as exc:
            errors.append(exc.message)
    errors += aliases

    # Every new blob a commit holds is one its diff adds, against a parent or (a root)
    # against nothing: the walk lists them. Only a tag of a tree or a blob, which git
    # allows, reaches blobs no commit holds; those few are listed by rev-list.
    objects = [(sha, path) for status, mode, sha, path in changes if status != "D" and mode != "160000"]
    others = [tip for tip in tips if kinds[tip] != "commit"]
    objects += repo.new_objects(others, exclusions=exclusions)
    limit = rules.max_blob_bytes
    # The sizes of the new blobs and the content of those small enough to be LFS
    # pointers, from the one git process.
    sizes = reader.blob_sizes(sha for sha, _ in dict.fromkeys(objects))
    for sha, path in objects:
        size = sizes.get(sha, 0)
        if size > limit:
            errors.append(
                f"{path or sha} is {size / 1024 / 1024:.1f} MB, over the {limit / 1024 / 1024:.0f} MB "
                "limit for files in git history. Track it with Git LFS "
                f"(git lfs track '{path or '*.ext'}') and push again."
            )
    if rules.lfs_root:
        errors += _missing_lfs_objects(reader, objects, sizes, LocalObjectStore(rules.lfs_root))
    added_blobs = [
        (sha, path)
        for status, mode, sha, path in changes
        if status != "D" and sha != ZERO_SHA and mode.startswith("100")
    ]
    # A name that is not UTF-8 (kept as surrogates) is shown escaped: the messages are
    # stored and shown as text.
    said = [error.encode("utf-8", "backslashreplace").decode("utf-8") for error in errors]
    return list(dict.fromkeys(said)), Arrival(commits, list(dict.fromkeys(added_blobs)))


def _is_text(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # bytes kept as surrogates (Repository.refs)
        return False
    return True


def _missing_lfs_objects(
    reader: ObjectReader,
    objects: list[tuple[str, str]],
    sizes: dict[str, int],
    store: LocalObjectStore,
) -> list[str]:
    """New LFS pointers whose object the hub does not have.

    git-lfs uploads objects before git sends the push, so a missing one means a clone or
    mirror that never had the content, or a push from a machine without git-lfs: let it
    in, and every later clone of the design fails to check that file out.
    """
    candidates = {}
    for sha, path in objects:
        if sha in sizes and sizes[sha] < MAX_POINTER_BYTES:
            candidates[sha] = path
    errors = []
    for sha, data in reader.read_blobs(dict.fromkeys(candidates, MAX_POINTER_BYTES - 1)).items():
        pointer = resolve_pointer(data) if data is not None else None
        if pointer is not None and store.size(pointer.oid) != pointer.size:
            errors.append(
                f"{candidates[sha] or sha} is a Git LFS pointer to an object the hub does not have "
                f"(sha256 {pointer.oid[:12]}…, {pointer.size:,} bytes). Upload it with "
                "`git lfs push --all origin`, then push again."
            )
    return errors
