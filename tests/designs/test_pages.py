"""The server-rendered pages: they render, they write through the services, they hide."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from designs import services
from designs.models import Design
from hub.models import AccessToken
from tests.factories import DesignFactory, commit_files

BOM_V1 = "reference,part,quantity\nR1,10k resistor,4\nC1,100nF capacitor,2\n"
BOM_V2 = "reference,part,quantity\nR1,10k resistor,6\nU1,ATmega328P,1\n"


@pytest.fixture
def design(alice):
    design = DesignFactory(owner=alice, slug="gripper", title="Soft gripper", tags=["robot", "printed"])
    commit_files(
        design,
        {
            "README.md": "# Soft gripper\n\nA gripper you can print.\n",
            "parts/finger.scad": "cube([10, 20, 30]);\n",
            "bom.csv": BOM_V1,
            "photo.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 32,
        },
        message="First version",
    )
    commit_files(
        design,
        {"parts/finger.scad": "cube([10, 20, 35]);\n", "bom.csv": BOM_V2},
        message="Longer finger\n\nThe old one was too short.",
    )
    return Design.objects.get(pk=design.pk)


def page_urls(design: Design) -> list[str]:
    args = [design.owner.username, design.slug]
    head = design.repo.resolve("main")
    return [
        reverse("design-detail", args=args),
        reverse("design-detail", args=args) + "?ref=" + head,
        reverse("design-tree", args=[*args, "parts"]),
        reverse("design-blob", args=[*args, "parts/finger.scad"]),
        reverse("design-blob", args=[*args, "photo.png"]),
        reverse("design-blob", args=[*args, "bom.csv"]),
        reverse("design-history", args=args),
        reverse("design-history", args=args) + "?path=bom.csv",
        reverse("design-commit", args=[*args, head]),
        reverse("design-compare", args=args),
        reverse("design-compare", args=args) + "?base=main~1&head=main",
        reverse("design-upload", args=args),
        reverse("design-delete-file", args=args) + "?path=bom.csv",
        reverse("design-rename-file", args=args) + "?path=bom.csv",
        reverse("design-branches", args=args),
        reverse("design-tags", args=args),
        reverse("design-fork", args=args),
        reverse("design-forks", args=args),
        reverse("design-settings", args=args),
    ]


def test_every_page_renders_for_the_owner_of_a_design_with_commits(client, alice, design):
    client.force_login(alice)
    for url in [
        *page_urls(design),
        reverse("design-list"),
        reverse("design-new"),
        reverse("tokens"),
    ]:
        response = client.get(url)
        assert response.status_code == 200, url


def test_public_pages_render_for_anonymous_visitors(client, design):
    for url in [reverse("design-list"), reverse("login"), reverse("signup")]:
        assert client.get(url).status_code == 200, url
    args = [design.owner.username, design.slug]
    for name in ("design-detail", "design-history", "design-compare", "design-branches", "design-tags"):
        assert client.get(reverse(name, args=args)).status_code == 200, name


def test_the_design_page_shows_files_readme_licence_and_tags(client, design):
    response = client.get(reverse("design-detail", args=["alice", "gripper"]))
    content = response.content.decode()
    assert "Soft gripper" in content
    assert "finger.scad" not in content  # it is inside the parts folder
    assert "parts/" in content
    assert "A gripper you can print." in content
    assert "CERN-OHL-S-2.0" in content
    assert "robot" in content and "printed" in content


def test_an_empty_design_page_explains_how_to_upload_the_first_files(client, alice):
    DesignFactory(owner=alice, slug="empty")
    client.force_login(alice)
    response = client.get(reverse("design-detail", args=["alice", "empty"]))
    assert response.status_code == 200
    assert "no files yet" in response.content.decode()
    assert reverse("design-upload", args=["alice", "empty"]) in response.content.decode()


def test_uploading_through_the_page_creates_a_commit(client, alice, design):
    client.force_login(alice)
    before = design.repo.resolve("main")
    response = client.post(
        reverse("design-upload", args=["alice", "gripper"]),
        {
            "files": [
                SimpleUploadedFile("palm.stl", b"solid palm\nendsolid palm\n"),
                SimpleUploadedFile("notes.txt", b"print at 0.2 mm\n"),
            ],
            "folder": "parts/printed",
            "message": "Add the palm",
            "branch": "main",
        },
    )
    assert response.status_code == 302
    assert response.url == reverse("design-detail", args=["alice", "gripper"])
    head = design.repo.resolve("main")
    assert head != before
    assert design.repo.commit(head).message == "Add the palm"
    assert design.repo.entry(head, "parts/printed/palm.stl") is not None
    assert design.repo.entry(head, "parts/printed/notes.txt") is not None


def test_an_upload_the_service_refuses_shows_its_message_in_the_form(client, alice, design):
    client.force_login(alice)
    response = client.post(
        reverse("design-upload", args=["alice", "gripper"]),
        {
            "files": [SimpleUploadedFile("x.stl", b"solid x\n")],
            "folder": "../outside",
            "message": "Escape",
            "branch": "main",
        },
    )
    assert response.status_code == 200
    assert "paths must stay inside the design" in response.content.decode()


def test_the_file_page_shows_text_in_a_pre_and_images_from_the_raw_url(client, design):
    head = design.repo.resolve("main")
    text = client.get(reverse("design-blob", args=["alice", "gripper", "parts/finger.scad"]))
    assert '<pre class="code">cube([10, 20, 35]);' in text.content.decode()
    image = client.get(reverse("design-blob", args=["alice", "gripper", "photo.png"]))
    raw = reverse("design-raw", args=["alice", "gripper", "photo.png"])
    assert f'<img src="{raw}?ref={head}"' in image.content.decode()


def test_bob_cannot_open_the_upload_page_of_alices_design(client, bob, design):
    client.force_login(bob)
    assert client.get(reverse("design-upload", args=["alice", "gripper"])).status_code == 403


def test_a_private_design_is_404_for_bob_on_every_page(client, bob, design):
    services.design_update(design=design, visibility=Design.Visibility.PRIVATE)
    client.force_login(bob)
    urls = [
        *page_urls(design),
        reverse("design-raw", args=["alice", "gripper", "bom.csv"]),
    ]
    for url in urls:
        assert client.get(url).status_code == 404, url
    response = client.post(reverse("design-fork", args=["alice", "gripper"]), {"slug": ""})
    assert response.status_code == 404
    assert not Design.objects.filter(owner=bob).exists()
    assert "gripper" not in client.get(reverse("design-list")).content.decode()


def test_a_private_design_is_404_for_anonymous_visitors(client, design):
    services.design_update(design=design, visibility=Design.Visibility.PRIVATE)
    assert client.get(reverse("design-detail", args=["alice", "gripper"])).status_code == 404


def test_readme_script_is_not_rendered(client, alice):
    design = DesignFactory(owner=alice, slug="sneaky")
    commit_files(
        design,
        {"README.md": '# Hi\n\n<script>alert("owned")</script>\n\n<img src=x onerror="alert(1)">\n'},
    )
    response = client.get(reverse("design-detail", args=["alice", "sneaky"]))
    content = response.content.decode()
    assert response.status_code == 200
    # The only scripts are the hub's own files (the CSP would refuse any other anyway).
    scripts = re.findall(r"<script[^>]*>", content)
    assert scripts and all(re.fullmatch(r'<script src="/static/hub/[a-z]+\.js" defer>', s) for s in scripts)
    assert "onerror" not in content


def test_list_page_query_count_does_not_grow_with_the_number_of_designs(
    client, alice, bob, django_assert_max_num_queries
):
    def make(count: int, prefix: str) -> None:
        for i in range(count):
            design = DesignFactory(owner=alice, slug=f"{prefix}-{i}", tags=["robot", f"t{i}"])
            commit_files(design, {"README.md": "hi"})
            services.design_fork(design=design, user=bob)

    client.force_login(bob)
    make(2, "few")
    with django_assert_max_num_queries(8) as few:
        assert client.get(reverse("design-list")).status_code == 200
    make(8, "many")
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(reverse("design-list"))
    assert response.status_code == 200
    assert "Fork of alice/many-7" in response.content.decode()


def test_the_list_filters_by_text_tag_licence_and_owner(client, alice, bob):
    DesignFactory(owner=alice, slug="gripper", title="Soft gripper", tags=["robot"])
    DesignFactory(owner=bob, slug="lamp", title="Desk lamp", licence="MIT", tags=["light"])

    def names(**query) -> str:
        return client.get(reverse("design-list"), query).content.decode()

    assert "Desk lamp" not in names(q="gripp") and "Soft gripper" in names(q="gripp")
    assert "Soft gripper" not in names(tag="light") and "Desk lamp" in names(tag="light")
    assert "Soft gripper" not in names(licence="MIT")
    assert "Desk lamp" not in names(owner="alice")


def test_the_commit_page_shows_the_diff_against_its_parent(client, design, background_tasks_run):
    head = design.repo.resolve("main")
    response = client.get(reverse("design-commit", args=["alice", "gripper", head]))
    content = response.content.decode()
    assert "Longer finger" in content
    assert "The old one was too short." in content
    assert '<span class="del">-cube([10, 20, 30]);</span>' in content
    assert '<span class="add">+cube([10, 20, 35]);</span>' in content


def test_compare_shows_bom_rows_with_quantity_deltas(client, design, background_tasks_run):
    response = client.get(
        reverse("design-compare", args=["alice", "gripper"]), {"base": "main~1", "head": "main"}
    )
    content = response.content.decode()
    assert response.status_code == 200
    assert "U1" in content and "C1" in content
    assert "+2" in content  # R1 went from 4 to 6


def test_compare_with_an_unknown_revision_says_so_in_the_form(client, design):
    response = client.get(reverse("design-compare", args=["alice", "gripper"]), {"base": "nope"})
    assert response.status_code == 200
    assert "No branch, tag or commit" in response.content.decode()


def test_history_is_paginated_thirty_commits_per_page(client, alice):
    design = DesignFactory(owner=alice, slug="busy")
    for i in range(31):
        commit_files(design, {"counter.txt": str(i)}, message=f"Step {i}")
    url = reverse("design-history", args=["alice", "busy"])
    first = client.get(url).content.decode()
    assert "Step 30" in first and "Step 1<" in first and "Step 0<" not in first
    assert "Page 1 of 2" in first
    second = client.get(url, {"page": 2}).content.decode()
    assert "Step 0<" in second
    assert client.get(url, {"page": 3}).status_code == 404


def test_deleting_and_renaming_a_file_through_the_pages_commit(client, alice, design):
    client.force_login(alice)
    response = client.post(
        reverse("design-rename-file", args=["alice", "gripper"]),
        {"path": "bom.csv", "new_path": "docs/bom.csv", "branch": "main", "message": "Move the BOM"},
    )
    assert response.status_code == 302
    head = design.repo.resolve("main")
    assert design.repo.entry(head, "docs/bom.csv") is not None
    response = client.post(
        reverse("design-delete-file", args=["alice", "gripper"]),
        {"path": "photo.png", "branch": "main", "message": "Drop the photo"},
    )
    assert response.status_code == 302
    assert design.repo.entry(design.repo.resolve("main"), "photo.png") is None


def test_forking_through_the_page_redirects_to_the_fork_that_names_its_upstream(client, bob, design):
    client.force_login(bob)
    response = client.post(reverse("design-fork", args=["alice", "gripper"]), {"slug": "my-gripper"})
    assert response.status_code == 302
    assert response.url == reverse("design-detail", args=["bob", "my-gripper"])
    content = client.get(response.url).content.decode()
    assert "Forked from" in content
    assert reverse("design-detail", args=["alice", "gripper"]) in content


def test_forking_twice_under_the_same_name_shows_the_conflict_in_the_form(client, bob, design):
    client.force_login(bob)
    url = reverse("design-fork", args=["alice", "gripper"])
    client.post(url, {"slug": ""})
    response = client.post(url, {"slug": ""})
    assert response.status_code == 200
    assert "pick another name" in response.content.decode()


def test_writers_create_and_delete_branches_and_tag_releases(client, alice, design):
    client.force_login(alice)
    branches = reverse("design-branches", args=["alice", "gripper"])
    client.post(branches, {"action": "create", "name": "longer-arm", "start": ""})
    assert design.repo.branch_head("longer-arm") == design.repo.resolve("main")
    client.post(branches, {"action": "delete", "name": "longer-arm"})
    assert design.repo.branch_head("longer-arm") is None
    response = client.post(branches, {"action": "delete", "name": "main"}, follow=True)
    assert "default branch and cannot be deleted" in response.content.decode()

    tags = reverse("design-tags", args=["alice", "gripper"])
    client.post(tags, {"action": "create", "name": "v1.0", "target": "", "notes": "First build."})
    assert "First build." in client.get(tags).content.decode()


def test_readers_cannot_create_branches(client, bob, design):
    client.force_login(bob)
    response = client.post(
        reverse("design-branches", args=["alice", "gripper"]), {"action": "create", "name": "x"}
    )
    assert response.status_code == 403


def test_settings_are_for_the_owner_and_save_through_the_service(client, alice, bob, design):
    client.force_login(bob)
    assert client.get(reverse("design-settings", args=["alice", "gripper"])).status_code == 403
    client.force_login(alice)
    url = reverse("design-settings", args=["alice", "gripper"])
    response = client.post(
        url,
        {
            "action": "update",
            "title": "Softer gripper",
            "summary": "Now softer.",
            "licence": "CERN-OHL-W-2.0",
            "visibility": "public",
            "tags": "robot, soft",
            "default_branch": "main",
        },
    )
    assert response.status_code == 302
    design.refresh_from_db()
    assert design.title == "Softer gripper"
    assert design.licence == "CERN-OHL-W-2.0"
    assert sorted(t.name for t in design.tags.all()) == ["robot", "soft"]

    client.post(url, {"action": "add-collaborator", "username": "bob", "role": "write"})
    assert design.collaborators.get().user == bob
    client.post(url, {"action": "remove-collaborator", "username": "bob"})
    assert not design.collaborators.exists()


def test_a_forks_licence_cannot_be_changed_in_its_settings(client, bob, design):
    fork = services.design_fork(design=design, user=bob)
    client.force_login(bob)
    url = reverse("design-settings", args=["bob", "gripper"])
    client.post(
        url,
        {
            "action": "update",
            "title": "Mine",
            "summary": "",
            "licence": "MIT",
            "visibility": "public",
            "tags": "",
            "default_branch": "main",
        },
    )
    fork.refresh_from_db()
    assert fork.title == "Mine"
    assert fork.licence == design.licence


def test_creating_a_design_through_the_page_redirects_to_it(client, alice):
    client.force_login(alice)
    response = client.post(
        reverse("design-new"),
        {
            "slug": "lamp",
            "title": "Desk lamp",
            "summary": "",
            "licence": "MIT",
            "visibility": "public",
            "tags": "light, desk",
        },
    )
    assert response.status_code == 302
    assert response.url == reverse("design-detail", args=["alice", "lamp"])
    design = Design.objects.get(owner=alice, slug="lamp")
    assert sorted(t.name for t in design.tags.all()) == ["desk", "light"]


def test_a_taken_design_name_is_an_error_in_the_new_design_form(client, alice, design):
    client.force_login(alice)
    response = client.post(
        reverse("design-new"),
        {"slug": "gripper", "title": "Again", "licence": "MIT", "visibility": "public", "tags": ""},
    )
    assert response.status_code == 200
    assert "already have a design named" in response.content.decode()


def test_the_new_design_page_asks_anonymous_visitors_to_log_in(client, db):
    response = client.get(reverse("design-new"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_tokens_page_shows_a_token_once(client, alice):
    client.force_login(alice)
    response = client.post(reverse("tokens"), {"action": "create", "name": "laptop", "scope": "read"})
    token = AccessToken.objects.get(user=alice)
    raw = response.context["raw"]
    assert raw.startswith(token.hint)
    assert raw in response.content.decode()
    assert token.scope == "read"
    again = client.get(reverse("tokens")).content.decode()
    assert raw not in again
    assert token.hint in again


def test_revoking_a_token_on_the_tokens_page_stops_it(client, alice):
    client.force_login(alice)
    client.post(reverse("tokens"), {"action": "create", "name": "ci", "scope": "write"})
    token = AccessToken.objects.get(user=alice)
    response = client.post(reverse("tokens"), {"action": "revoke", "token_id": token.pk})
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_signing_up_logs_the_new_user_in(client, db):
    response = client.post(
        reverse("signup"),
        {
            "username": "carol",
            "email": "",
            "password1": "a long passphrase",
            "password2": "a long passphrase",
        },
    )
    assert response.status_code == 302
    assert client.get(reverse("design-list")).context["user"].username == "carol"


@pytest.mark.parametrize("username", ["new", "Settings", "api", "static", "..", ".hidden"])
def test_signup_refuses_usernames_that_collide_with_routes_or_paths(client, db, username):
    response = client.post(
        reverse("signup"),
        {"username": username, "password1": "a long passphrase", "password2": "a long passphrase"},
    )
    assert response.status_code == 200
    assert response.context["form"].errors["username"]


def test_a_design_whose_default_branch_is_gone_shows_how_to_fix_it_not_a_404(client, alice):
    design = DesignFactory(owner=alice, slug="orphan")
    commit_files(design, {"README.md": "# Orphan\n"})
    repo = design.repo
    repo.update_ref("refs/heads/work", repo.branch_head("main"), None)
    repo.delete_ref("refs/heads/main", repo.branch_head("main"))
    client.force_login(alice)
    response = client.get(reverse("design-detail", args=["alice", "orphan"]))
    assert response.status_code == 200
    text = response.content.decode()
    assert "The default branch <code>main</code> does not exist" in text
    assert "work:main" in text and "Settings" in text
    other = client.get(reverse("design-detail", args=["alice", "orphan"]), {"ref": "work"})
    assert other.status_code == 200 and "Orphan" in other.content.decode()


def test_the_owner_turns_tag_changes_on_in_settings(client, alice):
    design = DesignFactory(owner=alice, slug="released")
    commit_files(design, {"README.md": "# R\n"})
    client.force_login(alice)
    settings_url = reverse("design-settings", args=["alice", "released"])
    page = client.get(settings_url).content.decode()
    assert "Allow moving and deleting tags" in page
    client.post(
        settings_url,
        {
            "action": "update",
            "title": "R",
            "licence": design.licence,
            "visibility": "public",
            "tags": "",
            "default_branch": "main",
            "allow_tag_changes": "on",
        },
    )
    design.refresh_from_db()
    assert design.allow_tag_changes and not design.allow_default_branch_rewrite


def test_an_imported_fork_of_a_design_on_another_hub_links_to_where_it_came_from(client, design):
    Design.objects.filter(pk=design.pk).update(
        imported_from="https://hub-a.example/alice/gripper/",
        forked_from_name="bob/hand (on hub-b.example)",
        forked_from_url="https://hub-b.example/bob/hand/",
        fork_point="a" * 40,
    )
    content = client.get(reverse("design-detail", args=["alice", "gripper"])).content.decode()
    assert 'Imported from <a href="https://hub-a.example/alice/gripper/"' in content
    assert (
        '<a href="https://hub-b.example/bob/hand/" rel="nofollow noopener">bob/hand (on hub-b.example)</a>'
        in content
    )
