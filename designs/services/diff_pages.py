"""Diff pages that answer at once: detailed comparisons run in the background, cached by
blob pair in `BlobDiff` (reads: selectors.blob_diffs_for).

A commit, compare or proposal page lists what changed from git's raw diff and the blob
sizes (milliseconds), then reads each file's detail from the cache, keyed by its two
blobs and the comparison (`differ`). What is missing is created pending and queued
(`designs.tasks.diffs_run`); the page shows what it has and polls for the rest
(`diff_page` again, through the page's JSON endpoint). A row is computed once whatever
the number of pages, designs or forks that show the same two blobs.

Rows move pending → running → done | failed; the move to running is a claim, so two
workers never compute the same row. A worker that died leaves a row running: the next
look at the page puts it back (or fails it after `MAX_ATTEMPTS`), as it re-queues a row
left pending longer than `STALE_PENDING` (its message lost); a failed row can be retried
by a signed-in person, after a pause and up to a cap on its attempts in all.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import F, Q
from django.utils import timezone

from designs.diffs import (
    PAGE_BUDGET,
    DiffBudget,
    Differ,
    FileDiff,
    compare,
    detail_of,
    differ_key,
    within_bytes,
    within_files,
)
from designs.git import Repository
from designs.meshes import is_mesh_path
from designs.meshes.worker import DiffJob, default_workers, run_diff, run_diffs
from designs.models import BlobDiff, Design, MeshAnalysis
from designs.selectors import analyses_for_blobs, blob_diffs_for, design_blob_to_file
from designs.services.analysis import analyses_queue_blobs
from hub.queue import enqueue

logger = logging.getLogger(__name__)

GEOMETRY = "geometry"
MAX_ATTEMPTS = 3
# A queued row nobody started after this long lost its message (a broker restart, a
# web process stopped with work in its embedded queue): queue it again. Harmless if it
# was merely late: the claim lets one worker run it.
STALE_PENDING = timedelta(seconds=60)
# Rows per queued task: a page's diffs spread over a few tasks (so several Celery
# workers share a big page), each running its rows on every core.
TASK_ROWS = 16
DONE_STATES = (BlobDiff.Status.DONE, BlobDiff.Status.FAILED)
# The Retry button runs a comparison again at most this many times in all (attempts are
# never reset), and no sooner than RETRY_PAUSE after it last failed: a comparison that
# kills its worker or hits a limit cannot be made to keep the workers busy.
MAX_TOTAL_ATTEMPTS = 2 * MAX_ATTEMPTS
RETRY_PAUSE = timedelta(minutes=1)
ANALYSIS_DONE = (MeshAnalysis.Status.DONE, MeshAnalysis.Status.FAILED)


def _geometry_time_limit_s() -> int:
    return min(settings.FABHUB_MESH_TIME_LIMIT_S, 60)


def _stale_running() -> timedelta:
    """Longer than any comparison may run (run_diff kills its child by then)."""
    return timedelta(seconds=_geometry_time_limit_s() * 2 + 30)


def is_mesh_change(change: FileDiff) -> bool:
    return is_mesh_path(change.path) or bool(change.old_path and is_mesh_path(change.old_path))


def _suffix(path: str) -> str:
    return PurePosixPath(path).suffix.lower().lstrip(".")


def differ_for(change: FileDiff) -> str | None:
    """The cached comparison a changed file needs (None: none, e.g. an added mesh, whose
    analysis is all there is). A geometric diff depends on the formats the blobs are read
    as, which their names give."""
    if is_mesh_change(change):
        if not (change.old_sha and change.new_sha):
            return None
        return f"{GEOMETRY}:{_suffix(change.old_path or change.path)}:{_suffix(change.path)}"
    return differ_key(change)


def _key(change: FileDiff, differ: str) -> tuple[str, str, str]:
    return (change.old_sha or "", change.new_sha or "", differ)


@dataclass
class DiffPage:
    """What a diff page shows now: every changed file, and how many are still coming."""

    files: list[FileDiff]
    total: int  # files compared in detail
    pending: int
    meshes_total: int
    meshes_pending: int
    pending_files: set[int]  # indexes into `files`

    @property
    def progress(self) -> str:
        if not self.pending:
            return ""
        if self.meshes_total:
            done = self.meshes_total - self.meshes_pending
            text = f"{done} of {self.meshes_total} mesh{'es' if self.meshes_total != 1 else ''} compared"
            others = self.total - self.meshes_total
            if others:
                text += f", {others - (self.pending - self.meshes_pending)} of {others} other files"
            return text
        return f"{self.total - self.pending} of {self.total} files compared"


def diff_page(
    *,
    design: Design,
    base: str | None,
    head: str,
    budget: DiffBudget | None = PAGE_BUDGET,
    only_path: str | None = None,
) -> DiffPage:
    """The changed files between two commits with every detail the cache holds; queues
    what it lacks (and what a lost or dead worker left), never computing any itself."""
    files = _changed_files(design, base, head, only_path)
    candidates = [f for f in files if f.old_sha != f.new_sha and f.kind != "submodule"]
    if budget is not None and only_path is None:
        candidates = within_files(budget, candidates)
        meshes = [c for c in candidates if is_mesh_change(c)]
        candidates = within_bytes(budget, [c for c in candidates if not is_mesh_change(c)]) + meshes
    # Queued in this order: the quick text diffs first, then the largest meshes, so that
    # the last comparison to start is a small one and the cores finish together.
    candidates.sort(key=lambda c: (is_mesh_change(c), -((c.old_size or 0) + (c.new_size or 0))))
    wanted = {id(c): differ_for(c) for c in candidates}
    keyed = {_key(c, d): c for c in candidates if (d := wanted[id(c)]) is not None}
    rows = _rows_ensured(design, keyed)
    mesh_shas = [s for c in candidates if is_mesh_change(c) for s in (c.old_sha, c.new_sha) if s]
    analyses = analyses_for_blobs(mesh_shas) if mesh_shas else {}
    unknown = {s: c.path for c in candidates if is_mesh_change(c) for s in (c.old_sha, c.new_sha) if s}
    unknown = {s: p for s, p in unknown.items() if s not in analyses}
    if unknown:
        # Blobs that reached the hub before analysis was queued for them (or whose row
        # was deleted): queue them now, so the page fills in.
        analyses_queue_blobs(design=design, blobs=list(unknown.items()))
        analyses = analyses_for_blobs(mesh_shas)
    page = DiffPage(
        files=files, total=len(candidates), pending=0, meshes_total=0, meshes_pending=0, pending_files=set()
    )
    index = {id(f): n for n, f in enumerate(files)}
    for change in candidates:
        differ = wanted[id(change)]
        row = rows.get(_key(change, differ)) if differ else None
        if is_mesh_change(change):
            waiting = _fill_mesh(change, row, analyses)
            page.meshes_total += 1
            page.meshes_pending += waiting
        else:
            waiting = _fill_file(change, row)
        if waiting:
            page.pending += 1
            page.pending_files.add(index[id(change)])
    return page


def _changed_files(design: Design, base: str | None, head: str, only_path: str | None) -> list[FileDiff]:
    """What changed between two commits, without details: two git processes the first
    time, then from the cache, as two commits' difference never changes (the page's
    polls ask again every few seconds). The cache hands back a fresh copy each time."""
    key = "diff-files:" + hashlib.sha256(f"{design.pk}:{base}:{head}:{only_path}".encode()).hexdigest()
    files = cache.get(key)
    if files is None:
        files = compare(design.repo, base, head, details=False, only_path=only_path)
        cache.set(key, files, timeout=24 * 3600)
    return files


def _summary(analysis: MeshAnalysis | None) -> dict | None:
    if analysis is None:
        return None
    return {"status": analysis.status, "figures": analysis.figures, "reason": analysis.reason}


def _fill_mesh(change: FileDiff, row: BlobDiff | None, analyses: dict[str, MeshAnalysis]) -> bool:
    """Fill a mesh's detail; True while part of it is still coming."""
    sides = [analyses.get(s) for s in (change.old_sha, change.new_sha) if s]
    change.kind = "mesh"
    change.detail = {
        "old": _summary(analyses.get(change.old_sha)) if change.old_sha else None,
        "new": _summary(analyses.get(change.new_sha)) if change.new_sha else None,
        "geometry": None,
    }
    waiting = any(a is None or a.status not in ANALYSIS_DONE for a in sides)
    if row is not None:
        change.detail["geometry_id"] = row.pk
        if row.status == BlobDiff.Status.DONE:
            change.detail["geometry"] = row.detail
            change.detail["geometry_reason"] = row.reason
        elif row.status == BlobDiff.Status.FAILED:
            change.detail["geometry_reason"] = row.reason or "the comparison failed"
            change.detail["geometry_failed"] = True
            change.detail["geometry_retryable"] = row.attempts < MAX_TOTAL_ATTEMPTS
        else:
            change.detail["geometry_pending"] = True
            waiting = True
    return waiting


