"""Searching designs for a person: what they may see, ranked, a page at a time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import overload

from django.db import connection
from django.db.models import QuerySet
from django.utils.safestring import SafeString

from designs.models import Design, SearchDocument
from designs.search.backends import Sql, backend
from designs.search.tokens import Query, matched_lines, parse_query, snippet
from designs.selectors import designs_visible_to
from hub.auth import Viewer


class DesignSearch(Sequence[Design]):
    """The designs matching a search, best first, as a sequence a Paginator (Django's or
    DRF's) pages through: its length is one query, a slice is two (the page's ids, then
    its designs with their owners, forks' origins and search documents) plus the tags'
    prefetch, however long the page. Each design of a page carries `snippet` (safe HTML
    from its summary or README, the hits marked) and `matched_paths` (safe HTML of up to
    three of its files whose names matched).

    The candidates are `designs_visible_to(viewer)`, narrowed by `within` if given (the
    caller's filters): a design the viewer may not see is in no count, page or snippet.
    """

    def __init__(self, *, viewer: Viewer, query: Query, within: QuerySet[Design] | None = None) -> None:
        self.viewer = viewer
        self.query = query
        candidates = designs_visible_to(viewer)
        if within is not None:
            candidates = candidates.filter(pk__in=within.values("pk"))
        self._candidates = candidates

    @cached_property
    def _candidates_sql(self) -> Sql:
        ids = self._candidates.order_by().values("pk")
        sql, params = ids.query.get_compiler(connection=connection).as_sql()
        return sql, tuple(params)

    @cached_property
    def _count(self) -> int:
        if not self.query:
            return 0
        return backend().count(self.query, self._candidates_sql)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Design]:
        return iter(self[0 : self._count])

    @overload
    def __getitem__(self, index: int) -> Design: ...

    @overload
    def __getitem__(self, index: slice) -> list[Design]: ...

    def __getitem__(self, index: int | slice) -> Design | list[Design]:
        if isinstance(index, int):
            return self[index : index + 1][0]
        start, stop = index.start or 0, index.stop
        if stop is None or index.step not in (None, 1):
            raise TypeError("A search is read by slices with an end and no step.")
        return self._page(offset=start, limit=max(0, stop - start))

    def _page(self, *, offset: int, limit: int) -> list[Design]:
        if not self.query or not limit:
            return []
        ids = backend().ranked_ids(self.query, self._candidates_sql, limit=limit, offset=offset)
        if not ids:
            return []
        found = {d.pk: d for d in self._candidates.select_related("search_document").filter(pk__in=ids)}
        designs = [found[pk] for pk in ids if pk in found]
        for design in designs:
            design.snippet, design.matched_paths = _snippets(design, self.query)  # type: ignore[attr-defined]
        return designs


def _snippets(design: Design, query: Query) -> tuple[SafeString, list[SafeString]]:
    try:
        document: SearchDocument | None = design.search_document
    except SearchDocument.DoesNotExist:
        document = None
    text = snippet(design.summary, query)
    if not text and document is not None:
        text = snippet(document.readme_text, query)
    paths = matched_lines(document.paths, query) if document is not None else []
    return text, paths


def design_search(*, viewer: Viewer, text: str, within: QuerySet[Design] | None = None) -> DesignSearch:
    """The designs `viewer` may see (among `within`, if given) that match `text`, best
    first. Every word of `text` must match a word of the title, name, summary, README or a
    file path on the default branch; the last word may be the start of a longer one."""
    return DesignSearch(viewer=viewer, query=parse_query(text), within=within)
