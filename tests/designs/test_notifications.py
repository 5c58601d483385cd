"""Who is told what happens to a design (designs/services/watches.py), read back through
the inbox API: proposals opened, comments, @mentions, merges and closes, releases, forks
and module upgrades. The actor is never told of their own act, and nobody reads a
notification about a design they may no longer see."""

from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse

from designs import services
from designs.models import Watch
from designs.services import assemblies, proposals, watches
from hub import notifications
from tests.conftest import client_for
from tests.designs.test_assemblies import pin
from tests.factories import DesignFactory, UserFactory, commit_files

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(db):
    return UserFactory(username="ada", email="ada@example.org")


@pytest.fixture
def mia(db):
    return UserFactory(username="mia", email="mia@example.org")


@pytest.fixture
def rover(ada):
    design = DesignFactory(owner=ada, slug="rover")
    commit_files(design, {"README.md": "# Rover\n", "notes.txt": "wheels\n"}, "Start")
    return design


@pytest.fixture
def fork(rover, mia):
    return services.design_fork(design=rover, user=mia)


def inbox(user, **query) -> list[dict]:
    response = client_for(user).get(reverse("api-notifications"), query)
    assert response.status_code == 200, response.content
    return response.json()["results"]


def kinds(user) -> list[str]:
    return [n["kind"] for n in inbox(user)]


def unread_count(user) -> int:
    return client_for(user).get(reverse("api-notifications-unread-count")).json()["unread"]


def open_proposal(fork, rover, mia, *, description: str = ""):
    commit_files(fork, {"notes.txt": "wheels\nbigger\n"}, "Bigger wheels", author=mia)
    return proposals.proposal_create(
        target=rover,
        user=mia,
        source=fork,
        source_branch="main",
        title="Bigger wheels",
        description=description,
    )


# -- proposals ----------------------------------------------------------------------------------


def test_a_proposal_opened_tells_the_owner_and_writers_not_readers_nor_its_author(rover, fork, ada, mia):
    writer, reader = UserFactory(username="wren"), UserFactory(username="rhea")
    services.collaborator_set(design=rover, actor=ada, user=writer, role="write")
    services.collaborator_set(design=rover, actor=ada, user=reader, role="read")
    proposal = open_proposal(fork, rover, mia)
    assert kinds(ada) == ["proposal_opened", "forked"]
    note = inbox(ada)[0]
    assert note["actor"] == "mia"
    assert note["link"] == f"/ada/rover/proposals/{proposal.number}/"
    assert "Bigger wheels" in note["subject"]
    assert kinds(writer) == ["proposal_opened"]
    assert kinds(reader) == []
    assert [k for k in kinds(mia) if k == "proposal_opened"] == []


def test_opening_a_proposal_makes_its_author_watch_the_design(rover, fork, mia):
    open_proposal(fork, rover, mia)
    assert Watch.objects.get(user=mia, design=rover).level == "all"


def test_an_owner_who_ignores_the_design_hears_of_no_new_proposal(rover, fork, ada, mia):
    watches.watch_set(design=rover, user=ada, level="ignore")
    open_proposal(fork, rover, mia)
    assert kinds(ada) == ["forked"]  # addressed to her, not news of a design she watches


def test_a_comment_tells_the_author_and_earlier_commenters_never_the_commenter(rover, fork, ada, mia):
    proposal = open_proposal(fork, rover, mia)
    theo = UserFactory(username="theo")
    proposals.proposal_comment(proposal=proposal, user=theo, body="Nice")
    proposals.proposal_comment(proposal=proposal, user=ada, body="Thanks, looking")
    assert kinds(mia) == ["proposal_comment", "proposal_comment"]
    assert kinds(theo) == ["proposal_comment"]  # ada's comment, not his own
    # ada owns the design (watching it): theo's comment, not hers.
    assert kinds(ada) == ["proposal_comment", "proposal_opened", "forked"]
    assert inbox(theo)[0]["actor"] == "ada"


def test_a_mention_tells_the_person_named_once_and_only_real_people(rover, fork, ada, mia):
    bob = UserFactory(username="bob")
    proposal = open_proposal(fork, rover, mia)
    proposals.proposal_comment(
        proposal=proposal, user=ada, body="@bob have a look; @nobody-here, @ada, and mail me at x@mia"
    )
    assert kinds(bob) == ["mention"]
    # mia is the author: a comment notice, the address is no mention of her.
    assert kinds(mia) == ["proposal_comment"]
    assert "mention" not in kinds(ada)


def test_a_mention_in_a_proposal_s_description_replaces_the_opened_notice(rover, fork, ada, mia):
    open_proposal(fork, rover, mia, description="@ada the wheels you asked for")
    assert kinds(ada) == ["mention", "forked"]


