"""Resolving a proposal's conflicts on the hub: file by file, without a working copy.

For each conflicting path the person keeps the target's version, keeps the proposal's
version, uploads a resolved file, or (text files) picks a side per conflict hunk or edits
the file with its conflict markers. The resolved tree is `merge-tree`'s result with those
paths replaced, built and checked by git's own rules as a commit's tree is.

Who may resolve, and where the merge commit goes (docs/proposals.md):
- a writer of the target design: the merge commit (parents: target head, proposal head)
  moves the target branch, so resolving merges the proposal;
- otherwise the proposal's author, if they can still write its source design: the merge
  commit (parents: proposal head, target head) moves the source branch, and the proposal
  then merges without conflicts for a writer of the target.

Both heads are the ones the person resolved against (`expected_head`/`expected_target`):
if either branch moved, nothing is written (Conflict). The branch moves by
compare-and-swap from the head the merge was built on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.core.files import File

from designs import selectors
from designs.git import FileEdit, GitError, RefMoved, Repository, TreeRefused
from designs.models import ChangeProposal, Design
from designs.selectors import pointer_oids
from designs.services.commits import Upload, person_for, upload_edits
from designs.services.lfs import lfs_object_link
from designs.services.proposals import merge_attributes_file, proposal_land, proposal_refresh
from designs.services.refs import refs_changed
from hub.auth import Viewer
from hub.exceptions import Conflict, PermissionDenied, ValidationError
from hub.models import User

# A text conflict larger than this is resolved by keeping a side or uploading a file.
MAX_TEXT_BYTES = 512 * 1024
MARKER = re.compile(r"^(<{7}|={7}|>{7}|\|{7})(?: |$)", re.M)
KEEPS = ("target", "source", "upload", "hunks", "text")
HUNK_CHOICES = ("target", "source", "both")


@dataclass(frozen=True)
class Hunk:
    """One stretch of a text conflict: lines both sides agree on (`common`), or the
    target's lines and the proposal's lines for the same stretch."""

    common: str | None = None
    target: str = ""
    source: str = ""

    @property
    def is_conflict(self) -> bool:
        return self.common is None


@dataclass(frozen=True)
class ConflictFile:
    path: str
    kind: str
    message: str
    in_target: bool
    in_source: bool
    marked_text: str | None = None  # the file with conflict markers, for text conflicts
    hunks: list[Hunk] = field(default_factory=list)

    @property
    def is_text(self) -> bool:
        return self.marked_text is not None

    @property
    def conflict_hunks(self) -> int:
        return sum(1 for hunk in self.hunks if hunk.is_conflict)


@dataclass(frozen=True)
class Resolution:
    """What to do with one conflicting path. `keep` is "target", "source", "upload"
    (with `upload`), "hunks" (with one of HUNK_CHOICES per conflict hunk, in order) or
    "text" (with `text`, the whole file, no conflict markers left)."""

    path: str
    keep: str
    hunks: Sequence[str] = ()
    text: str | None = None
    upload: File | None = None


@dataclass(frozen=True)
class Resolved:
    where: str  # "target" (the proposal is merged) or "source" (the source branch moved)
    sha: str
    branch: str


def resolver_side(proposal: ChangeProposal, user: Viewer) -> str | None:
    """Where `user`'s resolution would go: "target", "source", or None if they may not resolve."""
    if not user.is_authenticated or not proposal.is_open:
        return None
    target = proposal.target
    if selectors.design_can_write(target, user) and selectors.design_mirror(target) is None:
        return "target"
    source = proposal.source
    if (
        source is not None
        and proposal.author_id == user.pk
        and selectors.design_can_write(source, user)
        and selectors.design_mirror(source) is None
    ):
        return "source"
    return None


