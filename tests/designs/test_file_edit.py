"""Editing a text file in the browser: committed as the person on the branch they opened,
refused cleanly when the branch moved since, never for binary, LFS or large files, only for
writers; and the Markdown preview behind it, bounded like every Markdown field."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from designs.models import Design
from designs.views.files import MAX_EDIT_BYTES
from hub.markdown import MAX_MARKDOWN_CHARS
from tests.factories import DesignFactory, commit_files


@pytest.fixture
def design(alice):
    design = DesignFactory(owner=alice, slug="gripper")
    commit_files(design, {"README.md": "# Gripper\n", "photo.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 32})
    return Design.objects.get(pk=design.pk)


def edit_url(path: str, ref: str = "main") -> str:
    return reverse("design-file-edit", args=["alice", "gripper", path]) + f"?ref={ref}"


def text_at(design: Design, path: str) -> str:
    head = design.repo.branch_head("main")
    return design.repo.read_blob(design.repo.entry(head, path).sha).decode()


def base_of(page: str) -> str:
    return re.search(r'name="base" value="([0-9a-f]+)"', page).group(1)


def test_a_writer_edits_a_markdown_file_and_it_is_committed_as_them(client, alice, design):
    client.force_login(alice)
    page = client.get(edit_url("README.md")).content.decode()
    assert "# Gripper" in page and "data-preview-url" in page

    answer = client.post(
        edit_url("README.md"),
        {"content": "# Gripper\n\nNow with a hinge.\n", "message": "Say what changed", "base": base_of(page)},
    )

    assert answer.status_code == 302
    assert text_at(design, "README.md") == "# Gripper\n\nNow with a hinge.\n"
    last = design.repo.log("main", limit=1)[0]
    assert last.summary == "Say what changed"
    assert last.author.email == alice.email


def test_it_refuses_the_edit_when_the_branch_moved_since_the_page_loaded(client, alice, design):
    client.force_login(alice)
    page = client.get(edit_url("README.md")).content.decode()
    commit_files(design, {"README.md": "# Gripper, by someone else\n"}, message="Meanwhile")

    answer = client.post(
        edit_url("README.md"), {"content": "# Mine\n", "message": "Mine", "base": base_of(page)}
    )

    assert answer.status_code == 200
    assert "has changed since you opened this file: nothing was saved" in answer.content.decode()
    assert "# Mine" in answer.content.decode()  # the text typed is given back
    assert text_at(design, "README.md") == "# Gripper, by someone else\n"


def test_a_binary_file_is_not_editable(client, alice, design):
    client.force_login(alice)
    head = design.repo.branch_head("main")

    page = client.get(edit_url("photo.png")).content.decode()
    client.post(edit_url("photo.png"), {"content": "text", "message": "Break it", "base": head})

    assert "This is a binary file" in page and "<textarea" not in page
    assert design.repo.branch_head("main") == head


def test_a_file_over_the_size_limit_is_not_editable(client, alice, design):
    commit_files(design, {"big.txt": "x" * (MAX_EDIT_BYTES + 1)})
    client.force_login(alice)

    page = client.get(edit_url("big.txt")).content.decode()

    assert f"over {MAX_EDIT_BYTES // 1024} KiB" in page and "<textarea" not in page


def test_a_reader_may_not_edit(client, bob, design):
    client.force_login(bob)
    head = design.repo.branch_head("main")

    assert client.get(edit_url("README.md")).status_code == 403
    answer = client.post(edit_url("README.md"), {"content": "x", "message": "x", "base": head})

    assert answer.status_code == 403
    assert design.repo.branch_head("main") == head


def test_the_preview_renders_through_the_hubs_markdown_boundary(client, alice, design):
    client.force_login(alice)

    answer = client.post(
        reverse("design-markdown-preview", args=["alice", "gripper"]),
        {"text": "**bold** <script>alert(1)</script>"},
    )

    assert answer.status_code == 200
    html = answer.json()["html"]
    assert "<strong>bold</strong>" in html and "script" not in html


def test_the_preview_refuses_text_over_the_markdown_limit(client, alice, design):
    client.force_login(alice)

    answer = client.post(
        reverse("design-markdown-preview", args=["alice", "gripper"]),
        {"text": "x" * (MAX_MARKDOWN_CHARS + 1)},
    )

    assert answer.status_code == 400
    assert "the limit is" in answer.json()["detail"]


def test_a_reader_gets_no_preview(client, bob, design):
    client.force_login(bob)

    answer = client.post(reverse("design-markdown-preview", args=["alice", "gripper"]), {"text": "hi"})

    assert answer.status_code == 403