def _fill_file(change: FileDiff, row: BlobDiff | None) -> bool:
    if row is None:
        return False
    if row.status == BlobDiff.Status.DONE:
        change.kind, change.detail = row.kind, row.detail or {}
        return False
    if row.status == BlobDiff.Status.FAILED:
        reason = row.reason or "the comparison failed"
        change.kind = "failed"
        change.detail = {"reason": reason, "id": row.pk, "retryable": row.attempts < MAX_TOTAL_ATTEMPTS}
        return False
    change.kind, change.detail = "pending", {"id": row.pk}
    return True


def _rows_ensured(
    design: Design, keyed: dict[tuple[str, str, str], FileDiff]
) -> dict[tuple[str, str, str], BlobDiff]:
    """The cache rows of these keys, creating and queuing the missing ones and queuing
    again those a lost message or a dead worker left behind."""
    if not keyed:
        return {}
    keys = list(keyed)
    rows = blob_diffs_for(keys)
    missing = [k for k in keys if k not in rows]
    if missing:
        BlobDiff.objects.bulk_create(
            [
                BlobDiff(
                    old_sha=k[0],
                    new_sha=k[1],
                    differ=k[2],
                    design=design,
                    old_path=(keyed[k].old_path or keyed[k].path) if k[0] else "",
                    new_path=keyed[k].path,
                )
                for k in missing
            ],
            ignore_conflicts=True,  # another page may be creating the same rows
        )
        rows = blob_diffs_for(keys)
    # Only rows created by this call are queued here: a concurrent page's fresh rows are
    # queued by that page (and re-queued below if its message is lost).
    fresh = [rows[k].pk for k in missing if k in rows and rows[k].status == BlobDiff.Status.PENDING]
    revived, given_up = _revive_stale([r for k, r in rows.items() if k not in missing])
    queued = fresh + revived
    _queue(queued)
    if queued or given_up:
        # With the embedded worker the rows are still pending here; in tests (eager
        # tasks) they are done: read them again either way.
        rows = blob_diffs_for(keys)
    return rows


