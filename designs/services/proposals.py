"""Change proposals between designs of one fork network, and keeping a fork up to date.

A proposal asks to merge a branch of a fork (or of the design itself) into a branch of
the target design. Its head is copied into the target's repository as
`refs/proposals/<number>/head`: reviewing and merging then need nothing but the target
repository, and the proposal survives the deletion of its source branch or design.

Merging never uses a working copy: a fast-forward moves the branch; otherwise
`git merge-tree --write-tree` builds the merged tree from objects alone and
`commit-tree` makes the merge commit. Either way the target branch moves by
compare-and-swap from the head the merge was computed on, so a branch that moved in
between is never overwritten (409, and the proposal is checked again).

Conflicts are found before a merge is offered and listed by file. CAD and mesh files
(`WHOLE_FILE_SUFFIXES`) are merged as whole files, never line by line: a line merge of
two STEP or ASCII STL edits can produce a file that parses and is geometrically wrong.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from designs import selectors
from designs.git import Commit, GitError, MergeConflict, RefMoved, valid_ref_name
from designs.lfs_store import MAX_POINTER_BYTES, resolve_pointer
from designs.models import ChangeProposal, Design, ProposalComment
from designs.selectors import (
    REVISION_PLACEHOLDER,
    design_upstream_status,
    pointer_oids,
    proposal_can_change,
    proposal_is_stale,
    proposal_network,
    require_writer,
)
from designs.services import watches
from designs.services.assemblies import assembly_problems_at
from designs.services.commits import person_for
from designs.services.lfs import lfs_object_link
from designs.services.refs import refs_changed
from hub.exceptions import Conflict, NotFound, PermissionDenied, ValidationError
from hub.markdown import render_field
from hub.models import User

logger = logging.getLogger(__name__)

MAX_DESCRIPTION_CHARS = 50_000
MAX_COMMENT_CHARS = 20_000
# Merged as whole files: meshes, mechanical CAD and electronics layouts. Text formats
# among them (STEP, ASCII STL, OBJ, KiCad) would otherwise be merged line by line.
WHOLE_FILE_SUFFIXES = (
    "stl",
    "3mf",
    "obj",
    "ply",
    "off",
    "glb",
    "gltf",
    "amf",
    "step",
    "stp",
    "iges",
    "igs",
    "brep",
    "sat",
    "x_t",
    "x_b",
    "fcstd",
    "f3d",
    "f3z",
    "sldprt",
    "sldasm",
    "slddrw",
    "ipt",
    "iam",
    "idw",
    "catpart",
    "catproduct",
    "dwg",
    "dxf",
    "3dm",
    "skp",
    "blend",
    "kicad_pcb",
    "kicad_sch",
    "kicad_pro",
    "brd",
    "sch",
    "gbr",
)
CONFLICT_WORDS = {
    "lfs": "Both sides changed this file, which is stored with Git LFS: it conflicts as a whole "
    "file and cannot be merged line by line. Keep one version.",
    "binary": "Both sides changed this file. CAD, mesh and other binary files conflict as whole "
    "files and cannot be merged line by line: keep one version.",
    "content": "Both sides changed the same lines.",
    "modify/delete": "Changed on one side and deleted on the other.",
    "add/add": "Added on both sides with different content.",
    "rename": "Renamed differently on the two sides, or renamed on one side and deleted on the other.",
    "file/directory": "A file on one side is a folder on the other.",
    "other": "git could not merge this path.",
}


# -- opening and following ----------------------------------------------------------------


def proposal_create(
    *,
    target: Design,
    user: User,
    title: str,
    source: Design | None = None,
    source_branch: str,
    target_branch: str | None = None,
    description: str = "",
) -> ChangeProposal:
    """Open a proposal to merge `source_branch` of `source` (default: `target` itself) into
    `target_branch` of `target`. The caller has checked that `user` can see `target`."""
    source = source or target
    target_branch = target_branch or target.default_branch
    if not user.is_authenticated:
        raise PermissionDenied("Log in to propose changes.")
    if not selectors.design_can_write(source, user):
        raise PermissionDenied(f"Only people who can write to {source.full_name} can propose its changes.")
    mirror = selectors.design_mirror(target)
    if mirror is not None:
        raise ValidationError(
            f"{target.full_name} is a read-only mirror of {mirror.url}: propose the change there."
        )
    title = (title or "").strip()
    if not title:
        raise ValidationError("Give the proposal a title.")
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise ValidationError(f"The description is longer than {MAX_DESCRIPTION_CHARS:,} characters.")
    for name in (source_branch, target_branch):
        if not valid_ref_name("heads", name):
            raise ValidationError(f"{name!r} is not a valid branch name.")
    if source.pk != target.pk and proposal_network(source) != proposal_network(target):
        raise ValidationError(
            f"{source.full_name} is not a fork of {target.full_name} (nor of a common design)."
        )
    if source.pk == target.pk and source_branch == target_branch:
        raise ValidationError("Choose two different branches.")
    head = source.repo.branch_head(source_branch)
    if head is None:
        raise NotFound(f"There is no branch {source_branch!r} in {source.full_name}.")
    target_head = target.repo.branch_head(target_branch)
    if target_head is None:
        raise NotFound(f"There is no branch {target_branch!r} in {target.full_name}.")
    # A commit the target repository lacks cannot be in its branch: only then ask git.
    if target.repo.has_object(head) and target.repo.is_ancestor(head, target_head):
        raise ValidationError(
            f"Nothing to propose: {target_branch} already has every commit of {source_branch}."
        )
    for _attempt in range(5):
        try:
            with transaction.atomic():
                number = (
                    ChangeProposal.objects.filter(target=target).aggregate(n=Max("number"))["n"] or 0
                ) + 1
                proposal = ChangeProposal(
                    target=target,
                    number=number,
                    target_branch=target_branch,
                    source=source,
                    source_name=source.full_name,
                    source_branch=source_branch,
                    author=user,
                    title=title[:200],
                    description=description,
                    head_sha=head,
                )
                render_field(proposal, "description")
                proposal.save(force_insert=True)
                _copy_head(proposal, head)
        except GitError:
            raise Conflict(
                f"{source_branch} changed while the proposal was being opened; try again."
            ) from None
        except IntegrityError:
            if ChangeProposal.objects.filter(
                target=target,
                target_branch=target_branch,
                source=source,
                source_branch=source_branch,
                status=ChangeProposal.Status.OPEN,
            ).exists():
                raise Conflict(
                    f"A proposal from {source.full_name}:{source_branch} to {target_branch} is already open."
                ) from None
            continue  # another proposal took the number: take the next one
        break
    else:
        raise Conflict("Too many proposals are being opened at once; try again.")
    proposal = proposal_refresh(proposal=proposal)
    watches.proposal_opened_notify(proposal=proposal, actor=user)
    return proposal


@dataclass(frozen=True)
class ProposalPreview:
    """What opening a proposal from `source`:`source_branch` into `target`:`target_branch`
    would propose: the commits since the branches parted (`base`), or why nothing can be."""

    source: Design
    source_branch: str
    target: Design
    target_branch: str
    head: str | None = None
    target_head: str | None = None
    base: str | None = None
    commits: list[Commit] = field(default_factory=list)
    problem: str = ""
    already_open: ChangeProposal | None = None


def proposal_preview(
    *, source: Design, source_branch: str, target: Design, target_branch: str
) -> ProposalPreview:
    """A read: the preview of a proposal (the caller checked `source` and `target` are
    visible and of one fork network). Nothing is copied between the repositories: the
    common ancestor is found reading the target's objects in place."""
    empty = ProposalPreview(source, source_branch, target, target_branch)
    head = source.repo.branch_head(source_branch)
    target_head = target.repo.branch_head(target_branch)
    if head is None:
        return replace(empty, problem=f"There is no branch {source_branch!r} in {source.full_name}.")
    if target_head is None:
        return replace(empty, problem=f"There is no branch {target_branch!r} in {target.full_name}.")
    found = replace(empty, head=head, target_head=target_head)
    if source.pk == target.pk and source_branch == target_branch:
        return replace(found, problem="Choose two different branches.")
    base = source.repo.merge_base(head, target_head, other=target.repo)
    if base == head:
        return replace(
            found,
            base=base,
            problem=f"Nothing to propose: {target_branch} already has every commit of {source_branch}.",
        )
    commits = source.repo.log(f"{base}..{head}" if base else head, limit=selectors.MAX_LISTED_COMMITS)
    already_open = ChangeProposal.objects.filter(
        target=target,
        target_branch=target_branch,
        source=source,
        source_branch=source_branch,
        status=ChangeProposal.Status.OPEN,
    ).first()
    return replace(found, base=base, commits=commits, already_open=already_open)


