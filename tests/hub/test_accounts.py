"""Account flows through the API and the pages: password validators, change and reset,
e-mail change with a signed confirmation link, and what deleting an account does."""

from __future__ import annotations

import logging
import re
import socket
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from designs import services as design_services
from designs.models import ChangeProposal, Design, ProposalComment
from designs.services import proposals
from hub.models import AccessToken, User
from tests.conftest import client_for
from tests.factories import DesignFactory, UserFactory, commit_files

pytestmark = pytest.mark.django_db

OLD = "correct horse battery"
NEW = "a longer passphrase for fabhub"


@pytest.fixture(autouse=True)
def _fresh_throttles():
    from django.core.cache import cache

    cache.clear()  # the reset endpoints' throttle counts live in the cache
    yield
    cache.clear()


def signed_in_client(username: str, password: str = OLD) -> Client:
    """Signed in through the login form, as a person is (and as django-axes counts)."""
    client = Client()
    assert can_sign_in(username, password, client)
    return client


def can_sign_in(username: str, password: str, client: Client | None = None) -> bool:
    client = client or Client()
    client.post(reverse("login"), {"username": username, "password": password})
    return "_auth_user_id" in client.session


def links_in(message) -> list[str]:
    return re.findall(r"https?://\S+", message.body)


def path_of(link: str) -> str:
    return "/" + link.split("/", 3)[3]


# -- password validators ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short1!", "too short"),
        ("password123", "too common"),
        ("84736291047", "entirely numeric"),
        ("newmaker.example", "too similar"),
    ],
)
def test_sign_up_refuses_weak_passwords(db, password, why):
    response = Client().post(
        reverse("signup"),
        {
            "username": "newmaker",
            "email": "newmaker@example.org",
            "password1": password,
            "password2": password,
        },
    )
    assert response.status_code == 200
    assert why in response.content.decode()
    assert not User.objects.filter(username="newmaker").exists()


# -- password change ----------------------------------------------------------------------


def test_password_change_by_api_needs_the_current_password_and_a_strong_new_one(alice):
    api = client_for(alice)
    url = reverse("api-password-change")
    wrong = api.post(url, {"current_password": "nope", "new_password": NEW}, format="json")
    assert wrong.status_code == 400
    assert "not your current password" in wrong.json()["detail"]
    weak = api.post(url, {"current_password": OLD, "new_password": "password123"}, format="json")
    assert weak.status_code == 400
    assert "too common" in weak.json()["detail"]
    alice.refresh_from_db()
    assert alice.check_password(OLD)

    done = api.post(url, {"current_password": OLD, "new_password": NEW}, format="json")
    assert done.status_code == 204
    alice.refresh_from_db()
    assert alice.check_password(NEW) and not alice.check_password(OLD)


def test_a_read_token_cannot_change_the_password(alice):
    response = client_for(alice, scope="read").post(
        reverse("api-password-change"), {"current_password": OLD, "new_password": NEW}, format="json"
    )
    assert response.status_code == 403
    alice.refresh_from_db()
    assert alice.check_password(OLD)


def test_password_change_page_keeps_this_session_and_ends_the_others(alice):
    here, elsewhere = signed_in_client("alice"), signed_in_client("alice")
    response = here.post(
        reverse("account-settings"),
        {"action": "password", "current_password": OLD, "new_password": NEW},
        follow=True,
    )
    assert "Password changed" in response.content.decode()
    assert here.get(reverse("account-settings")).status_code == 200
    assert elsewhere.get(reverse("account-settings")).status_code == 302  # back to login
    assert can_sign_in("alice", NEW)


def test_password_change_page_shows_a_wrong_current_password_on_the_form(alice):
    response = signed_in_client("alice").post(
        reverse("account-settings"), {"action": "password", "current_password": "nope", "new_password": NEW}
    )
    assert response.status_code == 200
    assert "not your current password" in response.content.decode()


# -- password reset -----------------------------------------------------------------------


def test_password_reset_by_api_sends_a_one_time_link(alice):
    answer = Client().post(reverse("api-password-reset"), {"email": "ALICE@example.org"})
    assert answer.status_code == 202
    [message] = mail.outbox
    assert message.to == ["alice@example.org"]
    [link] = links_in(message)
    _, _, uid, token, _ = path_of(link).split("/", 4)

    confirm = reverse("api-password-reset-confirm")
    weak = Client().post(confirm, {"uid": uid, "token": token, "new_password": "password123"})
    assert weak.status_code == 400
    assert Client().post(confirm, {"uid": uid, "token": token, "new_password": NEW}).status_code == 204
    alice.refresh_from_db()
    assert alice.check_password(NEW)
    again = Client().post(confirm, {"uid": uid, "token": token, "new_password": NEW + "!"})
    assert again.status_code == 400
    assert "used already" in again.json()["detail"]