def _revive_stale(rows: list[BlobDiff]) -> tuple[list[int], int]:
    """(ids to queue again, how many failed for good) among `rows`: pending too long, or
    running longer than any comparison may (its worker died; failed after MAX_ATTEMPTS)."""
    now = timezone.now()
    ids = []
    given_up = 0
    for row in rows:
        if row.status == BlobDiff.Status.PENDING and row.queued_at < now - STALE_PENDING:
            # A claim on the old queued_at: of several pages polling, one re-queues.
            if BlobDiff.objects.filter(pk=row.pk, status=row.status, queued_at=row.queued_at).update(
                queued_at=now
            ):
                ids.append(row.pk)
        elif (
            row.status == BlobDiff.Status.RUNNING
            and row.started_at
            and row.started_at < now - _stale_running()
        ):
            stale = BlobDiff.objects.filter(pk=row.pk, status=row.status, started_at=row.started_at)
            if row.attempts >= MAX_ATTEMPTS:
                given_up += stale.update(
                    status=BlobDiff.Status.FAILED,
                    reason=f"the comparison was interrupted {row.attempts} times (its worker stopped each time)",
                    finished_at=now,
                )
            elif stale.update(status=BlobDiff.Status.PENDING, queued_at=now, started_at=None):
                ids.append(row.pk)
    return ids, given_up


def _queue(ids: list[int]) -> None:
    for start in range(0, len(ids), TASK_ROWS):
        enqueue("designs.tasks.diffs_run", ids[start : start + TASK_ROWS])


def diff_page_retry(*, design: Design, page: DiffPage, diff_ids: list[int]) -> int:
    """Queue again those of `diff_ids` that failed on `page` (the diff page's Retry
    buttons): an id from elsewhere, or of a comparison that did not fail, is ignored."""
    failed = {
        d.detail.get("id") if d.kind == "failed" else d.detail.get("geometry_id")
        for d in page.files
        if d.kind == "failed" or d.detail.get("geometry_failed")
    }
    return blob_diffs_retry(design=design, diff_ids=sorted(set(diff_ids) & failed))


