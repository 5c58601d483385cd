"""The API of a proposal's conflicts: list them with their text hunks, resolve them with
JSON (keep a side, hunks, text) or multipart (an uploaded file); errors in its shape."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from designs import services
from designs.services import proposals
from tests.conftest import client_for
from tests.factories import DesignFactory, UserFactory, commit_files

pytestmark = pytest.mark.django_db

TEXT = "line 1\nline 2\nline 3\nline 4\nline 5\n"
STEP = "ISO-10303-21;\nDATA;\n#1=POINT(0,0,0);\nENDSEC;\nEND-ISO-10303-21;\n"


@pytest.fixture
def upstream(alice):
    design = DesignFactory(owner=alice, slug="bracket")
    commit_files(design, {"notes.txt": TEXT, "bracket.step": STEP}, "Start")
    return design


@pytest.fixture
def proposal(upstream, bob):
    fork = services.design_fork(design=upstream, user=bob)
    commit_files(
        fork,
        {"notes.txt": TEXT.replace("3", "fork"), "bracket.step": STEP.replace("0,0,0", "1,1,1")},
        "F",
        author=bob,
    )
    commit_files(
        upstream, {"notes.txt": TEXT.replace("3", "up"), "bracket.step": STEP.replace("0,0,0", "2,2,2")}, "U"
    )
    return proposals.proposal_create(target=upstream, user=bob, source=fork, source_branch="main", title="T")


def url(*args):
    return reverse("api-design-proposal-conflicts", args=["alice", "bracket", *args])


def test_the_conflicts_are_listed_with_their_hunks(proposal, alice_api):
    answer = alice_api.get(url(1))
    assert answer.status_code == 200
    files = {f["path"]: f for f in answer.json()}
    assert files["bracket.step"]["kind"] == "binary" and files["bracket.step"]["hunks"] == []
    conflict = [h for h in files["notes.txt"]["hunks"] if h["common"] is None]
    assert conflict == [{"common": None, "target": "line up\n", "source": "line fork\n"}]


def test_a_json_resolution_merges_the_proposal(upstream, proposal, alice_api):
    answer = alice_api.post(
        url(1),
        {
            "expected_head": proposal.head_sha,
            "expected_target": proposal.target_sha,
            "files": [
                {"path": "notes.txt", "keep": "hunks", "hunks": ["source"]},
                {"path": "bracket.step", "keep": "target"},
            ],
        },
        format="json",
    )
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["where"] == "target" and body["proposal"]["status"] == "merged"
    assert upstream.repo.branch_head("main") == body["sha"]


def test_a_multipart_resolution_carries_the_uploaded_file(upstream, proposal, alice_api):
    resolved = STEP.replace("0,0,0", "3,3,3").encode()
    answer = alice_api.post(
        url(1),
        {
            "expected_head": proposal.head_sha,
            "expected_target": proposal.target_sha,
            "files": json.dumps(
                [
                    {"path": "notes.txt", "keep": "text", "text": TEXT},
                    {"path": "bracket.step", "keep": "upload"},
                ]
            ),
            "upload:bracket.step": SimpleUploadedFile("bracket.step", resolved),
        },
        format="multipart",
    )
    assert answer.status_code == 200, answer.content
    sha = answer.json()["sha"]
    repo = upstream.repo
    assert repo.read_blob(repo.entry(sha, "bracket.step").sha) == resolved
    assert repo.read_blob(repo.entry(sha, "notes.txt").sha).decode() == TEXT


def test_markers_left_in_a_text_are_a_400(proposal, alice_api):
    answer = alice_api.post(
        url(1),
        {
            "expected_head": proposal.head_sha,
            "expected_target": proposal.target_sha,
            "files": [
                {"path": "notes.txt", "keep": "text", "text": "<<<<<<< a\nx\n=======\ny\n>>>>>>> b\n"},
                {"path": "bracket.step", "keep": "target"},
            ],
        },
        format="json",
    )
    assert answer.status_code == 400 and "conflict markers" in answer.json()["detail"]


def test_a_moved_target_is_a_409_with_the_new_head(upstream, proposal, alice_api):
    moved = commit_files(upstream, {"x.txt": "x"}, "Meanwhile")
    answer = alice_api.post(
        url(1),
        {
            "expected_head": proposal.head_sha,
            "expected_target": proposal.target_sha,
            "files": [{"path": "notes.txt", "keep": "source"}, {"path": "bracket.step", "keep": "source"}],
        },
        format="json",
    )
    assert answer.status_code == 409 and answer.json()["target_head"] == moved


def test_a_stranger_gets_a_403(proposal):
    stranger = client_for(UserFactory(username="carol"))
    answer = stranger.post(
        url(1),
        {
            "expected_head": proposal.head_sha,
            "expected_target": proposal.target_sha,
            "files": [{"path": "notes.txt", "keep": "source"}, {"path": "bracket.step", "keep": "source"}],
        },
        format="json",
    )
    assert answer.status_code == 403
