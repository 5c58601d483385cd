"""The designs REST API end to end, over real repositories."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from designs import services
from designs.models import Design
from tests.conftest import client_for
from tests.factories import DesignFactory, UserFactory, commit_files

pytestmark = pytest.mark.django_db


def url(name: str, *args) -> str:
    return reverse(name, args=args)


def create(api_client, slug="bracket", **extra):
    data = {
        "slug": slug,
        "title": "Bracket",
        "licence": "CERN-OHL-W-2.0",
        "tags": ["bracket", "body"],
        **extra,
    }
    return api_client.post(url("api-design-list"), data, format="json")


def test_it_creates_a_design_with_a_token(alice_api, alice):
    response = create(alice_api)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["full_name"] == "alice/bracket"
    assert body["licence"] == "CERN-OHL-W-2.0"
    assert sorted(body["tags"]) == ["body", "bracket"]
    assert Design.objects.get(slug="bracket").repo_path.exists()


def test_anonymous_users_cannot_create(api):
    assert create(api).status_code == 401


def test_a_read_only_token_cannot_write(alice):
    reader = client_for(alice, scope="read")
    assert reader.get(url("api-design-list")).status_code == 200
    assert create(reader).status_code == 403


def test_a_read_only_token_cannot_mint_tokens_nor_fork(alice, bob):
    upstream = DesignFactory(owner=bob)
    commit_files(upstream, {"a.txt": "1"})
    reader = client_for(alice, scope="read")
    assert reader.post(url("api-tokens"), {"name": "escalate"}, format="json").status_code == 403
    assert (
        reader.post(url("api-design-fork", bob.username, upstream.slug), {}, format="json").status_code == 403
    )


def test_a_malformed_page_number_is_a_clear_400(alice_api, alice):
    design = DesignFactory(owner=alice, slug="bracket")
    commit_files(design, {"a.txt": "1"})
    response = alice_api.get(url("api-design-history", "alice", "bracket"), {"page": "two"})
    assert response.status_code == 400
    assert "positive whole number" in response.json()["detail"]


def test_a_tag_without_a_target_is_a_clear_400(alice_api, alice):
    design = DesignFactory(owner=alice, slug="bracket")
    commit_files(design, {"a.txt": "1"})
    response = alice_api.post(url("api-design-tags", "alice", "bracket"), {"name": "v1"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"target": ["Say what to tag: a branch, tag or commit sha, e.g. main."]}


def test_a_revoked_token_stops_working(alice, api):
    from hub import services as hub_services

    token, raw = hub_services.token_create(user=alice, name="laptop")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get(url("api-me")).json()["username"] == "alice"
    hub_services.token_revoke(user=alice, token_id=token.pk)
    assert api.get(url("api-me")).status_code == 401


def test_upload_many_files_into_a_folder_then_read_them_back(alice_api, alice):
    create(alice_api)
    files = [
        SimpleUploadedFile("a.stl", b"solid a\nendsolid a\n"),
        SimpleUploadedFile("b.csv", b"part,qty\nbolt,2\n"),
    ]
    response = alice_api.post(
        url("api-design-upload", "alice", "bracket"),
        {"files": files, "message": "Add parts", "folder": "parts"},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    sha = response.json()["sha"]

    tree = alice_api.get(url("api-design-tree", "alice", "bracket"), {"path": "parts"}).json()
    assert tree["commit"] == sha
    assert [e["name"] for e in tree["entries"]] == ["a.stl", "b.csv"]

    raw = alice_api.get(url("api-design-raw", "alice", "bracket"), {"path": "parts/a.stl", "ref": sha})
    assert raw.status_code == 200
    assert b"".join(raw.streaming_content) == b"solid a\nendsolid a\n"
    assert raw["Content-Type"] == "model/stl"
    assert raw["ETag"] == f'"{tree["entries"][0]["sha"]}"'


def test_raw_files_answer_304_for_their_etag_and_serve_ranges(alice):
    design = DesignFactory(owner=alice, slug="bracket")
    commit_files(design, {"notes.txt": "0123456789"})
    path = url("design-raw", "alice", "bracket", "notes.txt")
    from django.test import Client

    client = Client()
    first = client.get(path)
    assert first.status_code == 200
    assert client.get(path, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    partial = client.get(path, HTTP_RANGE="bytes=2-5")
    assert partial.status_code == 206
    assert b"".join(partial.streaming_content) == b"2345"
    assert partial["Content-Length"] == "4"
    tail = client.get(path, HTTP_RANGE="bytes=-3")
    assert b"".join(tail.streaming_content) == b"789"
    assert client.get(path, HTTP_RANGE="bytes=20-30").status_code == 416
    assert partial["Content-Range"] == "bytes 2-5/10"


def test_raw_html_is_never_served_as_a_page(alice):
    design = DesignFactory(owner=alice, slug="bracket")
    commit_files(design, {"evil.html": "<script>alert(1)</script>"})
    from django.test import Client

    response = Client().get(url("design-raw", "alice", "bracket", "evil.html"))
    assert response["Content-Type"].startswith("text/plain")
    assert "sandbox" in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"


def test_history_is_paginated_and_filters_by_path(alice_api, alice):
    design = DesignFactory(owner=alice, slug="bracket")
    for n in range(5):
        commit_files(design, {f"file-{n % 2}.txt": f"v{n}"}, f"Commit {n}")
    page = alice_api.get(url("api-design-history", "alice", "bracket"), {"per_page": 2}).json()
    assert page["count"] == 5
    assert [c["message"] for c in page["results"]] == ["Commit 4", "Commit 3"]
    assert page["next"] and page["previous"] is None
    assert page["results"][0]["files"] == [{"status": "modified", "path": "file-0.txt", "old_path": None}]
    last = alice_api.get(page["next"].replace("http://testserver", "")).json()
    assert [c["message"] for c in last["results"]] == ["Commit 2", "Commit 1"]

    filtered = alice_api.get(url("api-design-history", "alice", "bracket"), {"path": "file-1.txt"}).json()
    assert filtered["count"] == 2
    assert [c["message"] for c in filtered["results"]] == ["Commit 3", "Commit 1"]


def test_a_file_is_readable_at_any_revision(alice_api, alice):
    design = DesignFactory(owner=alice, slug="bracket")
    old = commit_files(design, {"bom.csv": "part,qty\nbolt,2\n"})
    commit_files(design, {"bom.csv": "part,qty\nbolt,3\n"})
    raw = alice_api.get(url("api-design-raw", "alice", "bracket"), {"path": "bom.csv", "ref": old})
    assert b"".join(raw.streaming_content) == b"part,qty\nbolt,2\n"
    missing = alice_api.get(url("api-design-raw", "alice", "bracket"), {"path": "nope.csv"})
    assert missing.status_code == 404


def test_diff_reports_status_size_delta_text_patch_and_bom_rows(alice_api, alice):
    design = DesignFactory(owner=alice, slug="bracket")
    base = commit_files(
        design,
        {
            "notes.md": "line one\nline two\n",
            "bom.csv": "part,quantity,material\nbolt,4,steel\nbracket,2,PETG\n",
            "old-name.stl": b"\x00binary" * 20,
            "gone.txt": "bye",
            "mesh.bin": b"\x00\x01\x02",
        },
    )
    services.design_commit(
        design=design,
        author=alice,
        message="Rename",
        renames=[services.Rename("old-name.stl", "new-name.stl")],
    )
    head = commit_files(
        design,
        {
            "notes.md": "line one\nline 2\n",
            "bom.csv": "part,quantity,material\nbolt,6,steel\nnut,6,steel\n",
            "mesh.bin": b"\x00\x01\x02\x03\x04",
            "added.txt": "new",
        },
    )
    services.design_commit(design=design, author=alice, message="rm", deletes=["gone.txt"])
    head = design.repo.branch_head("main")

    body = alice_api.get(url("api-design-diff", "alice", "bracket"), {"base": base, "head": head}).json()
    files = {f["path"]: f for f in body["files"]}
    assert files["added.txt"]["status"] == "added"
    assert files["gone.txt"]["status"] == "deleted"
    assert (
        files["new-name.stl"]["status"] == "renamed" and files["new-name.stl"]["old_path"] == "old-name.stl"
    )
    assert files["mesh.bin"]["kind"] == "binary" and files["mesh.bin"]["size_delta"] == 2
    notes = files["notes.md"]
    assert notes["kind"] == "text"
    assert "-line two\n+line 2" in notes["detail"]["patch"]
    bom = files["bom.csv"]["detail"]
    assert files["bom.csv"]["kind"] == "bom"
    rows = {r["key"]: r for r in bom["rows"]}
    assert rows["bolt"]["kind"] == "changed" and rows["bolt"]["quantity_delta"] == 2
    assert rows["nut"]["kind"] == "added"
    assert rows["bracket"]["kind"] == "removed"


def test_branches_and_tags_with_release_notes(alice_api, alice):
    design = DesignFactory(owner=alice, slug="bracket")
    first = commit_files(design, {"a.txt": "1"})
    commit_files(design, {"a.txt": "2"})
    branches = url("api-design-branches", "alice", "bracket")
    assert (
        alice_api.post(branches, {"name": "feature/thicker", "start": first}, format="json").status_code
        == 201
    )
    assert {b["name"] for b in alice_api.get(branches).json()} == {"main", "feature/thicker"}
    assert alice_api.post(branches, {"name": "feature/thicker"}, format="json").status_code == 409

    tags = url("api-design-tags", "alice", "bracket")
    created = alice_api.post(
        tags, {"name": "v1.0", "target": first, "notes": "First printable release"}, format="json"
    )
    assert created.status_code == 201, created.content
    assert created.json()["target"] == first
    assert created.json()["notes"] == "First printable release"
    assert (
        alice_api.get(url("api-design-tag", "alice", "bracket", "v1.0")).json()["tagger"]["name"]
        == "Alice Maker"
    )

    assert (
        alice_api.delete(url("api-design-branch", "alice", "bracket", "feature/thicker")).status_code == 204
    )
    assert alice_api.delete(url("api-design-branch", "alice", "bracket", "main")).status_code == 400
    # Every tag is a release: deleting one takes the owner's leave first.
    refused = alice_api.delete(url("api-design-tag", "alice", "bracket", "v1.0"))
    assert refused.status_code == 403
    assert "is a release" in refused.json()["detail"]
    Design.objects.filter(owner__username="alice", slug="bracket").update(allow_tag_changes=True)
    assert alice_api.delete(url("api-design-tag", "alice", "bracket", "v1.0")).status_code == 204
    assert alice_api.get(tags).json() == []


def test_fork_keeps_history_attribution_and_licence(alice, bob, bob_api):
    design = DesignFactory(owner=alice, slug="bracket", licence="CERN-OHL-S-2.0")
    commit_files(design, {"a.txt": "1"})
    head = commit_files(design, {"a.txt": "2"})
    response = bob_api.post(url("api-design-fork", "alice", "bracket"), {}, format="json")
    assert response.status_code == 201, response.content
    fork = response.json()
    assert fork["full_name"] == "bob/bracket"
    assert fork["forked_from"] == "alice/bracket"
    assert fork["fork_point"] == head
    assert fork["licence"] == "CERN-OHL-S-2.0"
    fork_design = Design.objects.get(owner=bob, slug="bracket")
    assert fork_design.repo.count_commits("main") == 2
    assert fork_design.repo.fsck()[0]

    relicence = bob_api.patch(url("api-design-detail", "bob", "bracket"), {"licence": "MIT"}, format="json")
    assert relicence.status_code == 400
    assert "licence" in relicence.json()["detail"]

    forks = bob_api.get(url("api-design-forks", "alice", "bracket")).json()
    assert [f["full_name"] for f in forks["results"]] == ["bob/bracket"]

    # Attribution outlives the upstream.
    services.design_delete(design=design)
    fork_design.refresh_from_db()
    assert fork_design.forked_from is None and fork_design.forked_from_name == "alice/bracket"


def test_private_designs_are_404_to_strangers_everywhere(alice, bob, bob_api, api):
    design = DesignFactory(owner=alice, slug="secret", visibility="private")
    commit_files(design, {"a.txt": "1"})
    # Forking needs a signed-in user first: the anonymous client is asked to sign in.
    for client, fork_status in ((api, 401), (bob_api, 404)):
        assert client.get(url("api-design-detail", "alice", "secret")).status_code == 404
        assert client.get(url("api-design-history", "alice", "secret")).status_code == 404
        assert client.get(url("api-design-raw", "alice", "secret"), {"path": "a.txt"}).status_code == 404
        assert client.get(url("design-raw", "alice", "secret", "a.txt")).status_code == 404
        assert client.post(url("api-design-fork", "alice", "secret"), {}).status_code == fork_status
        listed = client.get(url("api-design-list")).json()["results"]
        assert "alice/secret" not in [d["full_name"] for d in listed]
    services.collaborator_set(design=design, actor=alice, user=bob, role="read")
    assert bob_api.get(url("api-design-detail", "alice", "secret")).status_code == 200
    upload = bob_api.post(
        url("api-design-upload", "alice", "secret"),
        {"files": [SimpleUploadedFile("b.txt", b"2")], "message": "try"},
        format="multipart",
    )
    assert upload.status_code == 403


def test_search_filters_by_text_tag_licence_and_owner(alice, bob, api):
    DesignFactory(
        owner=alice, slug="chassis", title="Chassis frame", licence="CERN-OHL-S-2.0", tags=["vehicle"]
    )
    DesignFactory(owner=alice, slug="bracket", title="Panel bracket", licence="MIT", tags=["body"])
    DesignFactory(owner=bob, slug="spool", title="Spool holder", licence="MIT", summary="holds a chassis? no")

    def names(**params):
        return sorted(d["full_name"] for d in api.get(url("api-design-list"), params).json()["results"])

    assert names(q="chassis") == ["alice/chassis", "bob/spool"]
    assert names(tag="vehicle") == ["alice/chassis"]
    assert names(licence="MIT") == ["alice/bracket", "bob/spool"]
    assert names(owner="bob") == ["bob/spool"]


def test_listing_designs_takes_a_fixed_number_of_queries(api, django_assert_max_num_queries):
    for _ in range(3):
        DesignFactory(owner=UserFactory(), tags=["a", "b"])
    with django_assert_max_num_queries(4) as small:
        api.get(url("api-design-list"))
    for n in range(12):
        upstream = DesignFactory(owner=UserFactory(), tags=["a", "b", f"t{n}"])
        commit_files(upstream, {"a.txt": "1"})
        services.design_fork(design=upstream, user=UserFactory())
    with django_assert_max_num_queries(len(small.captured_queries)):
        response = api.get(url("api-design-list"))
    assert response.json()["count"] == 27


def test_the_schema_lists_every_api_endpoint(api):
    import re

    from hub.urls import api_urlpatterns

    schema = api.get(url("api-schema"), {"format": "json"}).json()
    documented = set(schema["paths"])

    def routes(patterns, prefix="/api/"):
        for pattern in patterns:
            text = prefix + str(pattern.pattern)
            if hasattr(pattern, "url_patterns"):
                yield from routes(pattern.url_patterns, text)
            else:
                yield re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", text)

    served = {r for r in routes(api_urlpatterns) if not r.endswith(("schema/", "docs/", "redoc/"))}
    assert len(served) >= 25
    assert served - documented == set()
    assert api.get(url("api-docs")).status_code == 200


def test_the_owner_allows_tag_changes_through_the_api(alice, alice_api):
    DesignFactory(owner=alice, slug="tagged")
    url_ = reverse("api-design-detail", args=["alice", "tagged"])
    assert alice_api.get(url_).json()["allow_tag_changes"] is False
    response = alice_api.patch(url_, {"allow_tag_changes": True}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["allow_tag_changes"] is True


def test_release_notes_are_markdown_bounded_and_pointed_at_the_tagged_commit(alice, alice_api, client):
    design = DesignFactory(owner=alice, slug="released")
    sha = commit_files(design, {"README.md": "# R\n", "docs/fit.png": b"\x89PNG"})
    tags = url("api-design-tags", "alice", "released")
    too_long = alice_api.post(tags, {"name": "v0", "target": "main", "notes": "x" * 70_000}, format="json")
    assert too_long.status_code == 400
    created = alice_api.post(
        tags,
        {"name": "v1", "target": "main", "notes": "**First** print: ![fit](docs/fit.png)"},
        format="json",
    )
    assert created.status_code == 201, created.content
    html = created.json()["notes_html"]
    assert "<strong>First</strong>" in html and f"/alice/released/raw/docs/fit.png?ref={sha}" in html
    page = client.get(reverse("design-tags", args=["alice", "released"])).content.decode()
    assert "<strong>First</strong> print" in page


def test_a_design_says_where_it_was_imported_and_forked_from(alice_api, alice):
    hand = DesignFactory(owner=alice, slug="hand")
    Design.objects.filter(pk=hand.pk).update(
        imported_from="https://hub-a.example/alice/hand/",
        forked_from_name="bob/hand (on hub-b.example)",
        forked_from_url="https://hub-b.example/bob/hand/",
        fork_point="a" * 40,
    )
    DesignFactory(owner=alice, slug="plain")
    imported = alice_api.get(url("api-design-detail", "alice", "hand")).json()
    assert imported["imported_from"] == "https://hub-a.example/alice/hand/"
    assert imported["forked_from_url"] == "https://hub-b.example/bob/hand/"
    assert imported["forked_from"] == "bob/hand (on hub-b.example)"
    plain = alice_api.get(url("api-design-detail", "alice", "plain")).json()
    assert plain["imported_from"] is None and plain["forked_from_url"] is None