def blob_diffs_retry(*, design: Design, diff_ids: list[int]) -> int:
    """Queue failed comparisons again (the page's Retry button), to be read from `design`
    (the page's, which holds the blobs); return how many. Only rows that failed at least
    RETRY_PAUSE ago and were tried fewer than MAX_TOTAL_ATTEMPTS times go again; their
    attempts count on, so one whose worker died is failed after one more death."""
    now = timezone.now()
    retryable = BlobDiff.objects.filter(
        status=BlobDiff.Status.FAILED, attempts__lt=MAX_TOTAL_ATTEMPTS
    ).filter(Q(finished_at__isnull=True) | Q(finished_at__lte=now - RETRY_PAUSE))
    ids = list(retryable.filter(pk__in=diff_ids).values_list("pk", flat=True))
    # The same conditions as a claim: of two clicks at once, one queues the row.
    retried = [
        pk
        for pk in ids
        if retryable.filter(pk=pk).update(
            status=BlobDiff.Status.PENDING,
            queued_at=now,
            started_at=None,
            finished_at=None,
            reason="",
            design=design,
        )
    ]
    _queue(retried)
    return len(retried)


# -- the worker's side ----------------------------------------------------------------------


def blob_diffs_run(*, diff_ids: list[int]) -> int:
    """Compute the claimable rows among `diff_ids`; return how many finished.

    Geometric diffs go to a warm mesh server as one batch (its children compare one pair
    at a time each, one per core, at most 4: each may take the whole memory limit; the
    server's imports are paid once, not once per pair). The other comparisons run one at
    a time per core here."""
    claimed = [pk for pk in diff_ids if _claim(pk)]
    if not claimed:
        return 0
    rows = list(BlobDiff.objects.select_related("design__owner").filter(pk__in=claimed).order_by())
    order = {pk: n for n, pk in enumerate(claimed)}
    rows.sort(key=lambda row: order[row.pk])  # the page's order: the largest meshes first
    geometry = [row for row in rows if row.design is not None and row.differ.startswith(GEOMETRY + ":")]
    others = [row for row in rows if row not in geometry]
    workers = min(len(others), default_workers())
    # Inside a transaction (a test's) other connections would not see the rows: run here.
    if workers <= 1 or connection.in_atomic_block:
        finished = sum(_run_one(row) for row in others)
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fabhub-diff") as pool:
            finished = sum(pool.map(_run_in_thread, others))
    return finished + _geometry_batch(geometry)


def _claim(pk: int) -> bool:
    return bool(
        BlobDiff.objects.filter(pk=pk, status=BlobDiff.Status.PENDING).update(
            status=BlobDiff.Status.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1
        )
    )


def _run_in_thread(row: BlobDiff) -> int:
    try:
        return _run_one(row)
    finally:
        connection.close()


def _run_one(row: BlobDiff) -> int:
    """Compute one claimed row other than a geometric diff, and write its outcome."""
    kind = ""
    detail: dict[str, Any] | None = None
    reason: str | None = None
    try:
        if row.design is None:
            reason = "the files are no longer in any design the hub holds"
        else:
            kind, detail = _file_detail(row.design.repo, row)
    except Exception as exc:  # one bad file fails alone, with its reason in its place
        logger.exception("comparing %s failed", row)
        detail, reason = None, f"the comparison failed ({type(exc).__name__})"
    _finish(row.pk, kind, detail, reason)
    return 1


def _finish(pk: int, kind: str, detail: dict[str, Any] | None, reason: str | None) -> None:
    status = BlobDiff.Status.DONE if detail is not None else BlobDiff.Status.FAILED
    BlobDiff.objects.filter(pk=pk, status=BlobDiff.Status.RUNNING).update(
        status=status, kind=kind, detail=detail, reason=reason or "", finished_at=timezone.now()
    )


def _geometry_batch(rows: list[BlobDiff]) -> int:
    """Geometric diffs of claimed rows (LFS objects resolved), as one batch of guarded
    children; each row is written as its comparison finishes."""
    if not rows:
        return 0
    work = Path(tempfile.mkdtemp(prefix="fabhub-meshdiff-"))
    finished = 0
    try:
        jobs = []
        for row in rows:
            assert row.design is not None  # rows of no design are not geometry rows here
            old_file, new_file = work / f"{row.pk}-old", work / f"{row.pk}-new"
            try:
                design_blob_to_file(row.design, blob_sha=row.old_sha, target=old_file)
                design_blob_to_file(row.design, blob_sha=row.new_sha, target=new_file)
            except OSError:
                _finish(row.pk, "", None, "the files are no longer in the design")
                finished += 1
                continue
            except Exception as exc:  # one bad row fails alone, with its reason in its place
                logger.exception("comparing %s failed", row)
                _finish(row.pk, "", None, f"the comparison failed ({type(exc).__name__})")
                finished += 1
                continue
            old_name = row.old_path or row.new_path
            jobs.append(DiffJob(str(row.pk), str(old_file), str(new_file), old_name, row.new_path))
        left = {job.sha for job in jobs}
        try:
            for outcome in run_diffs(
                jobs,
                time_limit_s=_geometry_time_limit_s(),
                memory_limit_bytes=settings.FABHUB_MESH_MEMORY_LIMIT_BYTES,
            ):
                kind = GEOMETRY if outcome.diff is not None else ""
                _finish(int(outcome.sha), kind, outcome.diff, outcome.reason)
                left.discard(outcome.sha)
                finished += 1
        except Exception as exc:  # the rows not compared yet fail, with the reason
            logger.exception("comparing %d meshes failed", len(left))
            for sha in left:
                _finish(int(sha), "", None, f"the comparison failed ({type(exc).__name__})")
                finished += 1
        return finished
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _file_detail(repo: Repository, row: BlobDiff) -> tuple[str, dict[str, Any]]:
    sizes = repo.blob_sizes([s for s in (row.old_sha, row.new_sha) if s])
    change = FileDiff(
        status="modified",
        path=row.new_path,
        old_path=row.old_path or None,
        old_sha=row.old_sha or None,
        new_sha=row.new_sha or None,
        old_size=sizes.get(row.old_sha) if row.old_sha else None,
        new_size=sizes.get(row.new_sha) if row.new_sha else None,
    )
    return detail_of(repo, change)