def split_conflict_text(text: str) -> list[Hunk]:
    """The stretches of a file `merge-tree` wrote with conflict markers (target's lines
    between `<<<<<<<` and `=======`, the proposal's between `=======` and `>>>>>>>`)."""
    hunks: list[Hunk] = []
    common: list[str] = []
    ours: list[str] = []
    theirs: list[str] = []
    state = "common"
    for line in text.splitlines(keepends=True):
        if state == "common" and line.startswith("<<<<<<<"):
            if common:
                hunks.append(Hunk(common="".join(common)))
                common = []
            state = "target"
        elif state == "target" and line.startswith("|||||||"):
            state = "base"
        elif state in ("target", "base") and line.startswith("======="):
            state = "source"
        elif state == "source" and line.startswith(">>>>>>>"):
            hunks.append(Hunk(target="".join(ours), source="".join(theirs)))
            ours, theirs = [], []
            state = "common"
        elif state == "common":
            common.append(line)
        elif state == "target":
            ours.append(line)
        elif state == "source":
            theirs.append(line)
    if state != "common":
        raise ValueError("unterminated conflict hunk")
    if common:
        hunks.append(Hunk(common="".join(common)))
    return hunks


def join_hunks(hunks: list[Hunk], choices: Sequence[str]) -> str:
    """The file with each conflict hunk replaced by the chosen side(s)."""
    conflicts = [hunk for hunk in hunks if hunk.is_conflict]
    if len(choices) != len(conflicts) or any(choice not in HUNK_CHOICES for choice in choices):
        raise ValidationError(
            f"Choose {', '.join(HUNK_CHOICES)} for each of the {len(conflicts)} conflicting stretches."
        )
    parts: list[str] = []
    picks = iter(choices)
    for hunk in hunks:
        if hunk.common is not None:
            parts.append(hunk.common)
            continue
        choice = next(picks)
        if choice in ("target", "both"):
            parts.append(hunk.target)
        if choice in ("source", "both"):
            if choice == "both" and hunk.target and not hunk.target.endswith("\n"):
                parts.append("\n")
            parts.append(hunk.source)
    return "".join(parts)


def _merge(repo: Repository, proposal: ChangeProposal) -> tuple[str, dict[str, object]]:
    """(merge-tree's result tree, conflicts by path) for the proposal's two heads in `repo`;
    the target is `ours`, so conflict markers show its lines first."""
    result = repo.merge_tree(proposal.target_sha, proposal.head_sha, attributes_file=merge_attributes_file())
    return result.tree, {conflict.path: conflict for conflict in result.conflicts}


def proposal_conflict_files(proposal: ChangeProposal) -> list[ConflictFile]:
    """The conflicting files of an open proposal (as last computed), each with its text
    hunks when it can be resolved line by line in the browser."""
    if proposal.merge_state != ChangeProposal.MergeState.CONFLICT or not proposal.conflicts:
        return []
    repo = proposal.target.repo
    tree, _ = _merge(repo, proposal)
    files = []
    for row in proposal.conflicts:
        path = row["path"]
        marked: str | None = None
        hunks: list[Hunk] = []
        if row["kind"] in ("content", "add/add"):
            entry = repo.entry(tree, path)
            if entry is not None and entry.kind == "blob" and (entry.size or 0) <= MAX_TEXT_BYTES:
                data = repo.read_blob(entry.sha)
                try:
                    text = data.decode("utf-8")
                    hunks = split_conflict_text(text)
                    marked = text if any(h.is_conflict for h in hunks) else None
                except (UnicodeDecodeError, ValueError):
                    marked, hunks = None, []
        files.append(
            ConflictFile(
                path=path,
                kind=row["kind"],
                message=row["message"],
                in_target=repo.entry(proposal.target_sha, path) is not None,
                in_source=repo.entry(proposal.head_sha, path) is not None,
                marked_text=marked,
                hunks=hunks if marked is not None else [],
            )
        )
    return files


