"""Celery tasks of designs: thin wrappers that take ids and call a service."""

from __future__ import annotations

from celery import shared_task

from designs.models import Design
from designs.services import analysis, assemblies, diff_pages, history, mirrors, proposals, refs, search


@shared_task(acks_late=True, reject_on_worker_lost=True)
def analyse_meshes(analysis_ids: list[int]) -> int:
    return analysis.analyses_run(analysis_ids=analysis_ids)


@shared_task(acks_late=True, reject_on_worker_lost=True, time_limit=30 * 60)
def diffs_run(diff_ids: list[int]) -> int:
    """Compute diff pages' comparisons (designs.services.diff_pages), cached by blob pair."""
    return diff_pages.blob_diffs_run(diff_ids=diff_ids)


@shared_task
def sweep_stale_analyses() -> int:
    return analysis.analyses_sweep_stale()


# -- mirrors and proposals (designs/services/) ---------------------------------------


@shared_task
def mirror_refresh(design_id: int) -> bool:
    return mirrors.mirror_refresh_by_id(design_id)


@shared_task
def push_mirror_push(mirror_id: int) -> bool:
    # Failures are recorded on the mirror and retried with back-off by mirrors_tick.
    return mirrors.push_mirror_run(mirror_id=mirror_id)


@shared_task
def mirrors_tick() -> tuple[int, int]:
    return mirrors.mirrors_tick()


@shared_task
def proposals_refresh(proposal_ids: list[int]) -> int:
    return proposals.proposals_refresh_by_id(proposal_ids)


@shared_task
def readme_prepare(design_id: int) -> bool:
    return refs.readme_prepare(design_id=design_id)


@shared_task
def history_settle(design_id: int) -> bool:
    """The commit-graph and cover of a design whose whole history just arrived (an import)."""
    return refs.history_settle(design_id=design_id)


@shared_task(time_limit=30 * 60)
def repository_upkeep(design_id: int) -> bool:
    """Roll up a repository's piled-up packs and loose objects (services.refs)."""
    return refs.repository_upkeep(design_id=design_id)


@shared_task(time_limit=5 * 60)
def history_count(design_id: int, rev: str | None, sha: str, path: str | None) -> int | None:
    """Count a long history that a page showed without its total (services.history)."""
    return history.history_count(design_id=design_id, rev=rev, sha=sha, path=path)


@shared_task
def assembly_refresh(design_id: int) -> bool:
    """Check the design's head as an assembly, then the assemblies that use it."""
    found = assemblies.assembly_refresh(design_id=design_id)
    module = Design.objects.filter(pk=design_id).first()
    if module is not None:
        assemblies.assemblies_recheck_users(module=module)
    return found


@shared_task
def assembly_check_commit(design_id: int, commit: str) -> bool:
    """Read one commit of a design as an assembly (a page asked for one not read yet)."""
    design = Design.objects.select_related("owner").filter(pk=design_id).first()
    if design is None or not design.repo.has_object(commit):
        return False
    return assemblies.assembly_check(design, commit=commit).is_assembly


@shared_task(time_limit=5 * 60)
def search_index_refresh(design_id: int) -> bool:
    """Rebuild the design's search document (designs/services/search.py)."""
    return search.search_document_refresh(design_id=design_id)
