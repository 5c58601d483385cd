"""A design's history page by page: a long history's length is counted by a worker,
never while someone waits for its first page (issue 18)."""

from __future__ import annotations

from django.core.cache import cache

from designs import selectors
from designs.models import Design
from designs.selectors import HistoryPage
from hub.queue import enqueue

# How long a queued count keeps others from queueing the same one (a worker that died
# leaves it to the next visit after this).
COUNT_QUEUED_S = 300


def history_page(
    *, design: Design, rev: str | None, path: str | None, offset: int, limit: int
) -> HistoryPage:
    """One page of history (selectors.design_history); when its total is not known yet,
    the count is queued, once, and a later visit shows it.

    Only for a path the head holds (or none): anyone may ask for any path, and each would
    otherwise queue a whole count of the history. Another path's total stays unknown until
    its last page is reached, which tells it."""
    path = selectors.history_path(path)
    page = selectors.design_history(design, rev=rev, path=path, offset=offset, limit=limit)
    newest = page.commits[0] if page.commits and not offset else None
    if (
        page.total is None
        and selectors.history_path_exists(design, sha=page.sha, path=path, newest=newest)
        and cache.add(f"history-count-queued:{design.pk}:{page.sha}:{path or ''}", True, COUNT_QUEUED_S)
    ):
        enqueue("designs.tasks.history_count", design.pk, rev, page.sha, path)
    return page


def history_count(*, design_id: int, rev: str | None, sha: str, path: str | None) -> int | None:
    """Count and cache the length of a design's history at `sha` (None if the design or the
    commit is gone)."""
    design = Design.objects.filter(pk=design_id).first()
    if design is None or not design.repo.has_object(sha):
        return None
    return selectors.design_history_count(design, rev=rev, sha=sha, path=path)