def test_a_mention_never_reaches_someone_who_cannot_see_a_private_design(ada, mia):
    secret = DesignFactory(owner=ada, slug="secret", visibility="private")
    commit_files(secret, {"README.md": "# S\n"})
    services.collaborator_set(design=secret, actor=ada, user=mia, role="write")
    outsider = UserFactory(username="eve")
    services.branch_create(design=secret, user=mia, name="dev")
    commit_files(secret, {"README.md": "# S v2\n"}, "Edit", branch="dev", author=mia)
    proposal = proposals.proposal_create(target=secret, user=mia, source_branch="dev", title="Edit")
    proposals.proposal_comment(proposal=proposal, user=mia, body="@eve what do you think?")
    assert kinds(outsider) == []


def test_a_merge_tells_the_author_and_participants_not_the_merger(rover, fork, ada, mia):
    proposal = open_proposal(fork, rover, mia)
    theo = UserFactory(username="theo")
    proposals.proposal_comment(proposal=proposal, user=theo, body="+1")
    proposals.proposal_merge(proposal=proposal, user=ada)
    assert kinds(mia)[0] == "proposal_merged"
    assert kinds(theo)[0] == "proposal_merged"
    assert "proposal_merged" not in kinds(ada)


def test_closing_tells_the_author_but_not_the_one_who_closed(rover, fork, ada, mia):
    proposal = open_proposal(fork, rover, mia)
    proposals.proposal_close(proposal=proposal, user=ada)
    assert kinds(mia)[0] == "proposal_closed"
    assert "proposal_closed" not in kinds(ada)
    # The author closing their own proposal tells nobody but the participants.
    other = open_proposal_from_branch(fork, rover, mia)
    proposals.proposal_close(proposal=other, user=mia)
    assert kinds(mia).count("proposal_closed") == 1


def open_proposal_from_branch(fork, rover, mia):
    services.branch_create(design=fork, user=mia, name="tyres")
    commit_files(fork, {"notes.txt": "tyres\n"}, "Tyres", branch="tyres", author=mia)
    return proposals.proposal_create(
        target=rover, user=mia, source=fork, source_branch="tyres", title="Tyres"
    )


# -- releases, forks, module upgrades ---------------------------------------------------------------


def test_a_release_tells_watchers_of_all_and_releases_but_not_ignorers_nor_the_tagger(rover, ada):
    everything, releases, ignoring, nobody = (UserFactory(username=n) for n in ("al", "rel", "ign", "nob"))
    watches.watch_set(design=rover, user=everything, level="all")
    watches.watch_set(design=rover, user=releases, level="releases")
    watches.watch_set(design=rover, user=ignoring, level="ignore")
    writer = UserFactory(username="wren")
    services.collaborator_set(design=rover, actor=ada, user=writer, role="write")
    services.tag_create(design=rover, user=writer, name="v1.0", target=None, notes="First")
    for person in (everything, releases, ada):
        [note] = inbox(person)
        assert note["kind"] == "release" and "v1.0" in note["subject"] and note["actor"] == "wren"
    assert kinds(ignoring) == kinds(nobody) == kinds(writer) == []


def test_the_owner_tagging_a_release_is_not_told_of_it(rover, ada):
    services.tag_create(design=rover, user=ada, name="v1.0", target=None, notes="")
    assert kinds(ada) == []


def test_a_pushed_tag_is_a_release_for_the_watchers_not_for_the_pusher(rover, ada, mia):
    watches.watch_set(design=rover, user=mia, level="releases")
    before = rover.repo.refs()
    rover.repo.create_tag("v2.0", rover.repo.branch_head("main"), "Second", services.person_for(ada))
    services.design_pushed(design=rover, refs_before=before, pusher=ada)
    assert kinds(mia) == ["release"]
    assert kinds(ada) == []


def test_a_fork_tells_the_owner_of_the_design_forked(rover, fork, ada, mia):
    [note] = inbox(ada)
    assert note["kind"] == "forked" and note["actor"] == "mia" and note["link"] == "/mia/rover/"
    assert kinds(mia) == []


def test_a_module_s_new_release_tells_the_owner_of_the_assembly_that_pins_it(ada, mia):
    wheel = DesignFactory(owner=mia, slug="wheel")
    commit_files(wheel, {"wheel.txt": "round\n"})
    services.tag_create(design=wheel, user=mia, name="v0.1", target=None, notes="")
    car = DesignFactory(owner=ada, slug="car")
    commit_files(car, {"README.md": "# Car\n"})
    pin(car, {"modules/wheel": (wheel, wheel.repo.resolve("v0.1"))})
    assert assemblies.assembly_refresh(design_id=car.pk)
    services.tag_create(design=wheel, user=mia, name="v0.2", target=None, notes="")
    [note] = [n for n in inbox(ada) if n["kind"] == "module_upgrade"]
    assert "mia/wheel released v0.2" in note["subject"] and note["link"] == "/ada/car/"


