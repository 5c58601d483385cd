""" "Where can I make this?" for a whole design (an assembly's module pinned at a commit):
first choose the part, among the design's meshes at that commit."""

from __future__ import annotations

import pytest
from django.test import Client

from designs import services as design_services
from tests.printing.factories import analysed_design, box_stl

pytestmark = pytest.mark.django_db


def test_a_design_without_a_file_lists_its_meshes_at_the_commit(alice):
    design, sha = analysed_design(
        alice, {"parts/base.stl": box_stl(20, 20, 4), "parts/arm.stl": box_stl(60, 8, 8)}
    )
    response = Client().get("/labs/where/", {"design": "alice/bracket", "rev": sha})
    assert response.status_code == 200
    page = response.content.decode()
    assert "parts/base.stl" in page and "parts/arm.stl" in page
    assert f"path=parts/arm.stl&amp;rev={sha}" in page
    # Each link leads to the chooser for that part.
    assert (
        Client()
        .get("/labs/where/", {"design": "alice/bracket", "path": "parts/arm.stl", "rev": sha})
        .status_code
        == 200
    )


def test_a_private_design_is_not_found_and_a_bad_name_is_refused(alice):
    design, sha = analysed_design(alice, {"part.stl": box_stl(10, 10, 10)}, slug="hidden")
    design_services.design_update(design=design, visibility="private")
    assert Client().get("/labs/where/", {"design": "alice/hidden"}).status_code == 404
    assert Client().get("/labs/where/", {"design": "no-slash"}).status_code == 400
