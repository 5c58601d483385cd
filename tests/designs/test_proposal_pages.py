"""The proposal pages: the design page's "compare & propose" prompt, the new-proposal
page's branch pickers (a fork proposes to its upstream by default) and its preview of
the commits and the diff, and resolving conflicts in the browser's forms (no scripts)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from designs import services
from designs.services import proposals
from tests.factories import DesignFactory, UserFactory, commit_files

pytestmark = pytest.mark.django_db

TEXT = "line 1\nline 2\nline 3\nline 4\nline 5\n"


@pytest.fixture
def upstream(alice):
    design = DesignFactory(owner=alice, slug="bracket")
    commit_files(design, {"notes.txt": TEXT, "README.md": "# Bracket\n"}, "Start")
    return design


@pytest.fixture
def fork(upstream, bob):
    return services.design_fork(design=upstream, user=bob)


def page(design, name, *args):
    return reverse(name, args=[design.owner.username, design.slug, *args])


def options(html, name):
    select = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>', html, re.S)
    assert select, f"no select {name}"
    return re.findall(r'<option value="([^"]*)"( selected)?', select.group(1))


def selected(html, name):
    return [value for value, chosen in options(html, name) if chosen]


def test_a_commit_to_another_branch_offers_compare_and_propose(client, upstream, alice):
    services.branch_create(design=upstream, user=alice, name="ribs")
    commit_files(upstream, {"notes.txt": TEXT + "ribs\n"}, "Ribs", branch="ribs")
    client.force_login(alice)

    html = client.get(page(upstream, "design-detail") + "?ref=ribs").content.decode()

    assert "data-propose-prompt" in html and "Compare &amp; propose" in html
    assert page(upstream, "design-proposal-new") + "?source=alice%2Fbracket&amp;source_branch=ribs" in html
    # The default branch itself has nothing to propose to itself.
    assert "data-propose-prompt" not in client.get(page(upstream, "design-detail")).content.decode()


def test_a_fork_s_pushed_default_branch_offers_to_propose_upstream(client, fork, bob):
    commit_files(fork, {"notes.txt": TEXT + "fork\n"}, "Fork", author=bob)
    client.force_login(bob)
    html = client.get(page(fork, "design-detail")).content.decode()
    assert "data-propose-prompt" in html and "alice/bracket:main" in html


def test_no_prompt_for_readers_or_when_a_proposal_is_open(client, upstream, fork, bob, alice):
    commit_files(fork, {"notes.txt": TEXT + "fork\n"}, "Fork", author=bob)
    assert "data-propose-prompt" not in client.get(page(fork, "design-detail")).content.decode()
    proposals.proposal_create(target=upstream, user=bob, source=fork, source_branch="main", title="T")
    client.force_login(bob)
    html = client.get(page(fork, "design-detail")).content.decode()
    assert "Compare &amp; propose" not in html and "alice/bracket #1" in html


def test_a_new_proposal_from_a_fork_targets_the_upstream_with_branch_pickers(
    client, upstream, fork, bob, alice
):
    services.branch_create(design=fork, user=bob, name="ribs")
    commit_files(fork, {"notes.txt": TEXT + "ribs\n"}, "Longer ribs", branch="ribs", author=bob)
    services.branch_create(design=upstream, user=alice, name="next")
    client.force_login(bob)

    html = client.get(page(fork, "design-proposal-new") + "?source_branch=ribs").content.decode()

    assert [v for v, _ in options(html, "target")] == ["alice/bracket", "bob/bracket"]
    assert selected(html, "target") == ["alice/bracket"]
    assert [v for v, _ in options(html, "target_branch")] == ["main", "next"]
    assert selected(html, "target_branch") == ["main"]
    assert {v for v, _ in options(html, "source_branch")} == {"main", "ribs"}
    assert selected(html, "source") == ["bob/bracket"] and selected(html, "source_branch") == ["ribs"]
    # The preview: the commit and the diff, before anything is opened.
    assert "Longer ribs" in html and "data-preview-diff" in html and "notes.txt" in html


def test_the_preview_follows_the_pickers(client, upstream, fork, bob):
    services.branch_create(design=fork, user=bob, name="ribs")
    commit_files(fork, {"ribs.txt": "ribs"}, "Ribs only", branch="ribs", author=bob)
    commit_files(fork, {"main.txt": "main"}, "Main only", author=bob)
    client.force_login(bob)

    on_main = client.get(page(fork, "design-proposal-new") + "?source_branch=main").content.decode()
    on_ribs = client.get(page(fork, "design-proposal-new") + "?source_branch=ribs").content.decode()

    assert "Main only" in on_main and "Ribs only" not in on_main
    assert "Ribs only" in on_ribs and "Main only" not in on_ribs


def test_the_fork_itself_may_be_the_target(client, upstream, fork, bob):
    services.branch_create(design=fork, user=bob, name="ribs")
    commit_files(fork, {"ribs.txt": "ribs"}, "Ribs", branch="ribs", author=bob)
    client.force_login(bob)
    query = "?target=bob/bracket&target_branch=main&source=bob/bracket&source_branch=ribs"
    html = client.get(page(fork, "design-proposal-new") + query).content.decode()
    assert selected(html, "target") == ["bob/bracket"] and "Ribs" in html

    opened = client.post(
        page(fork, "design-proposal-new"),
        {
            "target": "bob/bracket",
            "target_branch": "main",
            "source": "bob/bracket",
            "source_branch": "ribs",
            "title": "Ribs into my main",
        },
    )
    assert opened.status_code == 302 and opened.url == page(fork, "design-proposal", 1)


def test_opening_from_the_fork_s_page_opens_it_on_the_upstream(client, upstream, fork, bob):
    commit_files(fork, {"notes.txt": TEXT + "fork\n"}, "Fork", author=bob)
    client.force_login(bob)
    opened = client.post(
        page(fork, "design-proposal-new"),
        {
            "target": "alice/bracket",
            "target_branch": "main",
            "source": "bob/bracket",
            "source_branch": "main",
            "title": "More lines",
        },
    )
    assert opened.status_code == 302 and opened.url == page(upstream, "design-proposal", 1)
    assert upstream.proposals.get(number=1).source == fork


def test_a_branch_that_is_not_offered_is_refused_not_swapped(client, upstream, fork, bob):
    commit_files(fork, {"notes.txt": TEXT + "fork\n"}, "Fork", author=bob)
    client.force_login(bob)
    answer = client.post(
        page(fork, "design-proposal-new"),
        {
            "target": "alice/bracket",
            "target_branch": "main",
            "source": "bob/bracket",
            "source_branch": "nope",
            "title": "T",
        },
    )
    assert answer.status_code == 200 and not upstream.proposals.exists()


def test_the_preview_says_when_there_is_nothing_to_propose(client, upstream, fork, bob):
    client.force_login(bob)
    html = client.get(page(fork, "design-proposal-new")).content.decode()
    assert "Nothing to propose" in html and "Open proposal" not in html


@pytest.fixture
def conflicted(upstream, fork, bob):
    commit_files(fork, {"notes.txt": TEXT.replace("line 3", "fork's 3")}, "Fork", author=bob)
    commit_files(upstream, {"notes.txt": TEXT.replace("line 3", "upstream's 3")}, "Up")
    return proposals.proposal_create(target=upstream, user=bob, source=fork, source_branch="main", title="T")


def resolve_post(proposal, **fields):
    return {
        "action": "resolve",
        "expected_head": proposal.head_sha,
        "expected_target": proposal.target_sha,
        "path-0": "notes.txt",
        "hunks-0": "1",
        **fields,
    }


def test_a_maintainer_resolves_hunk_by_hunk_and_the_proposal_is_merged(client, upstream, conflicted, alice):
    client.force_login(alice)
    html = client.get(page(upstream, "design-proposal", 1)).content.decode()
    assert "data-resolve-form" in html and "Resolve and merge into main" in html
    assert "upstream&#x27;s 3" in html and "fork&#x27;s 3" in html
    assert "git fetch origin refs/proposals/1/head" in html  # the command-line recipe

    done = client.post(
        page(upstream, "design-proposal", 1),
        resolve_post(conflicted, **{"keep-0": "hunks", "hunk-0-0": "source"}),
    )

    assert done.status_code == 302
    sha = upstream.repo.branch_head("main")
    assert upstream.repo.read_blob(upstream.repo.entry(sha, "notes.txt").sha).decode() == TEXT.replace(
        "line 3", "fork's 3"
    )
    conflicted.refresh_from_db()
    assert conflicted.status == "merged" and conflicted.merged_by == alice


def test_a_text_with_markers_left_is_refused_and_comes_back_as_typed(client, upstream, conflicted, alice):
    client.force_login(alice)
    before = upstream.repo.branch_head("main")
    typed = "line 1\n<<<<<<< main\nmine\n=======\ntheirs\n>>>>>>> x\n"
    answer = client.post(
        page(upstream, "design-proposal", 1), resolve_post(conflicted, **{"keep-0": "text", "text-0": typed})
    )
    html = answer.content.decode()
    assert answer.status_code == 200 and "still has conflict markers" in html
    assert "mine\n=======\ntheirs" in html
    assert upstream.repo.branch_head("main") == before


def test_the_author_commits_the_resolution_to_their_branch(client, upstream, fork, conflicted, bob):
    client.force_login(bob)
    html = client.get(page(upstream, "design-proposal", 1)).content.decode()
    assert "Commit the resolution to main" in html
    client.post(page(upstream, "design-proposal", 1), resolve_post(conflicted, **{"keep-0": "target"}))
    proposal = proposals.proposal_fresh(upstream.proposals.get(number=1))
    assert proposal.status == "open" and proposal.merge_state == "fast-forward"
    assert fork.repo.branch_head("main") == proposal.head_sha


def test_others_see_the_conflicts_and_the_recipe_but_no_form(client, upstream, conflicted):
    client.force_login(UserFactory(username="carol"))
    html = client.get(page(upstream, "design-proposal", 1)).content.decode()
    assert "notes.txt" in html and "data-resolve-form" not in html and "data-conflict-recipe" in html
    refused = client.post(
        page(upstream, "design-proposal", 1), resolve_post(conflicted, **{"keep-0": "source"})
    )
    assert refused.status_code == 403