def _geometry_of(
    write: Callable[[str, Path], None], old_sha: str, new_sha: str, old_name: str, new_name: str
) -> tuple[dict | None, str | None]:
    """(geometric diff, None) or (None, why not), computed in a guarded child process."""
    work = Path(tempfile.mkdtemp(prefix="fabhub-meshdiff-"))
    try:
        old_file, new_file = work / "old", work / "new"
        try:
            write(old_sha, old_file)
            write(new_sha, new_file)
        except OSError:
            return None, "the files are no longer in the design"
        return run_diff(
            old_file,
            new_file,
            old_name=old_name,
            new_name=new_name,
            time_limit_s=_geometry_time_limit_s(),
            memory_limit_bytes=settings.FABHUB_MESH_MEMORY_LIMIT_BYTES,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- the API's diffs (designs.diffs plug-in) --------------------------------------------------


def mesh_differ_prepare(repo: Repository, changes: list[FileDiff]) -> Differ:
    """The mesh plug-in of `designs.diffs.compare` (the API's diff, which answers with
    every detail): the analyses and cached geometric diffs of all changed meshes in two
    queries; a geometric diff not cached yet is computed through the same cache rows the
    pages use, so the two never compute one twice."""
    meshes = [c for c in changes if is_mesh_change(c)]
    analyses = analyses_for_blobs([s for c in meshes for s in (c.old_sha, c.new_sha) if s]) if meshes else {}
    keys = {_key(c, d): c for c in meshes if (d := differ_for(c)) is not None}
    rows = blob_diffs_for(list(keys))

    def mesh_differ(repo: Repository, change: FileDiff) -> tuple[str, dict[str, Any]] | None:
        if not is_mesh_change(change):
            return None
        differ = differ_for(change)
        key = _key(change, differ) if differ else None
        if key is not None and (key not in rows or rows[key].status not in DONE_STATES):
            rows[key] = _computed_now(repo, change, key)
        row = rows.get(key) if key else None
        detail = {
            "old": _summary(analyses.get(change.old_sha)) if change.old_sha else None,
            "new": _summary(analyses.get(change.new_sha)) if change.new_sha else None,
            "geometry": row.detail if row is not None and row.status == BlobDiff.Status.DONE else None,
        }
        if row is not None:
            detail["geometry_reason"] = row.reason if row.status in DONE_STATES else "being computed"
        return "mesh", detail

    return mesh_differ


def _computed_now(repo: Repository, change: FileDiff, key: tuple[str, str, str]) -> BlobDiff:
    """The row of `key`, computed here (the API answers in full) and cached for all."""
    old_name = change.old_path or change.path
    result, reason = _geometry_of(repo.blob_to_file, key[0], key[1], old_name, change.path)
    outcome = {
        "status": BlobDiff.Status.DONE if result is not None else BlobDiff.Status.FAILED,
        "kind": GEOMETRY if result is not None else "",
        "detail": result,
        "reason": reason or "",
        "finished_at": timezone.now(),
    }
    row, created = BlobDiff.objects.get_or_create(
        old_sha=key[0],
        new_sha=key[1],
        differ=key[2],
        defaults={"old_path": old_name, "new_path": change.path, **outcome},
    )
    # A page queued it meanwhile: settle it unless a worker already has.
    if not created and BlobDiff.objects.filter(pk=row.pk, status=BlobDiff.Status.PENDING).update(**outcome):
        row.refresh_from_db()
    return row