def proposal_resolve(
    *,
    proposal: ChangeProposal,
    user: User,
    resolutions: Sequence[Resolution],
    expected_head: str,
    expected_target: str,
    message: str | None = None,
) -> Resolved:
    """Resolve every conflict of the proposal as `resolutions` say and commit the merge,
    authored by `user`, on the side they may write (`resolver_side`)."""
    side = resolver_side(proposal, user)
    if side is None:
        raise PermissionDenied(
            "Only people who can merge this proposal, or its author on their own branch, may resolve its conflicts."
        )
    proposal = proposal_refresh(proposal=proposal)
    if not proposal.is_open:
        raise Conflict(f"Proposal #{proposal.number} is {proposal.status}; there is nothing to resolve.")
    figures = {
        "head": proposal.head_sha,
        "target_head": proposal.target_sha,
        "merge_state": proposal.merge_state,
    }
    if expected_head != proposal.head_sha:
        raise Conflict(
            f"{proposal.source_branch} has moved since you started resolving (its head is now "
            f"{proposal.head_sha[:10]}); nothing was committed. Resolve again against the new commits.",
            **figures,
        )
    if expected_target != proposal.target_sha:
        raise Conflict(
            f"{proposal.target_branch} has moved since you started resolving (its head is now "
            f"{proposal.target_sha[:10]}); nothing was committed. Resolve again against it.",
            **figures,
        )
    if proposal.merge_state != ChangeProposal.MergeState.CONFLICT:
        raise Conflict("This proposal has no conflicts to resolve: merge it as it is.", **figures)

    target, source = proposal.target, proposal.source
    design: Design = target
    if side == "source":
        assert source is not None  # resolver_side said the author can write it
        design = source
        _bring_target_commits(proposal, source)
    repo = design.repo
    tree, conflicts = _merge(repo, proposal)
    wanted = {resolution.path: resolution for resolution in resolutions}
    missing = sorted(set(conflicts) - set(wanted))
    if missing:
        raise ValidationError(f"Say how to resolve every conflicting file; missing: {', '.join(missing)}.")
    unknown = sorted(set(wanted) - set(conflicts))
    if unknown:
        raise ValidationError(f"These files do not conflict: {', '.join(unknown)}.")
    edits: list[FileEdit] = []
    uploads: list[Upload] = []
    for path in sorted(conflicts):
        resolution = wanted[path]
        if resolution.keep not in KEEPS:
            raise ValidationError(f"{path}: choose one of {', '.join(KEEPS)}.")
        if resolution.keep in ("target", "source"):
            commit = proposal.target_sha if resolution.keep == "target" else proposal.head_sha
            entry = repo.entry(commit, path)
            if entry is not None and entry.kind == "tree":
                raise ValidationError(
                    f"{path} is a folder on one side and a file on the other: resolve it on the command line."
                )
            edits.append(FileEdit(path, None) if entry is None else FileEdit(path, entry.sha, entry.mode))
        elif resolution.keep == "upload":
            if resolution.upload is None:
                raise ValidationError(f"{path}: choose the resolved file to upload.")
            uploads.append(Upload(path, resolution.upload))
        else:
            edits.append(_text_edit(repo, tree, proposal, resolution))
    try:
        if uploads:
            # Stored as any upload is: size limits, LFS past the threshold or where
            # .gitattributes asks (the objects linked to the design that gets the commit).
            edits += upload_edits(design=design, base=tree, uploads=uploads)
        resolved_tree = repo.build_tree(tree, edits)
    except TreeRefused as exc:
        raise ValidationError(
            "Git refuses the resolved files, as it would in a push: " + "; ".join(exc.problems) + ".",
            problems=exc.problems,
        ) from None
    identity = person_for(user)
    paths = ", ".join(sorted(conflicts))
    if side == "target":
        text = (message or "").strip() or (
            f"Merge proposal #{proposal.number} from {proposal.source_name}:{proposal.source_branch}\n\n"
            f"{proposal.title}\n\nConflicts resolved in: {paths}"
        )
        new = repo.commit_tree(
            resolved_tree, [proposal.target_sha, proposal.head_sha], text, author=identity, committer=identity
        )
        proposal_land(proposal=proposal, user=user, new=new)
        return Resolved("target", new, proposal.target_branch)
    assert source is not None
    text = (message or "").strip() or (
        f"Merge {target.full_name}:{proposal.target_branch} into {proposal.source_branch}\n\n"
        f"Conflicts of proposal #{proposal.number} resolved in: {paths}"
    )
    new = repo.commit_tree(
        resolved_tree, [proposal.head_sha, proposal.target_sha], text, author=identity, committer=identity
    )
    try:
        repo.update_ref(
            f"refs/heads/{proposal.source_branch}",
            new,
            proposal.head_sha,
            message=f"fabhub: resolve proposal #{proposal.number} by {user.username}",
        )
    except RefMoved:
        proposal_refresh(proposal=proposal)
        raise Conflict(
            f"{proposal.source_branch} moved while the resolution was being committed; nothing was "
            "overwritten. Resolve again against its new head.",
            **figures,
        ) from None
    refs_changed(source, new_commits=repo.commits_between([new], [f"^{proposal.head_sha}"]))
    proposal_refresh(proposal=proposal)
    return Resolved("source", new, proposal.source_branch)


