"""Bad input gets a clear error and loses nothing: one test per case, fsck after each."""

from __future__ import annotations

import unicodedata

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from designs import services
from hub.exceptions import Conflict, ValidationError
from tests.factories import DesignFactory, commit_files

pytestmark = pytest.mark.django_db


@pytest.fixture
def design(alice):
    design = DesignFactory(owner=alice, slug="bracket")
    commit_files(design, {"README.md": "# Bracket", "parts/bracket.stl": "solid b\nendsolid b\n"})
    return design


def assert_unchanged_and_valid(design, head: str) -> None:
    repo = design.repo
    assert repo.branch_head("main") == head, "a refused write must not move the branch"
    ok, report = repo.fsck()
    assert ok, report


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../escape.txt", "inside the design"),
        ("parts/../../escape.txt", "inside the design"),
        ("/etc/passwd", "absolute"),
        (".git/config", ".git"),
        ("parts/.GIT/hooks/pre-receive", ".git"),
        ("bad\x00name.stl", "NUL"),
        ("windows\\path.stl", "backslash"),
        ("x" * 256 + ".stl", "255 bytes"),
        ("é" * 128 + ".stl", "255 bytes"),  # 256 bytes of UTF-8 in 129 characters
        ("parts//double.stl", "empty"),
        ("./here.stl", "'.'"),
        ("new\nline.stl", "control characters"),
        ("trailing-dot.", "ends with a dot"),
        ("CON.stl", "reserved on Windows"),
    ],
)
def test_hostile_file_names_are_refused(design, alice, name, reason):
    head = design.repo.branch_head("main")
    with pytest.raises(ValidationError, match=reason):
        commit_files(design, {name: "evil"})
    assert_unchanged_and_valid(design, head)


def test_a_name_that_normalises_to_an_existing_name_is_refused(design, alice):
    # Put a decomposed "é" beside a composed one, as a push from macOS could.
    composed = unicodedata.normalize("NFC", "pièce.stl")
    commit_files(design, {composed: "v1"})
    head = design.repo.branch_head("main")
    decomposed = unicodedata.normalize("NFD", "pièce.stl")
    assert decomposed != composed
    # The upload is normalised to NFC, so it updates the same file instead of adding one.
    commit_files(design, {decomposed: "v2"})
    paths = design.repo.all_paths(design.repo.branch_head("main"))
    assert paths.count(composed) == 1 and decomposed not in paths
    assert design.repo.is_ancestor(head, design.repo.branch_head("main"))


def test_a_name_differing_only_by_case_from_an_existing_file_is_refused(design, alice):
    head = design.repo.branch_head("main")
    with pytest.raises(ValidationError, match="collide"):
        commit_files(design, {"readme.md": "# shadow"})
    assert_unchanged_and_valid(design, head)


def test_an_upload_over_the_size_limit_is_413_with_the_limit(design, alice_api, settings):
    settings.FABHUB_MAX_UPLOAD_BYTES = 1024
    head = design.repo.branch_head("main")
    url = reverse("api-design-upload", args=["alice", "bracket"])
    big = SimpleUploadedFile("big.stl", b"x" * 2048)
    response = alice_api.post(url, {"files": [big], "message": "too big"}, format="multipart")
    assert response.status_code == 413
    assert "1,024 bytes" in response.json()["detail"]
    assert_unchanged_and_valid(design, head)


def test_a_request_body_over_the_limit_is_413_before_it_is_read(design, alice_api, settings):
    settings.FABHUB_MAX_REQUEST_BYTES = 10_000
    head = design.repo.branch_head("main")
    url = reverse("api-design-upload", args=["alice", "bracket"])
    big = SimpleUploadedFile("big.stl", b"x" * 20_000)
    response = alice_api.post(url, {"files": [big], "message": "too big"}, format="multipart")
    assert response.status_code == 413
    assert "10,000 bytes" in response.json()["detail"]
    assert_unchanged_and_valid(design, head)


def test_an_empty_commit_is_refused(design, alice):
    head = design.repo.branch_head("main")
    with pytest.raises(ValidationError, match="Nothing to commit"):
        services.design_commit(design=design, author=alice, message="nothing")
    with pytest.raises(ValidationError, match="Nothing changed"):
        commit_files(design, {"README.md": "# Bracket"})
    assert_unchanged_and_valid(design, head)


def test_an_empty_commit_message_is_refused(design, alice):
    head = design.repo.branch_head("main")
    with pytest.raises(ValidationError, match="message"):
        commit_files(design, {"new.txt": "x"}, message="   ")
    assert_unchanged_and_valid(design, head)


@pytest.mark.parametrize(
    "name", ["has space", "double..dot", "ends.lock", "-leading-dash", "a~b", "x^y", "colon:", "@{", "HEAD"]
)
def test_branch_and_tag_names_git_rejects_are_refused(design, alice, name):
    head = design.repo.branch_head("main")
    with pytest.raises(ValidationError, match="not a valid branch name"):
        services.branch_create(design=design, user=alice, name=name)
    with pytest.raises(ValidationError, match="not a valid tag name"):
        services.tag_create(design=design, user=alice, name=name, target=None, notes="")
    with pytest.raises(ValidationError, match="not a valid branch name"):
        commit_files(design, {"x.txt": "1"}, branch=name)
    assert [b for b, _ in design.repo.branches()] == ["main"]
    assert_unchanged_and_valid(design, head)


def test_a_colliding_design_slug_is_a_conflict(design, alice):
    with pytest.raises(Conflict, match="already have a design"):
        DesignFactory(owner=alice, slug="bracket")
    with pytest.raises(Conflict, match="already have a design"):
        DesignFactory(owner=alice, slug="Bracket".lower().upper().lower())
    assert_unchanged_and_valid(design, design.repo.branch_head("main"))


@pytest.mark.parametrize("slug", ["../up", "a/b", "UPPER", ".hidden", "name.git", "", "x" * 101])
def test_invalid_design_slugs_are_refused(alice, slug, repos_dir):
    with pytest.raises(ValidationError):
        DesignFactory(owner=alice, slug=slug)
    assert not any(repos_dir.rglob("*.git")) if repos_dir.exists() else True


def test_a_readme_carrying_script_renders_without_it(design, alice_api, alice):
    commit_files(
        design,
        {
            "README.md": '# Hi\n\n<script>alert(1)</script>\n\n<img src="x.png" onerror="alert(2)">\n\n[click](javascript:alert(3))\n'
        },
    )
    response = alice_api.get(reverse("api-design-readme", args=["alice", "bracket"]))
    html = response.json()["html"]
    assert "<script" not in html and "alert(1)" not in html
    assert "onerror" not in html
    assert "javascript:" not in html
    assert "/alice/bracket/raw/x.png?ref=" in html
    assert design.repo.fsck()[0]
