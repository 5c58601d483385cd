"""The makes list endpoints take as many queries for many makes as for one."""

from __future__ import annotations

import io
import itertools

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from designs import services
from tests.api.querycounts import assert_queries_do_not_grow_with_rows, results
from tests.factories import DesignFactory, UserFactory, commit_files

pytestmark = pytest.mark.django_db

numbers = itertools.count(1)


def photo() -> SimpleUploadedFile:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 90, 0)).save(out, "PNG")
    return SimpleUploadedFile("p.png", out.getvalue())


@pytest.fixture
def design(alice):
    design = DesignFactory(owner=alice, slug="bracket")
    commit_files(design, {"README.md": "# Bracket\n"}, "Start")
    return design


def make(design, maker) -> None:
    services.make_create(
        design=design, maker=maker, commit_sha=design.repo.branch_head("main"), photo=photo(), where="here"
    )


def test_listing_a_design_s_makes_takes_the_same_queries_for_one_as_for_many(api, design):
    def add(n):
        for _ in range(n):
            make(design, UserFactory(username=f"maker-{next(numbers)}"))

    assert_queries_do_not_grow_with_rows(
        api, reverse("api-design-makes", args=["alice", "bracket"]), add=add, listed=results
    )


def test_listing_a_person_s_makes_takes_the_same_queries_for_one_as_for_many(api, alice, bob):
    def add(n):
        for _ in range(n):
            other = DesignFactory(owner=UserFactory(username=f"owner-{next(numbers)}"))
            commit_files(other, {"a.txt": "x"})
            make(other, bob)

    assert_queries_do_not_grow_with_rows(
        api, reverse("api-user-makes", args=["bob"]), add=add, listed=results
    )
