"""The one follow-up after any ref move: a web or API commit, a push, a mirror refresh,
a merged proposal or a fork synced with its upstream."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass

from django.utils import timezone

from designs.assemblies import ASSEMBLY_FILE
from designs.git import SUBMODULE_MODE, GitError
from designs.meshes import is_mesh_path
from designs.models import Design, PushMirror
from designs.selectors import README_NAMES, design_readme, ref_move_followers
from designs.services.analysis import analyses_queue, analyses_queue_blobs, design_refresh_cover
from designs.services.releases import release_assets_prune
from hub.queue import enqueue

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefMove:
    """What a ref move changed, for a caller that has read it (a mirror's refresh, from
    what its fetch brought): the files and submodules whose entry differs between the
    default branch's head before the move and after it (path → (mode before, mode
    after), None where there is none: `ObjectReader.tree_changes`), that head before,
    and whether a tag went. The follow-ups that read nothing it changed are skipped."""

    head_before: str
    paths: dict[str, tuple[str | None, str | None]]
    tag_deleted: bool

    def readme_changed(self) -> bool:
        return any("/" not in path and path.lower() in README_NAMES for path in self.paths)

    def paths_added_or_removed(self) -> bool:
        return any((before is None) != (after is None) for before, after in self.paths.values())

    def meshes_changed(self) -> bool:
        return any(is_mesh_path(path) for path in self.paths)

    def modules_changed(self) -> bool:
        """Whether a submodule (a module of an assembly) or the assembly file changed."""
        return ASSEMBLY_FILE in self.paths or any(SUBMODULE_MODE in modes for modes in self.paths.values())


def refs_changed(
    design: Design,
    *,
    new_commits: list[str],
    added_blobs: list[tuple[str, str]] | None = None,
    whole_history: bool = False,
    move: RefMove | None = None,
    graph_started: bool = False,
) -> None:
    """The hub learns of `new_commits`; push mirrors and open proposals follow the branches.

    Every service that moves a ref calls this once, after the move, whoever moved it.
    `added_blobs`: the (blob, path) pairs `new_commits` add, when the caller has listed them
    already (an import lists every blob of the history in one walk): they are not walked
    for again. `whole_history`: the move brought a whole history at once (an import), so
    a worker writes the commit-graph (~30 ms per 1,000 commits; it only makes reading
    history faster, and reads do without it) and picks the cover (a mesh whose thumbnail
    its queued analysis makes) rather than the caller wait for them. Otherwise git writes
    the commit-graph's new layer while the other follow-ups run. `move`: what the move
    changed, when the caller knows; the cover, README, assembly, search and release
    follow-ups then run only when what they read changed (all of them run without it).
    `graph_started`: the caller writes the commit-graph's layer around this call (a
    mirror's refresh starts it as soon as the new commits are in).
    """
    Design.objects.filter(pk=design.pk).update(updated_at=timezone.now())
    if whole_history:
        enqueue("designs.tasks.history_settle", design.pk)
    graph_written = nullcontext() if whole_history or graph_started else design.repo.commit_graph_refreshed()
    with graph_written:
        if not whole_history and (move is None or move.meshes_changed()):
            design_refresh_cover(design)
        if added_blobs is None:
            analyses_queue(design=design, commits=new_commits)
        else:
            analyses_queue_blobs(design=design, blobs=added_blobs)
        # One read for the push mirrors, the proposals and the assembly ties; the last
        # only when the move does not tell already (every follow-up runs without a move).
        head_before = None if move is None or move.modules_changed() else move.head_before
        followers = ref_move_followers(design_id=design.pk, head_before=head_before)
        push_mirrors_queue(design=design, mirror_ids=followers.push_mirror_ids)
        if followers.proposal_ids:
            enqueue("designs.tasks.proposals_refresh", followers.proposal_ids)
        if move is None or move.tag_deleted:
            # A tag a push or a mirror's refresh deleted takes its release's files with it.
            release_assets_prune(design=design)
        if move is None or move.readme_changed():
            # The README at the default branch is rendered now, in the background, so that the
            # design page finds it in the cache rather than render it while someone waits.
            enqueue("designs.tasks.readme_prepare", design.pk)
        if head_before is None or followers.in_assemblies or followers.was_assembly:
            # Read as an assembly ("used by", problems), and the assemblies using it told of
            # a new release (designs/services/assemblies.py). Skipped only when it may find
            # nothing new: neither its modules nor its assembly file changed, and it was no
            # assembly before, nor is it one or a module of one on this hub.
            enqueue("designs.tasks.assembly_refresh", design.pk)
        if move is None or move.paths_added_or_removed() or move.readme_changed():
            # What search finds it by: README and file paths of the default branch's head.
            enqueue("designs.tasks.search_index_refresh", design.pk)
    if design.repo.upkeep_due():
        # Packs and loose objects pile up (git never packs by itself here): rolled up in
        # the background before every reader of the repository has many to search.
        enqueue("designs.tasks.repository_upkeep", design.pk)


def repository_upkeep(*, design_id: int) -> bool:
    """Roll up `design_id`'s packs and loose objects if they have piled up
    (`Repository.upkeep`); False if there was nothing to do, or another upkeep of it runs."""
    design = Design.objects.select_related("owner").filter(pk=design_id).first()
    if design is None or not design.repo_path.exists() or not design.repo.upkeep_due():
        return False
    return design.repo.upkeep()


def repositories_upkeep() -> int:
    """`repository_upkeep` of every design whose repository needs it; how many were rolled
    up (for a deployment whose repositories piled up before upkeep was queued). One that
    git cannot roll up is logged and the others go on."""
    done = 0
    for pk in Design.objects.order_by("pk").values_list("pk", flat=True):
        try:
            done += repository_upkeep(design_id=pk)
        except GitError:
            logger.exception("upkeep of design %s failed", pk)
    return done


def readme_prepare(*, design_id: int) -> bool:
    """Render (into the shared cache) the README at `design_id`'s default branch head."""
    design = Design.objects.select_related("owner").filter(pk=design_id).first()
    if design is None:
        return False
    head = design.repo.branch_head(design.default_branch)
    if head is None:
        return False
    path, _ = design_readme(design, sha=head)
    return path is not None


def _history_settle(design: Design) -> None:
    design.repo.refresh_commit_graph()
    design_refresh_cover(design)


def history_settle(*, design_id: int) -> bool:
    """What follows a ref move in the repository itself, queued after an import: the
    commit-graph, the cover."""
    design = Design.objects.select_related("owner").filter(pk=design_id).first()
    if design is None or not design.repo_path.exists():
        return False
    _history_settle(design)
    return True


def push_mirrors_queue(*, design: Design, mirror_ids: list[int]) -> None:
    """Mark `design`'s push mirrors (`mirror_ids`, its enabled ones) as behind and push
    them soon (designs/services/mirrors.py)."""
    if not mirror_ids:
        return
    PushMirror.objects.filter(pk__in=mirror_ids, design_id=design.pk, enabled=True).update(pending=True)
    for mirror_id in mirror_ids:
        enqueue("designs.tasks.push_mirror_push", mirror_id)
