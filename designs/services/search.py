"""The search index (designs/search/): one SearchDocument per design, rebuilt from the
design's row and its default branch's head after every change that matters.

Services queue `designs.tasks.search_index_refresh` by name after their change commits
(refs_changed for commits, pushes, merges and mirror refreshes; design_create,
design_update and design_fork); reading the README and the file list from git is too slow
to do while someone waits. A deleted design's document goes with it (a cascade; on SQLite
a trigger takes it out of the FTS5 table). Visibility is not indexed: every search applies
the visibility rule when it runs, so a change of visibility or of collaborators shows at
once. `manage.py reindex_search` rebuilds every document.
"""

from __future__ import annotations

import html
import logging

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.html import strip_tags

from designs.git import GitError, Repository
from designs.models import Design, SearchDocument, repo_path
from designs.search.tokens import document_text
from designs.selectors import MAX_README_BYTES, readme_among
from hub.markdown import render_markdown

logger = logging.getLogger(__name__)

# What is indexed of a README and of the file list: enough for any README a person
# writes and thousands of paths, and below PostgreSQL's 1 MB per tsvector.
MAX_INDEXED_CHARS = 100_000


def readme_plain_text(name: str, text: str) -> str:
    """A README as the words a person reads: Markdown rendered, then its tags taken out."""
    if name.lower().endswith((".md", ".markdown")):
        text = html.unescape(strip_tags(render_markdown(text)))
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)[:MAX_INDEXED_CHARS]


def _capped_lines(lines: list[str]) -> str:
    kept, size = [], 0
    for line in lines:
        size += len(line) + 1
        if size > MAX_INDEXED_CHARS:
            break
        kept.append(line)
    return "\n".join(kept)


def search_document_refresh(*, design_id: int) -> bool:
    """Rebuild the search document of design `design_id` from its row and its default
    branch's head; False if the design is gone. Safe to run twice at once: the last
    writer's document stands, and both read the same head."""
    # Only what finding the repository takes: the row's words are read under the lock.
    try:
        owner, slug, branch = Design.objects.values_list("owner__username", "slug", "default_branch").get(
            pk=design_id
        )
    except Design.DoesNotExist:
        return False
    readme, paths, head = "", "", ""
    try:
        path = repo_path(owner, slug)
        if path.exists():
            repo = Repository(path)
            head = repo.branch_head(branch) or ""
        if head:
            # The listing of every file, as the pages show it (a name that is not UTF-8,
            # from an older history, with U+FFFD): the README is found in it, no listing
            # of the root folder for that, and its paths are indexed.
            entries = repo.tree_entries(head)
            entry = readme_among(entries)
            if entry is not None:
                raw = repo.read_blob(entry.sha)[:MAX_README_BYTES].decode("utf-8", "replace")
                readme = readme_plain_text(entry.name, raw)
            paths = _capped_lines([listed.path for listed in entries])
    except GitError:
        # The repository is being deleted or is broken: index what the row says.
        logger.warning("search: cannot read %s/%s's repository", owner, slug, exc_info=True)
    # Tokenised before the lock is taken: on SQLite it stops every other writer.
    from_git = {
        "readme_words": document_text(readme),
        "path_words": document_text(paths),
        "readme_text": readme,
        "paths": paths,
        "commit_sha": head,
    }
    with transaction.atomic():
        # The row's words read under its lock: a design_update that committed while git
        # was read would otherwise have its title and summary overwritten by older ones.
        try:
            title, slug, summary = (
                Design.objects.select_for_update().values_list("title", "slug", "summary").get(pk=design_id)
            )
        except Design.DoesNotExist:
            return False
        return _write(design_id, **_row_words(title=title, slug=slug, summary=summary), **from_git)


def search_words_update(*, design: Design) -> None:
    """What the design's row says (title, name, summary) into its search document now,
    without reading git: a new or renamed design is found by its title at once; the
    README and the paths follow with the background refresh."""
    _write(design.pk, **_row_words(title=design.title, slug=design.slug, summary=design.summary))


def _row_words(*, title: str, slug: str, summary: str) -> dict[str, str]:
    return {
        "title_words": document_text(f"{title} {slug}"),
        "summary_words": document_text(summary),
    }


def _write(design_id: int, **fields: str) -> bool:
    """Update the design's search document with `fields`, or create it; False if the
    design is gone."""
    if SearchDocument.objects.filter(design_id=design_id).update(**fields, updated_at=timezone.now()):
        return True
    try:
        with transaction.atomic():
            SearchDocument.objects.create(design_id=design_id, **fields, updated_at=timezone.now())
    except IntegrityError:
        # Another writer created it first, or the design was deleted meanwhile.
        return (
            SearchDocument.objects.filter(design_id=design_id).update(**fields, updated_at=timezone.now()) > 0
        )
    return True


def search_index_rebuild(*, missing_only: bool = False) -> int:
    """Rebuild the search document of every design (or of those without one); how many."""
    designs = Design.objects.order_by("pk")
    if missing_only:
        designs = designs.filter(search_document__isnull=True)
    done = 0
    for design_id in designs.values_list("pk", flat=True).iterator():
        done += search_document_refresh(design_id=design_id)
    return done