def _text_edit(repo: Repository, tree: str, proposal: ChangeProposal, resolution: Resolution) -> FileEdit:
    path = resolution.path
    entry = repo.entry(tree, path)
    if entry is None or entry.kind != "blob" or (entry.size or 0) > MAX_TEXT_BYTES:
        raise ValidationError(f"{path} cannot be resolved as text: keep a side or upload the resolved file.")
    try:
        marked = repo.read_blob(entry.sha).decode("utf-8")
        hunks = split_conflict_text(marked)
    except (UnicodeDecodeError, ValueError):
        raise ValidationError(
            f"{path} cannot be resolved as text: keep a side or upload the resolved file."
        ) from None
    if resolution.keep == "hunks":
        text = join_hunks(hunks, list(resolution.hunks))
    else:
        text = resolution.text or ""
        # Browsers send a textarea's lines with CRLF; keep the file's own line endings.
        if "\r\n" not in marked:
            text = text.replace("\r\n", "\n")
        left = MARKER.findall(text)
        if left:
            raise ValidationError(
                f"{path} still has conflict markers ({len(left)} line(s) starting with <<<<<<<, ======= "
                "or >>>>>>>): remove them, keeping the lines you want."
            )
    mode = entry.mode
    for commit in (proposal.target_sha, proposal.head_sha):
        side_entry = repo.entry(commit, path)
        if side_entry is not None:
            mode = side_entry.mode
            break
    return FileEdit(path, repo.write_blob(text.encode("utf-8")), mode)


def _bring_target_commits(proposal: ChangeProposal, source: Design) -> None:
    """Fetch the target's head into the source design (it may lag its upstream), and let
    the source serve the LFS objects the target's new commits point to."""
    repo, target = source.repo, proposal.target
    if repo.has_object(proposal.target_sha):
        return
    try:
        repo.fetch_local(target.repo, [f"refs/heads/{proposal.target_branch}"])
    except GitError:
        raise Conflict(
            f"{proposal.target_branch} could not be read from {target.full_name}; try again."
        ) from None
    if not repo.has_object(proposal.target_sha):
        raise Conflict(
            f"{proposal.target_branch} has moved since you started resolving; nothing was committed."
        )
    commits = repo.commits_between([proposal.target_sha], [f"^{proposal.head_sha}"])
    oids = pointer_oids(repo, commits)
    for oid, size in selectors.lfs_objects_served(target, oids).items():
        if oids.get(oid) == size:
            lfs_object_link(design=source, oid=oid, size=size)
