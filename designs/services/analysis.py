"""Mesh analysis: queued per blob sha, run in guarded child processes (reads: selectors).

Content-addressed: a blob is analysed once, whatever commit, branch or fork it appears
in. Rows move pending → running → done | failed; the move to running is a claim
(locked rows moved by one update), so two workers never analyse the same blob, and a
sweeper puts back rows whose worker died.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from designs.meshes import is_mesh_path
from designs.meshes.worker import MeshJob, MeshOutcome, run_batch
from designs.models import Design, MeshAnalysis
from designs.selectors import design_blobs_to_files, thumbnail_path, viewer_path
from hub.queue import enqueue

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 3


def design_refresh_cover(design: Design) -> None:
    """Pick the mesh whose thumbnail stands for the design in lists: the first one, by
    path, at the head of the default branch."""
    head = design.repo.branch_head(design.default_branch)
    meshes = sorted((p, sha) for p, sha in design.repo.blob_paths(head) if is_mesh_path(p)) if head else []
    cover = meshes[0][1] if meshes else ""
    if cover != design.cover_blob_sha:
        Design.objects.filter(pk=design.pk).update(cover_blob_sha=cover)
        design.cover_blob_sha = cover


def analyses_queue(*, design: Design, commits: list[str]) -> list[int]:
    """Queue analysis of the mesh files these commits add or change; return new row ids.

    Blobs analysed before (in any design) are skipped: a push of known files costs one
    query.
    """
    return analyses_queue_blobs(design=design, blobs=design.repo.blobs_added_by(commits))


def analyses_queue_blobs(*, design: Design, blobs: list[tuple[str, str]]) -> list[int]:
    """Queue analysis of the mesh files among `blobs` ((sha, path) pairs); return new row ids."""
    blobs = [(sha, path) for sha, path in blobs if is_mesh_path(path)]
    if not blobs:
        return []
    known = set(
        MeshAnalysis.objects.filter(blob_sha__in=[sha for sha, _ in blobs]).values_list("blob_sha", flat=True)
    )
    fresh = {sha: path for sha, path in blobs if sha not in known}
    MeshAnalysis.objects.bulk_create(
        [MeshAnalysis(blob_sha=sha, path=path, design=design) for sha, path in fresh.items()],
        ignore_conflicts=True,  # a concurrent push may have queued the same blob
    )
    ids = list(
        MeshAnalysis.objects.filter(blob_sha__in=fresh, status=MeshAnalysis.Status.PENDING).values_list(
            "pk", flat=True
        )
    )
    size = settings.FABHUB_MESH_BATCH_SIZE
    for start in range(0, len(ids), size):
        enqueue("designs.tasks.analyse_meshes", ids[start : start + size])
    return ids


def _claim(analysis_ids: list[int]) -> list[MeshAnalysis]:
    """Move the pending rows among `analysis_ids` to running, all in one update; return
    them (1,000 rows: 0.07 s, where one update each took 1.8 s).

    The rows are locked first, skipping any another worker is claiming (PostgreSQL), so
    the update moves only rows this worker saw pending; SQLite's IMMEDIATE transactions
    let one claimer in at a time, to the same effect.
    """
    with transaction.atomic():
        ids = list(
            MeshAnalysis.objects.select_for_update(skip_locked=True)
            .filter(pk__in=analysis_ids, status=MeshAnalysis.Status.PENDING)
            .values_list("pk", flat=True)
        )
        MeshAnalysis.objects.filter(pk__in=ids, status=MeshAnalysis.Status.PENDING).update(
            status=MeshAnalysis.Status.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1
        )
    return list(MeshAnalysis.objects.filter(pk__in=ids).select_related("design__owner"))


def analyses_run(*, analysis_ids: list[int]) -> int:
    """Analyse the claimable rows among `analysis_ids`; return how many were finished.

    Logs where the time went (claim, blob reads, each step in the children, database
    writes), for operators and bench/mesh_push.py.
    """
    clock = time.perf_counter()
    rows = {row.blob_sha: row for row in _claim(analysis_ids)}
    if not rows:
        return 0
    seconds: dict[str, float] = {"claim": time.perf_counter() - clock}
    work = Path(tempfile.mkdtemp(prefix="fabhub-mesh-"))
    try:
        clock = time.perf_counter()
        extracted = _extract(rows.values(), work)
        jobs = [
            MeshJob(
                sha=sha,
                path=row.path,
                data_file=str(work / sha),
                thumbnail_file=str(thumbnail_path(sha)),
                viewer_file=str(viewer_path(sha)),
            )
            for sha, row in rows.items()
            if sha in extracted
        ]
        seconds["blob reads"] = time.perf_counter() - clock
        for sha in rows.keys() - extracted:
            _finish(rows[sha], None, "the file is no longer in any design the hub holds")
        finished = 0
        clock = time.perf_counter()
        written = _Writer(rows, seconds)
        try:
            for outcome in run_batch(
                jobs,
                time_limit_s=settings.FABHUB_MESH_TIME_LIMIT_S,
                memory_limit_bytes=settings.FABHUB_MESH_MEMORY_LIMIT_BYTES,
                keep_warm=True,
            ):
                written.add(outcome)
                for step, spent in outcome.seconds.items():
                    seconds[f"child: {step}"] = seconds.get(f"child: {step}", 0.0) + spent
                finished += 1
        finally:
            written.flush()
        seconds["analysis (wall)"] = time.perf_counter() - clock
        logger.info(
            "analysed %d meshes: %s",
            finished,
            ", ".join(f"{step} {spent:.2f} s" for step, spent in seconds.items()),
            extra={"mesh_seconds": seconds, "meshes_analysed": finished},
        )
        return finished
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _extract(rows: Iterable[MeshAnalysis], work: Path) -> set[str]:
    """Write each row's blob (an LFS pointer resolved to its object) to `work`/sha;
    return the shas written."""
    by_design: dict[int, tuple[Design, dict[str, Path]]] = {}
    for row in rows:
        if row.design is not None:
            by_design.setdefault(row.design.pk, (row.design, {}))[1][row.blob_sha] = work / row.blob_sha
    written: set[str] = set()
    for design, targets in by_design.values():
        written |= design_blobs_to_files(design, targets)
    return written


def _finish(row: MeshAnalysis, figures: dict | None, reason: str | None) -> None:
    status = MeshAnalysis.Status.DONE if figures is not None else MeshAnalysis.Status.FAILED
    MeshAnalysis.objects.filter(pk=row.pk, status=MeshAnalysis.Status.RUNNING).update(
        status=status, figures=figures, reason=reason or "", finished_at=timezone.now()
    )


class _Writer:
    """Writes the outcomes that arrived together in one transaction (one commit per file
    cost more than the smallest files' analysis); an outcome never waits for one still
    being computed. Each row's update keeps its condition (still running), so a row the
    sweeper took back is not overwritten."""

    AT_MOST = 100

    def __init__(self, rows: dict[str, MeshAnalysis], seconds: dict[str, float]) -> None:
        self.rows = rows
        self.seconds = seconds
        self.waiting: list[tuple[MeshAnalysis, dict | None, str | None]] = []

    def add(self, outcome: MeshOutcome) -> None:
        self.waiting.append((self.rows[outcome.sha], outcome.figures, outcome.reason))
        if not outcome.more or len(self.waiting) >= self.AT_MOST:
            self.flush()

    def flush(self) -> None:
        if not self.waiting:
            return
        clock = time.perf_counter()
        with transaction.atomic():
            for row, figures, reason in self.waiting:
                _finish(row, figures, reason)
        self.waiting = []
        spent = time.perf_counter() - clock
        self.seconds["database writes"] = self.seconds.get("database writes", 0.0) + spent


def analyses_sweep_stale(*, stale_after: timedelta | None = None) -> int:
    """Put back analyses whose worker died (running too long) or that never got queued.

    A run is stale once it has lasted longer than any analysis may (`stale_after`,
    default twice the per-file time limit plus a minute): its worker is gone.
    """

    now = timezone.now()
    if stale_after is None:
        stale_after = timedelta(seconds=settings.FABHUB_MESH_TIME_LIMIT_S * 2 + 60)
    stale_running = now - stale_after
    given_up = MeshAnalysis.objects.filter(
        status=MeshAnalysis.Status.RUNNING, started_at__lt=stale_running, attempts__gte=MAX_ATTEMPTS
    ).update(
        status=MeshAnalysis.Status.FAILED,
        reason=f"the analysis was interrupted {MAX_ATTEMPTS} times (the worker stopped each time)",
        finished_at=now,
    )
    MeshAnalysis.objects.filter(status=MeshAnalysis.Status.RUNNING, started_at__lt=stale_running).update(
        status=MeshAnalysis.Status.PENDING, queued_at=now
    )
    forgotten = list(
        MeshAnalysis.objects.filter(
            status=MeshAnalysis.Status.PENDING, queued_at__lt=now - max(stale_after, timedelta(minutes=2))
        ).values_list("pk", flat=True)
    )
    requeued = list(
        MeshAnalysis.objects.filter(status=MeshAnalysis.Status.PENDING, queued_at=now).values_list(
            "pk", flat=True
        )
    )
    ids = list(dict.fromkeys(forgotten + requeued))
    size = settings.FABHUB_MESH_BATCH_SIZE
    for start in range(0, len(ids), size):
        enqueue("designs.tasks.analyse_meshes", ids[start : start + size])
    if ids or given_up:
        logger.info("sweeper re-queued %d analyses and gave up on %d", len(ids), given_up)
    return len(ids)