def proposal_open_from(*, source: Design, source_branch: str) -> ChangeProposal | None:
    """A read: the open proposal of `source_branch` of `source`, into any design."""
    return (
        ChangeProposal.objects.filter(
            source=source, source_branch=source_branch, status=ChangeProposal.Status.OPEN
        )
        .select_related("target__owner")
        .order_by("-created_at")
        .first()
    )


def _copy_head(proposal: ChangeProposal, head: str) -> None:
    """Point `refs/proposals/<n>/head` at `head`, fetching its commits from the source."""
    repo = proposal.target.repo
    source = proposal.source
    if source is not None and source.pk != proposal.target_id and not repo.has_object(head):
        # Fetch the branch with no destination ref: the ref below is then set by
        # compare-and-swap to the head that was read, whatever the branch did meanwhile.
        repo.fetch_local(source.repo, [f"refs/heads/{proposal.source_branch}"])
        _share_lfs(proposal, head)
    current = repo.resolve_ref(proposal.head_ref)
    if current != head:
        repo.update_ref(proposal.head_ref, head, current, message=f"fabhub: proposal #{proposal.number}")


def _share_lfs(proposal: ChangeProposal, head: str) -> None:
    """The target may serve the LFS objects the proposal's new files point to, if the
    source serves them: the person proposing could read them, and merging them is the point."""
    source, repo = proposal.source, proposal.target.repo
    if source is None:
        return
    target_head = repo.branch_head(proposal.target_branch)
    commits = repo.commits_between([head], [f"^{target_head}"] if target_head else [])
    oids = pointer_oids(repo, commits)
    for oid, size in selectors.lfs_objects_served(source, oids).items():
        if oids.get(oid) == size:
            lfs_object_link(design=proposal.target, oid=oid, size=size)


