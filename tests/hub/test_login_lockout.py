"""Sign-in by password is throttled by django-axes: per username and client address, with a
cool-off, behind the documented proxy setting too; tokens are never locked out by it."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from designs.models import Design
from tests.factories import DesignFactory, commit_files

pytestmark = pytest.mark.django_db

RIGHT = "correct horse battery"


def sign_in(client: Client, username: str, password: str, **headers):
    return client.post(reverse("login"), {"username": username, "password": password}, **headers)


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_forty_wrong_passwords_then_the_right_one_does_not_sign_in(alice, settings):
    client = Client()
    answers = [sign_in(client, "alice", f"wrong-{n}").status_code for n in range(40)]
    limit = settings.AXES_FAILURE_LIMIT
    # The form is shown again until the limit, then every attempt is refused outright.
    assert answers[: limit - 1] == [200] * (limit - 1)
    assert set(answers[limit:]) == {429}

    response = sign_in(client, "alice", RIGHT)
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.content.decode()
    assert not signed_in(client)


def test_the_lockout_ends_after_the_cool_off(alice, settings):
    client = Client()
    for n in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "alice", f"wrong-{n}")
    assert sign_in(client, "alice", RIGHT).status_code == 429
    with time_machine.travel(timezone.now() + settings.AXES_COOLOFF_TIME + timedelta(minutes=1)):
        response = sign_in(client, "alice", RIGHT)
        assert response.status_code == 302
        assert signed_in(client)


def test_the_lockout_is_for_that_username_from_that_address(alice, bob, settings):
    for n in range(settings.AXES_FAILURE_LIMIT):
        sign_in(Client(), "alice", f"wrong-{n}", REMOTE_ADDR="198.51.100.9")
    # Alice from her own address, and Bob from the attacker's, still sign in.
    alice_home = Client()
    assert sign_in(alice_home, "alice", RIGHT, REMOTE_ADDR="203.0.113.5").status_code == 302
    bob_there = Client()
    assert sign_in(bob_there, "bob", RIGHT, REMOTE_ADDR="198.51.100.9").status_code == 302


def test_without_the_proxy_setting_x_forwarded_for_is_not_believed(alice, settings):
    settings.BEHIND_HTTPS_PROXY = False
    for n in range(settings.AXES_FAILURE_LIMIT):
        sign_in(Client(), "alice", f"wrong-{n}", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}")
    response = sign_in(Client(), "alice", RIGHT, HTTP_X_FORWARDED_FOR="10.9.9.9")
    assert response.status_code == 429


def test_behind_the_proxy_the_address_it_appended_counts_and_a_spoofed_one_does_not(alice, settings):
    settings.BEHIND_HTTPS_PROXY = True
    settings.SECURE_SSL_REDIRECT = False  # the test client speaks plain http to Django
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    for n in range(settings.AXES_FAILURE_LIMIT):
        # The attacker writes a new address of their own each time; the proxy appends theirs.
        sign_in(Client(), "alice", f"wrong-{n}", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, 198.51.100.9", **proxy)
    attacker = sign_in(Client(), "alice", RIGHT, HTTP_X_FORWARDED_FOR="192.0.2.77, 198.51.100.9", **proxy)
    assert attacker.status_code == 429
    # Everyone else behind the same proxy is a different address, so not locked out.
    alice_home = Client()
    response = sign_in(alice_home, "alice", RIGHT, HTTP_X_FORWARDED_FOR="203.0.113.5", **proxy)
    assert response.status_code == 302
    assert signed_in(alice_home)


def test_a_locked_out_user_still_reads_with_a_token(alice, settings):
    from hub import services as hub_services

    for n in range(settings.AXES_FAILURE_LIMIT + 3):
        sign_in(Client(), "alice", f"wrong-{n}")
    design = DesignFactory(owner=alice, slug="bracket", visibility=Design.Visibility.PRIVATE)
    commit_files(design, {"README.md": "# Bracket\n"})
    _, raw = hub_services.token_create(user=alice, name="laptop")
    basic = base64.b64encode(f"alice:{raw}".encode()).decode()
    response = Client().get(reverse("api-me"), HTTP_AUTHORIZATION=f"Basic {basic}")
    assert response.status_code == 200, response.content
    assert response.json()["username"] == "alice"
    # A wrong token by Basic is refused as a bad credential (401), not counted as a sign-in.
    wrong = base64.b64encode(b"alice:fh_not-a-token").decode()
    assert Client().get(reverse("api-me"), HTTP_AUTHORIZATION=f"Basic {wrong}").status_code == 401


# -- the current-password checks are sign-in attempts too ---------------------------------
# A stolen session or token must not be a way to guess the password: every form and API
# call that asks for the current password counts its failures with the sign-in form's.


def _account_calls(alice):
    """Each surface that checks the current password, as (name, call with a password)."""
    from tests.conftest import client_for

    page = Client()
    page.force_login(alice)
    api = client_for(alice)
    new = "a longer passphrase for fabhub"
    return [
        (
            "password page",
            lambda pw: page.post(
                reverse("account-settings"),
                {"action": "password", "current_password": pw, "new_password": new},
            ),
        ),
        (
            "e-mail page",
            lambda pw: page.post(
                reverse("account-settings"),
                {"action": "email", "current_password": pw, "new_email": "new@example.org"},
            ),
        ),
        (
            "delete page",
            lambda pw: page.post(
                reverse("account-delete"), {"current_password": pw, "confirm_username": "nobody"}
            ),
        ),
        (
            "password API",
            lambda pw: api.post(
                reverse("api-password-change"), {"current_password": pw, "new_password": new}, format="json"
            ),
        ),
        (
            "e-mail API",
            lambda pw: api.post(
                reverse("api-email-change"),
                {"current_password": pw, "new_email": "new@example.org"},
                format="json",
            ),
        ),
        (
            "delete API",
            lambda pw: api.post(
                reverse("api-account-delete"),
                {"current_password": pw, "confirm_username": "nobody"},
                format="json",
            ),
        ),
    ]


@pytest.mark.parametrize("surface", range(6))
def test_guessing_the_current_password_locks_out_like_sign_in(alice, settings, surface):
    name, call = _account_calls(alice)[surface]
    for n in range(settings.AXES_FAILURE_LIMIT - 1):
        answer = call(f"wrong-{n}")
        assert answer.status_code in (200, 400), name
        assert "not your current password" in answer.content.decode(), name
    # The attempt that reaches the limit is answered as a locked-out sign-in is.
    reaching = call("wrong-last")
    assert reaching.status_code == 429, name
    if name.endswith("API"):
        assert reaching.json()["code"] == "too_many_attempts"

    # Now even the right password is refused, with the reason, and nothing changed.
    answer = call(RIGHT)
    assert "Too many wrong passwords" in answer.content.decode(), name
    if name.endswith("API"):
        assert answer.status_code == 429
    alice.refresh_from_db()
    assert alice.check_password(RIGHT) and alice.email != "new@example.org"
    # The same count as the sign-in form's: signing in from here is locked out too.
    assert sign_in(Client(), "alice", RIGHT).status_code == 429


def test_the_right_current_password_is_still_accepted_below_the_limit(alice, settings):
    _, change_password = _account_calls(alice)[3]
    for n in range(settings.AXES_FAILURE_LIMIT - 1):
        change_password(f"wrong-{n}")
    assert change_password(RIGHT).status_code == 204
    alice.refresh_from_db()
    assert alice.check_password("a longer passphrase for fabhub")
