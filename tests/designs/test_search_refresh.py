"""The search document's refresh (designs/services/search.py) holds the design's row locked
only for reading the row's words and writing the document: on SQLite its transaction
stops every other writer of the database, so the README's and the paths' words, the
larger part of the work, are made before it starts."""

from __future__ import annotations

import pytest
from django.db import connection

from designs.models import SearchDocument
from designs.services import search as search_service
from tests.factories import DesignFactory, commit_files


@pytest.mark.django_db(transaction=True)
def test_the_readme_and_the_paths_are_tokenised_before_the_row_is_locked(alice, monkeypatch):
    design = DesignFactory(owner=alice, slug="go-kart", title="Go-kart", summary="A small racing car.")
    commit_files(
        design,
        {"README.md": "# Kart\n\nThe front axle.\n", "chassis/wishboneArm.scad": "cube(1);\n"},
        "Start",
    )
    in_transaction: dict[str, bool] = {}
    tokenise = search_service.document_text

    def spy(text: str) -> str:
        in_transaction[text] = connection.in_atomic_block
        return tokenise(text)

    monkeypatch.setattr(search_service, "document_text", spy)
    assert search_service.search_document_refresh(design_id=design.pk)

    paths = next(text for text in in_transaction if "wishboneArm" in text)
    readme = next(text for text in in_transaction if "front axle" in text)
    assert in_transaction[paths] is False
    assert in_transaction[readme] is False
    # The row's words are read, and tokenised, under the lock.
    assert in_transaction["Go-kart go-kart"] is True
    assert in_transaction["A small racing car."] is True
    document = SearchDocument.objects.get(design=design)
    assert document.path_words == "readme md chassis wishbone arm wishbonearm scad"
    assert document.title_words == "go kart go kart"


@pytest.mark.django_db
def test_a_design_deleted_before_the_refresh_has_no_document(alice):
    design = DesignFactory(owner=alice, slug="go-kart")
    design_id = design.pk
    design.delete()
    assert search_service.search_document_refresh(design_id=design_id) is False
    assert not SearchDocument.objects.filter(design_id=design_id).exists()