def proposal_refresh(*, proposal: ChangeProposal) -> ChangeProposal:
    """Follow both branches and recompute what merging would do; return the proposal.

    A proposal whose commits all reached the target branch (merged by a push, a sync or
    another proposal) is marked merged.
    """
    if not proposal.is_open:
        return proposal
    repo = proposal.target.repo
    head = proposal.head_sha
    source = proposal.source
    if source is not None:
        moved_to = source.repo.branch_head(proposal.source_branch)
        if moved_to is not None and moved_to != head:
            try:
                _copy_head(proposal, moved_to)
                head = moved_to
            except (GitError, RefMoved):
                # A concurrent refresh copied a head already; use whatever it set.
                head = repo.resolve_ref(proposal.head_ref) or head
    target_sha = repo.branch_head(proposal.target_branch)
    figures: dict = {
        "head_sha": head,
        "target_sha": target_sha or "",
        "conflicts": [],
        "updated_at": timezone.now(),
    }
    if target_sha is None or not repo.has_object(head):
        figures.update(merge_state=ChangeProposal.MergeState.MISSING, merge_base="", commit_count=0)
    elif repo.is_ancestor(head, target_sha):
        # Everything proposed is in the target already.
        figures.update(
            status=ChangeProposal.Status.MERGED,
            merged_sha=target_sha,
            merged_at=timezone.now(),
            merge_base=head,
            commit_count=0,
            merge_state=ChangeProposal.MergeState.FAST_FORWARD,
        )
    else:
        figures["merge_base"] = repo.merge_base(target_sha, head) or ""
        figures["commit_count"] = repo.count_commits(f"{target_sha}..{head}")
        if repo.is_ancestor(target_sha, head):
            figures["merge_state"] = ChangeProposal.MergeState.FAST_FORWARD
        else:
            result = repo.merge_tree(target_sha, head, attributes_file=merge_attributes_file())
            if result.clean:
                figures["merge_state"] = ChangeProposal.MergeState.CLEAN
            else:
                figures["merge_state"] = ChangeProposal.MergeState.CONFLICT
                figures["conflicts"] = [_conflict_row(repo, c) for c in result.conflicts]
    moved = ChangeProposal.objects.filter(pk=proposal.pk, status=ChangeProposal.Status.OPEN).update(**figures)
    for name, value in figures.items():
        setattr(proposal, name, value)
    if moved and figures.get("status") == ChangeProposal.Status.MERGED:
        # Its commits reached the target branch by a push: this refresh, the one that
        # claimed the open row, tells its people (once), with nobody as the actor.
        watches.proposal_decided_notify(proposal=proposal, actor=None)
    return proposal


def proposal_fresh(proposal: ChangeProposal) -> ChangeProposal:
    """The proposal with figures for the branches as they are now (recomputed if they moved)."""
    return proposal_refresh(proposal=proposal) if proposal_is_stale(proposal) else proposal


