"""Celery tasks of designs: thin wrappers that take ids and call a service."""

from __future__ import annotations

from celery import shared_task

from designs import analysis


@shared_task(acks_late=True, reject_on_worker_lost=True)
def analyse_meshes(analysis_ids: list[int]) -> int:
    return analysis.analyses_run(analysis_ids=analysis_ids)


@shared_task
def sweep_stale_analyses() -> int:
    return analysis.analyses_sweep_stale()
