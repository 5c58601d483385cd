"""The upload form as upload.js sends a dropped folder: the files' paths inside it
(relative_path, in order) place them, one commit, checked like any path."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.factories import DesignFactory, commit_files


def test_a_dropped_folder_is_committed_in_its_layout_as_one_commit(client, alice):
    design = DesignFactory(owner=alice, slug="clamp")
    commit_files(design, {"README.md": "# Clamp\n"})
    before = design.repo.branch_head("main")
    client.force_login(alice)

    answer = client.post(
        reverse("design-upload", args=["alice", "clamp"]),
        {
            "files": [SimpleUploadedFile("a.scad", b"cube(1);\n"), SimpleUploadedFile("b.txt", b"notes\n")],
            "relative_path": ["jaw/a.scad", "jaw/docs/b.txt"],
            "folder": "parts",
            "message": "Add the jaw",
            "branch": "main",
        },
    )

    assert answer.status_code == 302
    head = design.repo.branch_head("main")
    assert design.repo.log("main", limit=2)[1].sha == before
    assert design.repo.read_blob(design.repo.entry(head, "parts/jaw/a.scad").sha) == b"cube(1);\n"
    assert design.repo.read_blob(design.repo.entry(head, "parts/jaw/docs/b.txt").sha) == b"notes\n"


def test_a_dropped_path_climbing_out_of_the_design_is_refused(client, alice):
    design = DesignFactory(owner=alice, slug="clamp")
    commit_files(design, {"README.md": "# Clamp\n"})
    before = design.repo.branch_head("main")
    client.force_login(alice)

    answer = client.post(
        reverse("design-upload", args=["alice", "clamp"]),
        {
            "files": [SimpleUploadedFile("a.scad", b"cube(1);\n")],
            "relative_path": ["../../etc/a.scad"],
            "message": "Escape",
            "branch": "main",
        },
    )

    assert answer.status_code == 200
    assert design.repo.branch_head("main") == before


def test_without_paths_the_files_keep_their_names(client, alice):
    design = DesignFactory(owner=alice, slug="clamp")
    commit_files(design, {"README.md": "# Clamp\n"})
    client.force_login(alice)

    client.post(
        reverse("design-upload", args=["alice", "clamp"]),
        {"files": [SimpleUploadedFile("a.scad", b"x\n")], "message": "Add", "branch": "main"},
    )

    assert design.repo.entry(design.repo.branch_head("main"), "a.scad") is not None
