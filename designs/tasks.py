"""Celery tasks of designs: thin wrappers that take ids and call a service."""

from __future__ import annotations

from celery import shared_task

from designs.services import analysis, mirrors, proposals, refs


@shared_task(acks_late=True, reject_on_worker_lost=True)
def analyse_meshes(analysis_ids: list[int]) -> int:
    return analysis.analyses_run(analysis_ids=analysis_ids)


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