def _conflict_row(repo, conflict: MergeConflict) -> dict[str, str]:
    kind = conflict.kind
    blobs = [sha for sha in (conflict.ours_sha, conflict.theirs_sha) if sha]
    if blobs:
        sizes = repo.blob_sizes(blobs)
        small = [sha for sha in blobs if sizes.get(sha, MAX_POINTER_BYTES) < MAX_POINTER_BYTES]
        if any(resolve_pointer(data) for data in repo.read_blobs(small).values()):
            kind = "lfs"
    if kind == "content" and conflict.path.rsplit(".", 1)[-1].lower() in WHOLE_FILE_SUFFIXES:
        kind = "binary"
    return {"path": conflict.path, "kind": kind, "message": CONFLICT_WORDS.get(kind, CONFLICT_WORDS["other"])}


def merge_attributes_file() -> Path:
    """A gitattributes file of the hub's that makes `merge-tree` treat CAD and mesh files
    as binary (conflict as whole files); written once under the data directory."""
    path = Path(settings.DATA_DIR) / "git" / "merge.gitattributes"
    lines = []
    for suffix in WHOLE_FILE_SUFFIXES:
        pattern = "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in suffix)
        lines.append(f"*.{pattern} merge=binary -text\n")
    text = "".join(lines)
    try:
        if path.read_text() == text:
            return path
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{timezone.now().timestamp()}.tmp")
    temporary.write_text(text)
    temporary.replace(path)
    return path


def proposals_refresh_by_id(proposal_ids: list[int]) -> int:
    refreshed = 0
    for proposal in ChangeProposal.objects.filter(
        pk__in=proposal_ids, status=ChangeProposal.Status.OPEN
    ).select_related("target__owner", "source__owner"):
        try:
            proposal_refresh(proposal=proposal)
            refreshed += 1
        except GitError:
            logger.exception("could not refresh proposal %s", proposal)
    return refreshed


# -- changing -----------------------------------------------------------------------------


def proposal_update(
    *, proposal: ChangeProposal, user: User, title: str | None = None, description: str | None = None
) -> ChangeProposal:
    if not proposal_can_change(proposal, user):
        raise PermissionDenied("Only its author and the design's writers can edit this proposal.")
    if title is not None:
        title = title.strip()
        if not title:
            raise ValidationError("Give the proposal a title.")
        proposal.title = title[:200]
    if description is not None:
        if len(description) > MAX_DESCRIPTION_CHARS:
            raise ValidationError(f"The description is longer than {MAX_DESCRIPTION_CHARS:,} characters.")
        proposal.description = description
    proposal.updated_at = timezone.now()
    proposal.save(
        update_fields=["title", "description", "updated_at", *render_field(proposal, "description")]
    )
    return proposal


def proposal_close(*, proposal: ChangeProposal, user: User) -> ChangeProposal:
    if not proposal_can_change(proposal, user):
        raise PermissionDenied("Only its author and the design's writers can close this proposal.")
    now = timezone.now()
    closed = ChangeProposal.objects.filter(pk=proposal.pk, status=ChangeProposal.Status.OPEN).update(
        status=ChangeProposal.Status.CLOSED, closed_at=now, updated_at=now
    )
    if not closed:
        raise Conflict(f"Proposal #{proposal.number} is not open.")
    proposal.status, proposal.closed_at = ChangeProposal.Status.CLOSED, now
    watches.proposal_decided_notify(proposal=proposal, actor=user)
    return proposal


def proposal_reopen(*, proposal: ChangeProposal, user: User) -> ChangeProposal:
    if not proposal_can_change(proposal, user):
        raise PermissionDenied("Only its author and the design's writers can reopen this proposal.")
    try:
        with transaction.atomic():
            reopened = ChangeProposal.objects.filter(
                pk=proposal.pk, status=ChangeProposal.Status.CLOSED
            ).update(status=ChangeProposal.Status.OPEN, closed_at=None, updated_at=timezone.now())
    except IntegrityError:
        raise Conflict("Another proposal between the same branches is open; continue there.") from None
    if not reopened:
        raise Conflict(f"Proposal #{proposal.number} is not closed.")
    proposal.status, proposal.closed_at = ChangeProposal.Status.OPEN, None
    return proposal_refresh(proposal=proposal)