def test_a_private_fork_not_shared_with_the_upstream_owner_is_not_named_to_them(ada, mia):
    secret = DesignFactory(owner=ada, slug="secret", visibility="private")
    commit_files(secret, {"README.md": "# S\n"})
    services.collaborator_set(design=secret, actor=ada, user=mia, role="read")
    services.design_fork(design=secret, user=mia, slug="my-secret")
    assert kinds(ada) == [] and unread_count(ada) == 0


def test_a_fork_made_private_leaves_the_inbox_of_the_upstream_owner(rover, fork, ada, mia):
    assert kinds(ada) == ["forked"]
    services.design_update(design=fork, visibility="private")
    assert kinds(ada) == [] and unread_count(ada) == 0
    services.collaborator_set(design=fork, actor=mia, user=ada, role="read")
    assert kinds(ada) == ["forked"]


def test_a_private_module_s_release_leaves_the_inbox_of_one_who_lost_access_to_it(
    ada, mia, settings, background_tasks_run
):
    settings.FABHUB_EMAIL_NOTIFICATIONS = True
    wheel = DesignFactory(owner=mia, slug="secret-wheel", visibility="private")
    commit_files(wheel, {"wheel.txt": "round\n"})
    services.tag_create(design=wheel, user=mia, name="v0.1", target=None, notes="")
    services.collaborator_set(design=wheel, actor=mia, user=ada, role="read")
    car = DesignFactory(owner=ada, slug="car")
    commit_files(car, {"README.md": "# Car\n"})
    pin(car, {"modules/wheel": (wheel, wheel.repo.resolve("v0.1"))})
    assert assemblies.assembly_refresh(design_id=car.pk)
    services.tag_create(design=wheel, user=mia, name="v2-codename-falcon", target=None, notes="")
    [note] = [n for n in inbox(ada) if n["kind"] == "module_upgrade"]
    services.collaborator_remove(design=wheel, actor=mia, user=ada)
    assert not any("secret-wheel" in n["subject"] for n in inbox(ada)) and unread_count(ada) == 0
    assert notifications.notification_email_send(notification_id=note["id"]) is False


# -- access lost, e-mail, marking read ------------------------------------------------------------


def test_a_notification_about_a_design_disappears_when_its_reader_loses_access(ada, mia):
    secret = DesignFactory(owner=ada, slug="secret", visibility="private")
    commit_files(secret, {"README.md": "# S\n"})
    services.collaborator_set(design=secret, actor=ada, user=mia, role="write")
    wren = UserFactory(username="wren")
    services.collaborator_set(design=secret, actor=ada, user=wren, role="write")
    services.branch_create(design=secret, user=wren, name="dev")
    commit_files(secret, {"README.md": "# S v2\n"}, "Edit", branch="dev", author=wren)
    proposals.proposal_create(target=secret, user=wren, source_branch="dev", title="Edit")
    [note] = inbox(mia)
    assert unread_count(mia) == 1
    services.collaborator_remove(design=secret, actor=ada, user=mia)
    assert inbox(mia) == [] and unread_count(mia) == 0
    marked = client_for(mia).post(reverse("api-notifications-read") + f"?id={note['id']}").json()
    assert marked == {"marked": 0}
    assert notifications.notification_email_send(notification_id=note["id"]) is False


def test_a_public_design_made_private_hides_what_its_watchers_were_told(rover, ada, mia):
    watches.watch_set(design=rover, user=mia, level="releases")
    services.tag_create(design=rover, user=ada, name="v1.0", target=None, notes="")
    assert kinds(mia) == ["release"]
    services.design_update(design=rover, visibility="private")
    assert kinds(mia) == [] and unread_count(mia) == 0
    services.design_update(design=rover, visibility="public")
    assert kinds(mia) == ["release"]


def test_e_mail_follows_each_person_s_preferences(rover, fork, ada, mia, settings, background_tasks_run):
    settings.FABHUB_EMAIL_NOTIFICATIONS = True
    mail.outbox.clear()
    open_proposal(fork, rover, mia)
    assert [m.to for m in mail.outbox] == [["ada@example.org"]]
    assert "/ada/rover/proposals/1/" in mail.outbox[0].body
    response = client_for(ada).patch(
        reverse("api-notification-preferences"), {"email": {"proposal_comment": False}}, format="json"
    )
    assert response.json()["email"]["proposal_comment"] is False
    assert response.json()["email"]["proposal_opened"] is True
    mail.outbox.clear()
    proposals.proposal_comment(proposal=rover.proposals.get(), user=mia, body="Ping")
    assert mail.outbox == []
    assert kinds(ada)[0] == "proposal_comment"  # still in the inbox


