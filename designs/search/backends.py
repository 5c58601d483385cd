"""The two full-text back-ends behind one small interface: SQLite FTS5 (the embedded
default) and PostgreSQL full-text search (the scaled set-up). Migration 0011 made their
indexes over SearchDocument's word columns.

Both index text the hub tokenised itself (designs/search/tokens.py), so neither
database's own word rules matter: SQLite's unicode61 and PostgreSQL's `simple`
configuration only see lowercase runs of letters and digits, one space apart, and both
find the same designs. They rank differently (on SQLite a weighted count of the terms
each column holds, against ts_rank); both weigh a title above a summary, the summary
above file paths, and paths above the README. Neither ranks by statistics of the whole
index, which would let designs outside `candidates` change the order.

`candidates` is SQL (with its parameters) selecting the ids of the designs the searcher
may see, already filtered: the back-ends never widen it, so a design outside it adds
nothing to a count or a page.
"""

from __future__ import annotations

from typing import Protocol

from django.db import connection

from designs.search.tokens import Query

Sql = tuple[str, tuple]


class Backend(Protocol):
    def count(self, query: Query, candidates: Sql) -> int: ...

    def ranked_ids(self, query: Query, candidates: Sql, *, limit: int, offset: int) -> list[int]: ...


def _fetch(sql: str, params: tuple) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


class SqliteBackend:
    """FTS5: the table `designs_search_fts`, its rowid the design's id."""

    # Each term found in a column adds the column's weight. FTS5 only finds the matches:
    # its bm25 takes each word's rarity from the whole table, private designs included,
    # so a stranger's order of results would tell whether private designs hold a word.
    # The score reads only the matched (and visible) design's own stored words.
    WEIGHTS = (("title_words", 10), ("summary_words", 4), ("path_words", 2), ("readme_words", 1))

    @staticmethod
    def match(query: Query) -> str:
        # Every word is letters and digits only, so quoting needs no escaping. A quoted
        # string of several words is a phrase; `*` after it makes its last word a prefix.
        terms = [f'"{" ".join(term)}"' for term in query.terms]
        if query.prefix:
            terms[-1] += "*"
        return " AND ".join(terms)

    @classmethod
    def score(cls, query: Query) -> Sql:
        """SQL of a design's score in `s` (its SearchDocument), with its parameters."""
        needles = [f" {' '.join(term)} " for term in query.terms]
        if query.prefix:
            needles[-1] = needles[-1].rstrip()
        parts = [
            f"{weight} * (instr(' ' || s.{column} || ' ', %s) > 0)"
            for needle in needles
            for column, weight in cls.WEIGHTS
        ]
        params = tuple(needle for needle in needles for _ in cls.WEIGHTS)
        return " + ".join(parts), params

    # The full-text match runs once, materialised, and the candidates are checked against
    # its rows: given `rowid IN (…)` inside the FTS5 query, SQLite looks each candidate up
    # by rowid and runs the match again for every one (~100× slower at 2,000 designs).
    MATCHES = """hits AS MATERIALIZED (
        SELECT rowid AS id FROM designs_search_fts WHERE designs_search_fts MATCH %s)"""

    def count(self, query: Query, candidates: Sql) -> int:
        sql, params = candidates
        rows = _fetch(
            f"WITH {self.MATCHES} SELECT count(*) FROM hits WHERE hits.id IN ({sql})",
            (self.match(query), *params),
        )
        return int(rows[0][0])

    def ranked_ids(self, query: Query, candidates: Sql, *, limit: int, offset: int) -> list[int]:
        sql, params = candidates
        score, score_params = self.score(query)
        rows = _fetch(
            f"""WITH {self.MATCHES}
                SELECT hits.id FROM hits
                JOIN designs_searchdocument s ON s.design_id = hits.id
                JOIN designs_design d ON d.id = hits.id
                WHERE hits.id IN ({sql})
                ORDER BY {score} DESC, d.updated_at DESC, d.id DESC
                LIMIT %s OFFSET %s""",
            (self.match(query), *params, *score_params, limit, offset),
        )
        return [row[0] for row in rows]


class PostgresBackend:
    """A generated tsvector column on designs_searchdocument (weights A–D), GIN-indexed."""

    @staticmethod
    def tsquery(query: Query) -> str:
        # Words are letters and digits only: quoted, nothing in them needs escaping.
        terms = [" <-> ".join(f"'{word}'" for word in term) for term in query.terms]
        if query.prefix:
            terms[-1] += ":*"
        return " & ".join(f"({term})" for term in terms)

    def count(self, query: Query, candidates: Sql) -> int:
        sql, params = candidates
        rows = _fetch(
            f"""SELECT count(*) FROM designs_searchdocument s
                WHERE s.search_vector @@ to_tsquery('simple', %s) AND s.design_id IN ({sql})""",
            (self.tsquery(query), *params),
        )
        return int(rows[0][0])

    def ranked_ids(self, query: Query, candidates: Sql, *, limit: int, offset: int) -> list[int]:
        sql, params = candidates
        rows = _fetch(
            f"""SELECT s.design_id FROM designs_searchdocument s
                JOIN designs_design d ON d.id = s.design_id
                CROSS JOIN to_tsquery('simple', %s) q
                WHERE s.search_vector @@ q AND s.design_id IN ({sql})
                ORDER BY ts_rank(s.search_vector, q) DESC, d.updated_at DESC, d.id DESC
                LIMIT %s OFFSET %s""",
            (self.tsquery(query), *params, limit, offset),
        )
        return [row[0] for row in rows]


def backend() -> Backend:
    """The back-end of the database in use."""
    if connection.vendor == "postgresql":
        return PostgresBackend()
    if connection.vendor == "sqlite":
        return SqliteBackend()
    raise RuntimeError(f"No search back-end for {connection.vendor}.")