def proposal_comment(*, proposal: ChangeProposal, user: User, body: str) -> ProposalComment:
    """Comment on a proposal; the caller has checked that `user` can see its target."""
    if not user.is_authenticated:
        raise PermissionDenied("Log in to comment.")
    body = (body or "").strip()
    if not body:
        raise ValidationError("Write something to comment.")
    if len(body) > MAX_COMMENT_CHARS:
        raise ValidationError(f"Comments are at most {MAX_COMMENT_CHARS:,} characters.")
    comment = ProposalComment(proposal=proposal, author=user, body=body)
    render_field(comment, "body")
    comment.save(force_insert=True)
    watches.proposal_comment_notify(comment=comment)
    return comment


def proposal_markdown(instance: ChangeProposal | ProposalComment, text: str) -> str:
    """A proposal's description or comment as HTML; relative links point into the
    target design at REVISION_PLACEHOLDER, which the page replaces with the proposal's
    head (it moves as the branch does, the stored HTML need not)."""
    target = instance.target if isinstance(instance, ChangeProposal) else instance.proposal.target
    return selectors.render_design_markdown(target, text, ref=REVISION_PLACEHOLDER)


def proposal_merge(
    *,
    proposal: ChangeProposal,
    user: User,
    expected_head: str | None = None,
    expected_target: str | None = None,
    message: str | None = None,
) -> str:
    """Merge the proposal into its target branch; return the branch's new head.

    `expected_head`/`expected_target` are the shas the person reviewed: if either branch
    has moved since, nothing happens (Conflict with the new figures). The branch moves by
    compare-and-swap from the head the merge was built on.
    """
    target = proposal.target
    require_writer(target, user)
    if not proposal.is_open:
        raise Conflict(f"Proposal #{proposal.number} is {proposal.status}, not open.")
    proposal = proposal_refresh(proposal=proposal)
    if proposal.status == ChangeProposal.Status.MERGED:
        return proposal.merged_sha
    figures = {
        "head": proposal.head_sha,
        "target_head": proposal.target_sha,
        "merge_state": proposal.merge_state,
    }
    if expected_head and expected_head != proposal.head_sha:
        raise Conflict(
            f"{proposal.source_branch} has moved since you reviewed it; its head is now "
            f"{proposal.head_sha[:10]}. Review the new commits, then merge.",
            **figures,
        )
    if expected_target and expected_target != proposal.target_sha:
        raise Conflict(
            f"{proposal.target_branch} has moved since you reviewed this proposal; it was checked again "
            f"against {proposal.target_sha[:10]}. Review, then merge.",
            **figures,
        )
    if proposal.merge_state == ChangeProposal.MergeState.MISSING:
        raise Conflict(f"{proposal.target_branch} no longer exists in {target.full_name}.", **figures)
    if proposal.merge_state == ChangeProposal.MergeState.CONFLICT:
        paths = ", ".join(c["path"] for c in proposal.conflicts)
        raise Conflict(
            f"This proposal conflicts with {proposal.target_branch} in: {paths}.",
            conflicts=proposal.conflicts,
            **figures,
        )
    repo = target.repo
    old, head = proposal.target_sha, proposal.head_sha
    if proposal.merge_state == ChangeProposal.MergeState.FAST_FORWARD:
        new = head
    else:
        result = repo.merge_tree(old, head, attributes_file=merge_attributes_file())
        if not result.clean:
            proposal_refresh(proposal=proposal)
            raise Conflict("This proposal conflicts with its target branch.", **figures)
        identity = person_for(user)
        text = (message or "").strip() or (
            f"Merge proposal #{proposal.number} from {proposal.source_name}:{proposal.source_branch}\n\n{proposal.title}"
        )
        new = repo.commit_tree(result.tree, [old, head], text, author=identity, committer=identity)
    proposal_land(proposal=proposal, user=user, new=new)
    return new