def test_release_news_is_not_e_mailed_until_asked_for(rover, ada, mia, settings, background_tasks_run):
    settings.FABHUB_EMAIL_NOTIFICATIONS = True
    watches.watch_set(design=rover, user=mia, level="releases")
    mail.outbox.clear()
    services.tag_create(design=rover, user=ada, name="v1.0", target=None, notes="")
    assert mail.outbox == []
    notifications.notification_preferences_set(user=mia, email={"release": True})
    services.tag_create(design=rover, user=ada, name="v1.1", target=None, notes="")
    assert [m.to for m in mail.outbox] == [["mia@example.org"]]


def test_an_unknown_kind_in_the_preferences_is_a_400(ada):
    response = client_for(ada).patch(
        reverse("api-notification-preferences"), {"email": {"gossip": True}}, format="json"
    )
    assert response.status_code == 400


def test_preferences_are_json_booleans_only(ada):
    """The API fuzzer sent the map as JSON text in a multipart part and it was accepted
    (and read as no change): the preferences take JSON only, each value a boolean."""
    api = client_for(ada)
    url = reverse("api-notification-preferences")
    before = api.get(url).json()
    sent_as_form = api.patch(url, {"email": '{"x-schemathesis-additional": {}}'}, format="multipart")
    assert sent_as_form.status_code == 415
    not_a_boolean = api.patch(url, {"email": {"release": {}}}, format="json")
    assert not_a_boolean.status_code == 400
    assert api.get(url).json() == before  # nothing changed


def test_marking_one_and_then_all_read(rover, fork, ada, mia):
    proposal = open_proposal(fork, rover, mia)
    proposals.proposal_comment(proposal=proposal, user=mia, body="And tyres")
    first, second, third = inbox(ada)
    client = client_for(ada)
    assert client.post(reverse("api-notifications-read") + f"?id={second['id']}").json() == {"marked": 1}
    assert [n["id"] for n in inbox(ada, unread="true")] == [first["id"], third["id"]]
    assert unread_count(ada) == 2
    assert client.post(reverse("api-notifications-read")).json() == {"marked": 2}
    assert inbox(ada, unread="true") == [] and unread_count(ada) == 0
    # Another person's notification cannot be marked by its id.
    assert client_for(mia).post(reverse("api-notifications-read") + f"?id={first['id']}").json() == {
        "marked": 0
    }


def test_the_inbox_page_lists_marks_read_and_the_navigation_counts(rover, fork, ada, mia, client):
    open_proposal(fork, rover, mia)
    client.force_login(ada)
    page = client.get(reverse("design-list")).content.decode()
    assert 'id="unread-count">2<' in page  # the fork and the proposal
    page = client.get(reverse("notifications")).content.decode()
    assert "mia opened #1 Bigger wheels on ada/rover" in page
    response = client.post(reverse("notifications-read"))
    assert response.status_code == 302
    assert 'id="unread-count"' not in client.get(reverse("design-list")).content.decode()


def test_the_account_page_saves_the_e_mail_preferences(ada, client):
    client.force_login(ada)
    page = client.get(reverse("account-settings")).content.decode()
    assert 'name="email_proposal_opened" checked' in page
    assert 'name="email_release">' in page
    client.post(reverse("notification-preferences"), {"email_release": "on"})
    chosen = notifications.notification_preferences(ada)
    assert chosen["release"] is True and chosen["proposal_opened"] is False


def test_the_old_lab_inbox_address_leads_to_the_inbox(ada, client):
    client.force_login(ada)
    response = client.get("/labs/notifications/")
    assert response.status_code == 301 and response["Location"] == reverse("notifications")


def test_a_proposal_whose_commits_arrive_by_a_push_tells_its_people_once(rover, fork, ada, mia):
    proposal = open_proposal(fork, rover, mia)
    theo = UserFactory(username="theo")
    proposals.proposal_comment(proposal=proposal, user=theo, body="+1")
    # ada fetches mia's branch and pushes it to main herself, outside the merge button.
    rover.repo.update_ref("refs/heads/main", proposal.head_sha, rover.repo.branch_head("main"))
    proposals.proposal_refresh(proposal=proposal)
    proposals.proposal_refresh(proposal=rover.proposals.get())
    merged = [n for n in inbox(mia) if n["kind"] == "proposal_merged"]
    assert len(merged) == 1 and merged[0]["actor"] is None
    assert merged[0]["subject"] == "ada/rover #1 Bigger wheels was merged"
    assert [n["kind"] for n in inbox(theo)].count("proposal_merged") == 1