def test_password_reset_says_the_same_for_an_unknown_address(alice):
    known = Client().post(reverse("api-password-reset"), {"email": "alice@example.org"})
    unknown = Client().post(reverse("api-password-reset"), {"email": "nobody@example.org"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert len(mail.outbox) == 1


def test_password_reset_requests_are_throttled_per_address(alice, settings):
    url = reverse("api-password-reset")
    answers = [Client().post(url, {"email": "alice@example.org"}).status_code for _ in range(12)]
    assert answers[:10] == [202] * 10
    assert answers[10:] == [429, 429]
    assert len(mail.outbox) == 10


def test_password_reset_by_pages(alice):
    browser = Client()
    response = browser.post(reverse("password-reset"), {"email": "alice@example.org"}, follow=True)
    assert "Check your e-mail" in response.content.decode()
    [link] = links_in(mail.outbox[0])
    form = browser.get(path_of(link), follow=True)
    assert "Choose a new password" in form.content.decode()
    done = browser.post(form.redirect_chain[-1][0], {"new_password1": NEW, "new_password2": NEW}, follow=True)
    assert "Password set" in done.content.decode()
    assert can_sign_in("alice", NEW)
    reused = Client().get(path_of(link), follow=True)
    assert "This link does not work" in reused.content.decode()


def test_a_mail_server_that_is_down_is_one_logged_line_not_an_error(alice, settings, caplog):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", closed_port, 2
    with caplog.at_level(logging.WARNING, logger="hub.mail"):
        response = Client().post(reverse("api-password-reset"), {"email": "alice@example.org"})
    assert response.status_code == 202
    [record] = [r for r in caplog.records if r.name == "hub.mail"]
    assert "not sent" in record.getMessage() and record.exc_info is None


# -- e-mail change ------------------------------------------------------------------------


def request_email_change(user, new_email: str = "alice@new.example"):
    return client_for(user).post(
        reverse("api-email-change"), {"current_password": OLD, "new_email": new_email}, format="json"
    )


def confirmation_token() -> str:
    [to_new] = [m for m in mail.outbox if m.subject.startswith("Confirm")]
    [link] = links_in(to_new)
    return path_of(link).rstrip("/").rsplit("/", 1)[1]


def test_email_change_sends_a_link_to_the_new_address_and_warns_the_old_one(alice):
    assert request_email_change(alice).status_code == 202
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@example.org", "alice@new.example"]
    alice.refresh_from_db()
    assert alice.email == "alice@example.org"  # nothing changes until the link is used

    api = client_for(alice)
    answer = api.post(reverse("api-email-confirm"), {"token": confirmation_token()}, format="json")
    assert answer.status_code == 200
    assert answer.json()["email"] == "alice@new.example"
    again = api.post(reverse("api-email-confirm"), {"token": confirmation_token()}, format="json")
    assert again.status_code == 400
    assert "already used" in again.json()["detail"]


def test_email_change_page_confirms_on_post_only(alice):
    browser = signed_in_client("alice")
    browser.post(
        reverse("account-settings"),
        {"action": "email", "new_email": "alice@new.example", "current_password": OLD},
    )
    url = reverse("email-change-confirm", args=[confirmation_token()])
    page = browser.get(url)
    assert "Use alice@new.example" in page.content.decode()
    alice.refresh_from_db()
    assert alice.email == "alice@example.org"  # a link checker following the GET changes nothing
    browser.post(url)
    alice.refresh_from_db()
    assert alice.email == "alice@new.example"


def test_email_change_links_are_for_one_account_and_expire(alice, bob, settings):
    request_email_change(alice)
    token = confirmation_token()
    by_bob = client_for(bob).post(reverse("api-email-confirm"), {"token": token}, format="json")
    assert by_bob.status_code == 403
    later = timezone.now() + timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT + 60)
    with time_machine.travel(later):
        expired = client_for(alice).post(reverse("api-email-confirm"), {"token": token}, format="json")
    assert expired.status_code == 400
    assert "expired" in expired.json()["detail"]
    tampered = client_for(alice).post(reverse("api-email-confirm"), {"token": token + "x"}, format="json")
    assert tampered.status_code == 400


def test_email_change_to_an_address_in_use_is_a_conflict(alice, bob):
    response = request_email_change(alice, "BOB@example.org")
    assert response.status_code == 409
    assert mail.outbox == []


# -- deleting an account ------------------------------------------------------------------


def delete_account(user, password: str = OLD, confirm: str | None = None):
    return client_for(user).post(
        reverse("api-account-delete"),
        {"current_password": password, "confirm_username": confirm or user.username},
        format="json",
    )


def test_deleting_an_account_removes_its_designs_and_keeps_what_others_rely_on(
    alice, bob, settings, django_capture_on_commit_callbacks
):
    upstream = DesignFactory(owner=alice, slug="bracket")
    commit_files(upstream, {"README.md": "# Bracket\n"})
    private = DesignFactory(owner=alice, slug="secret", visibility=Design.Visibility.PRIVATE)
    commit_files(private, {"notes.txt": "private\n"})
    fork = design_services.design_fork(design=upstream, user=bob)
    # Alice proposes a change to Bob's fork and comments on it.
    alice_fork = design_services.design_fork(design=fork, user=alice, slug="bracket-alice")
    commit_files(alice_fork, {"README.md": "# Bracket, better\n"}, branch="main")
    proposal = proposals.proposal_create(
        target=fork, user=alice, source=alice_fork, source_branch="main", title="Better"
    )
    proposals.proposal_comment(proposal=proposal, user=alice, body="Please merge.")
    AccessToken.objects.filter(user=alice).delete()
    alice_repos = settings.REPOS_DIR / "alice"
    assert alice_repos.exists()

    with django_capture_on_commit_callbacks(execute=True):  # the repositories go on commit
        response = delete_account(alice)
    assert response.status_code == 204, response.content

    assert not User.objects.filter(username="alice").exists()
    assert not Design.objects.filter(owner__username="alice").exists()
    assert not alice_repos.exists()
    assert not AccessToken.objects.filter(user__username="alice").exists()
    fork.refresh_from_db()
    assert fork.forked_from is None and fork.forked_from_name == "alice/bracket"
    assert fork.repo.resolve("main")  # Bob's fork keeps its whole history
    proposal = ChangeProposal.objects.get(pk=proposal.pk)
    assert proposal.author is None and proposal.source is None
    assert proposal.source_name == "alice/bracket-alice"
    assert fork.repo.resolve(proposal.head_ref)  # the proposed commits stay reviewable
    assert ProposalComment.objects.get(proposal=proposal).author is None


def test_deleting_an_account_needs_the_password_and_the_username(alice):
    DesignFactory(owner=alice, slug="bracket")
    assert delete_account(alice, password="nope").status_code == 400
    assert delete_account(alice, confirm="alicia").status_code == 400
    assert (
        client_for(alice, scope="read")
        .post(
            reverse("api-account-delete"),
            {"current_password": OLD, "confirm_username": "alice"},
            format="json",
        )
        .status_code
        == 403
    )
    assert Design.objects.filter(owner=alice).exists()


def test_the_only_manager_of_a_lab_cannot_delete_their_account_and_nothing_is_deleted(alice, bob, settings):
    from tests.machines.factories import add_member, make_lab

    lab = make_lab(alice)
    add_member(lab, bob)
    DesignFactory(owner=alice, slug="bracket")
    response = delete_account(alice)
    assert response.status_code == 409
    assert "only manager of" in response.json()["detail"]
    assert User.objects.filter(username="alice").exists()
    assert Design.objects.filter(owner=alice, slug="bracket").exists()
    assert (settings.REPOS_DIR / "alice" / "bracket.git").exists()


def test_the_labs_print_records_outlive_the_account_without_its_name(alice, bob, tmp_path):
    from machines.models import PrintJob, PrintRecord
    from tests.api.test_lab_list_query_counts import record_print
    from tests.machines.factories import add_member, make_lab
    from tests.printing.factories import make_printer, queued_job

    lab = make_lab(alice)
    add_member(lab, bob)
    printer = make_printer(lab)
    design = DesignFactory(owner=alice, slug="bracket")
    sha = commit_files(design, {"part.stl": "solid part\nendsolid part\n"})
    job = queued_job(lab, bob, tmp_path)
    record = record_print(job, design=design, commit_sha=sha, machine=printer.machine)
    job.status, job.machine = PrintJob.Status.PRINTING, printer.machine
    job.save(update_fields=["status", "machine"])

    on_printer = delete_account(bob)
    assert on_printer.status_code == 409
    assert "on a printer" in on_printer.json()["detail"]

    job.status, job.machine = PrintJob.Status.DONE, None
    job.save(update_fields=["status", "machine"])
    assert delete_account(bob).status_code == 204
    record = PrintRecord.objects.get(pk=record.pk)
    assert record.job is None and record.owner is None
    assert record.owner_name == "(deleted account)"
    assert record.machine_name == printer.machine.name and record.design_name == "alice/bracket"


def test_account_delete_page(alice):
    UserFactory(username="carol")
    browser = signed_in_client("alice")
    page = browser.get(reverse("account-delete"))
    assert "This cannot be undone" in page.content.decode()
    wrong = browser.post(reverse("account-delete"), {"confirm_username": "alice", "current_password": "x"})
    assert "not your current password" in wrong.content.decode()
    done = browser.post(
        reverse("account-delete"), {"confirm_username": "alice", "current_password": OLD}, follow=True
    )
    assert "Your account is deleted" in done.content.decode()
    assert not User.objects.filter(username="alice").exists()
    assert User.objects.filter(username="carol").exists()