def proposal_land(*, proposal: ChangeProposal, user: User, new: str) -> None:
    """Move the target branch to `new` (the proposal's head, or a merge commit whose first
    parent is `proposal.target_sha`) by compare-and-swap, and mark the proposal merged.
    The caller has checked that `user` may merge and that both heads are the reviewed ones."""
    target = proposal.target
    repo = target.repo
    old = proposal.target_sha
    figures = {
        "head": proposal.head_sha,
        "target_head": proposal.target_sha,
        "merge_state": proposal.merge_state,
    }
    if proposal.target_branch == target.default_branch:
        problems = assembly_problems_at(target, commit=new)
        if problems:
            raise Conflict(
                f"Merged, {target.full_name} would be an assembly with problems: "
                + " ".join(problems[:5])
                + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""),
                problems=problems,
                **figures,
            )
    try:
        repo.update_ref(
            f"refs/heads/{proposal.target_branch}",
            new,
            old,
            message=f"fabhub: merge proposal #{proposal.number} by {user.username}",
        )
    except RefMoved:
        proposal = proposal_refresh(proposal=proposal)
        raise Conflict(
            f"{proposal.target_branch} moved while merging; the proposal was checked again against its new "
            "head. Review, then merge.",
            head=proposal.head_sha,
            target_head=proposal.target_sha,
            merge_state=proposal.merge_state,
        ) from None
    now = timezone.now()
    ChangeProposal.objects.filter(pk=proposal.pk).update(
        status=ChangeProposal.Status.MERGED,
        merged_sha=new,
        merged_by=user,
        merged_at=now,
        updated_at=now,
        commit_count=proposal.commit_count,
    )
    proposal.status, proposal.merged_sha, proposal.merged_by, proposal.merged_at = (
        ChangeProposal.Status.MERGED,
        new,
        user,
        now,
    )
    refs_changed(target, new_commits=repo.commits_between([new], [f"^{old}"]))
    watches.proposal_decided_notify(proposal=proposal, actor=user)


# -- keeping a fork up to date ------------------------------------------------------------


@dataclass(frozen=True)
class SyncResult:
    outcome: str  # "up-to-date", "fast-forward" or "merged"
    head: str | None
    ahead: int
    behind: int


def design_sync_upstream(
    *, design: Design, user: User, branch: str | None = None, merge: bool = False
) -> SyncResult:
    """Bring the upstream's new commits into the fork's `branch`: a fast-forward when the
    fork has no commits of its own; with `merge`, a merge commit when it has (Conflict
    listing the files if that cannot be done cleanly); otherwise Conflict saying so."""
    require_writer(design, user)
    status = design_upstream_status(design, user, branch=branch)
    if status is None:
        raise ValidationError(f"{design.full_name} is not a fork of a design you can see.")
    if status.upstream_head is None:
        raise NotFound(f"{status.upstream.full_name} has no branch {status.upstream_branch!r}.")
    if status.behind == 0:
        return SyncResult("up-to-date", status.head, status.ahead, 0)
    repo, upstream = design.repo, status.upstream
    staging = f"refs/fabhub/upstream/{status.upstream_branch}"
    repo.fetch_local(upstream.repo, [f"+refs/heads/{status.upstream_branch}:{staging}"])
    new_commits = repo.commits_between([status.upstream_head], [f"^{status.head}"] if status.head else [])
    oids = pointer_oids(repo, new_commits)
    for oid, size in selectors.lfs_objects_served(upstream, oids).items():
        if oids.get(oid) == size:
            lfs_object_link(design=design, oid=oid, size=size)
    ref = f"refs/heads/{status.branch}"
    if status.ahead == 0:
        new, outcome = status.upstream_head, "fast-forward"
    elif not merge:
        raise Conflict(
            f"{status.branch} has {status.ahead} commit(s) of its own and is {status.behind} behind "
            f"{upstream.full_name}: merge the upstream into it, or propose your changes upstream.",
            ahead=status.ahead,
            behind=status.behind,
        )
    else:
        # Commits of its own (ahead > 0) mean the fork's branch exists.
        assert status.head is not None
        result = repo.merge_tree(status.head, status.upstream_head, attributes_file=merge_attributes_file())
        if not result.clean:
            conflicts = [_conflict_row(repo, c) for c in result.conflicts]
            raise Conflict(
                f"Merging {upstream.full_name} into {status.branch} conflicts in: "
                f"{', '.join(c['path'] for c in conflicts)}.",
                conflicts=conflicts,
                ahead=status.ahead,
                behind=status.behind,
            )
        identity = person_for(user)
        new = repo.commit_tree(
            result.tree,
            [status.head, status.upstream_head],
            f"Merge {upstream.full_name}:{status.upstream_branch} into {status.branch}",
            author=identity,
            committer=identity,
        )
        outcome = "merged"
    try:
        repo.update_ref(
            ref, new, status.head, message=f"fabhub: sync with {upstream.full_name} by {user.username}"
        )
    except RefMoved:
        raise Conflict(f"{status.branch} moved while syncing; try again.") from None
    refs_changed(design, new_commits=repo.commits_between([new], [f"^{status.head}"] if status.head else []))
    return SyncResult(outcome, new, status.ahead + (1 if outcome == "merged" else 0), 0)
