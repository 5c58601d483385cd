"""One helper for the list endpoints' query-count tests: the same request, answered for
one row and for many, must take the same number of database queries (so an N+1 shows)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

MANY = 6


def get_counting_queries(client, url: str, params: dict | None = None) -> tuple[int, Any]:
    """(queries the request took, response); the request must succeed."""
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params or {})
    assert response.status_code == 200, response.content[:1000]
    return len(captured.captured_queries), response


def results(response) -> list:
    return response.json()["results"]


def plain_list(response) -> list:
    return response.json()


def assert_queries_do_not_grow_with_rows(
    client,
    url: str,
    *,
    add: Callable[[int], None],
    listed: Callable[[Any], list],
    params: dict | None = None,
    per_row: int = 1,
) -> None:
    """`add(n)` makes n more rows (with the related rows the answer shows), each adding
    `per_row` items to what `listed(response)` returns."""
    add(1)
    # Before each count, one request does the one-off work (caches, a stale proposal's
    # refresh) so that only the per-request work is counted.
    client.get(url, params or {})
    one, response = get_counting_queries(client, url, params)
    few = len(listed(response))
    assert few >= per_row, "the list shows the row that was added"
    add(MANY - 1)
    client.get(url, params or {})
    many, response = get_counting_queries(client, url, params)
    assert len(listed(response)) == few + per_row * (MANY - 1)
    assert many == one, f"{one} queries for {few} items, {many} for {len(listed(response))}"
