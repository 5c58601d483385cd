"""Search across 2,000 designs: `designs.search.design_search` against a plain full-text
query on the same index, in the same run, on the same database.

The hub's search, for a signed-in person who collaborates on some private designs: the
count and the first page of 20 (the visibility rule and the filters as a subquery, the
ranked ids, the designs with owners, fork origins and search documents, the tags, and
the snippets cut in Python). The baseline: the database's own full-text query for the
same words on the same index, count and the top 20 ids by rank, with no visibility rule,
no rows of designs and no snippets: the least any search of this index can do.

The designs are rows and search documents only (no repositories: a search never reads
git). Each has a title, a summary, a README of ~300 words and ~40 file paths, the words
drawn from a fixed vocabulary; a few words are rare (in a handful of file names only).
Printed: best of 7 per query, the hub's time, the baseline's, and the ratio.

Run `python bench/search.py` (SQLite, the embedded default) and
`python bench/search.py --postgres` (a throw-away PostgreSQL via scripts/with-postgres).
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DESIGNS = 2000
OWNERS = 200
RUNS = 7
PAGE = 20
VOCABULARY = (
    "frame bracket motor wheel axle gear belt pulley bearing shaft plate cover clamp hinge "
    "spring sensor board panel mount housing lid base arm joint rail carriage nozzle fan duct "
    "spacer washer screw nut bolt magnet battery cable connector switch knob handle foot leg "
    "tube rod pin cap ring seal gasket tray box case shell rib strut beam truss hook latch"
).split()
RARE = ["wishbone", "gondola", "knuckle", "sprocket", "derailleur"]
QUERIES = ["bracket", "motor mount", "wishbone", "suspensionArm v2", "hou"]


def ensure_postgres() -> None:
    if os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        return
    script = str(ROOT / "scripts" / "with-postgres")
    os.execv(script, [script, sys.executable, *sys.argv])


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(VOCABULARY) for _ in range(n))


def fill() -> object:
    from designs.models import Collaborator, Design, Licence, SearchDocument, Tag
    from designs.search.tokens import document_text
    from hub.models import User

    rng = random.Random(21)
    owners = User.objects.bulk_create([User(username=f"maker{n}") for n in range(OWNERS)])
    viewer = User.objects.create(username="viewer")
    tags = Tag.objects.bulk_create([Tag(name=name) for name in ("kart", "robot", "printer", "tool")])
    designs = Design.objects.bulk_create(
        [
            Design(
                owner=owners[n % OWNERS],
                slug=f"design-{n}",
                title=f"{words(rng, 2).title()} {n}",
                summary=words(rng, 20),
                licence=rng.choice(Licence.values),
                visibility=Design.Visibility.PRIVATE if n % 5 == 0 else Design.Visibility.PUBLIC,
            )
            for n in range(DESIGNS)
        ]
    )
    Collaborator.objects.bulk_create(
        [Collaborator(design=d, user=viewer, role="read") for d in designs[0:200:10]]
    )
    through = Design.tags.through
    through.objects.bulk_create(
        [through(design_id=d.pk, tag_id=tags[i % len(tags)].pk) for i, d in enumerate(designs)]
    )
    documents = []
    for n, design in enumerate(designs):
        readme = "\n".join(words(rng, 30) for _ in range(10))
        paths = [
            f"{rng.choice(VOCABULARY)}/{rng.choice(VOCABULARY)}-{rng.choice(VOCABULARY)}_v{rng.randint(1, 5)}.stl"
            for _ in range(40)
        ]
        if n % 97 == 0:
            paths.append(f"suspension/{RARE[n % len(RARE)]}-suspensionArm_v2.stl")
        path_text = "\n".join(paths)
        documents.append(
            SearchDocument(
                design=design,
                title_words=document_text(f"{design.title} {design.slug}"),
                summary_words=document_text(design.summary),
                readme_words=document_text(readme),
                path_words=document_text(path_text),
                readme_text=readme,
                paths=path_text,
            )
        )
    SearchDocument.objects.bulk_create(documents, batch_size=200)
    # What autovacuum does on a running PostgreSQL: statistics, and the GIN index's pending
    # list (where fresh entries wait, read row by row by every search) merged into it.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        if connection.vendor == "postgresql":
            cursor.execute("SELECT gin_clean_pending_list('designs_searchdocument_vector'::regclass)")
    return viewer


def baseline(text: str) -> tuple[int, list[int]]:
    """The database's own query on the same index: count and the top PAGE ids by rank."""
    from django.db import connection

    from designs.search.backends import PostgresBackend, SqliteBackend
    from designs.search.tokens import parse_query

    query = parse_query(text)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            tsquery = PostgresBackend.tsquery(query)
            cursor.execute(
                "SELECT count(*) FROM designs_searchdocument WHERE search_vector @@ to_tsquery('simple', %s)",
                [tsquery],
            )
            count = cursor.fetchone()[0]
            cursor.execute(
                """SELECT design_id FROM designs_searchdocument, to_tsquery('simple', %s) q
                   WHERE search_vector @@ q ORDER BY ts_rank(search_vector, q) DESC LIMIT %s""",
                [tsquery, PAGE],
            )
        else:
            match = SqliteBackend.match(query)
            cursor.execute(
                "SELECT count(*) FROM designs_search_fts WHERE designs_search_fts MATCH %s", [match]
            )
            count = cursor.fetchone()[0]
            cursor.execute(
                "SELECT rowid FROM designs_search_fts WHERE designs_search_fts MATCH %s ORDER BY rank LIMIT %s",
                [match, PAGE],
            )
        return count, [row[0] for row in cursor.fetchall()]


def main() -> None:
    if "--postgres" in sys.argv:
        ensure_postgres()
    sys.path.insert(0, str(ROOT / "bench"))
    from _django import best_of, setup

    setup()
    from django.db import connection

    from designs.search import design_search

    viewer = fill()
    print(f"search over {DESIGNS} designs on {connection.vendor}; best of {RUNS}; a page of {PAGE}")
    print(f"{'query':<20} {'found':>6} {'hub ms':>8} {'plain ms':>9} {'ratio':>6}")
    for text in QUERIES:
        hits = {}

        def hub(text=text, hits=hits):
            found = design_search(viewer=viewer, text=text)
            hits["count"] = len(found)
            hits["page"] = found[0:PAGE]

        def plain(text=text):
            baseline(text)

        hub_s = best_of(RUNS, hub)
        plain_s = best_of(RUNS, plain)
        assert all(hasattr(d, "snippet") for d in hits["page"])
        print(
            f"{text!r:<20} {hits['count']:>6} {hub_s * 1000:>8.1f} {plain_s * 1000:>9.1f} {hub_s / plain_s:>5.1f}×"
        )


if __name__ == "__main__":
    main()
