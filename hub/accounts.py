"""Writes of a person's account: password, e-mail address, and deleting the account.

Sign-in itself, its throttling (django-axes) and Django's password-reset tokens are
Django's; what is the hub's own lives here, for the pages and the API alike. Every change
asks for the current password, whatever credential the request carries: a stolen
session or token must not be enough to take the account over or delete it. Those checks
count as sign-in attempts for django-axes (same username and address, same limit and
cool-off), so a stolen session cannot guess the password through them either: that is
why these services take the request.

Deleting an account touches every app, but `hub` imports none of them (the import
contracts in pyproject.toml). Each app registers what it does when an account goes, with
`register_account_deletion_step` from its `AppConfig.ready()`; docs/accounts.md says what
each step keeps and removes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.signals import user_login_failed
from django.contrib.auth.tokens import default_token_generator
from django.core import signing
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode

from hub import mail
from hub.exceptions import Conflict, PermissionDenied, TooManyAttempts, ValidationError
from hub.models import User

EMAIL_CHANGE_SALT = "fabhub.accounts.email-change"


def _check_password(user: User, password: str, request: HttpRequest) -> None:
    credentials = {"username": user.username}
    if not AxesProxyHandler.is_allowed(request, credentials):
        raise TooManyAttempts(lockout_message())
    if not password or not user.check_password(password):
        # Counted as a failed sign-in: the same lockout as the sign-in form's.
        user_login_failed.send(sender=__name__, credentials=credentials, request=request)
        # A 400, not a 403: the person typed something wrong and can fix it on the form.
        raise ValidationError("That is not your current password.", field="current_password")


def lockout_message() -> str:
    minutes = max(1, int(settings.AXES_COOLOFF_TIME.total_seconds() // 60))
    return f"Too many wrong passwords for this account from your address: try again in {minutes} minutes."


def _validate_new_password(user: User, password: str) -> None:
    try:
        password_validation.validate_password(password, user)
    except DjangoValidationError as exc:
        raise ValidationError(" ".join(exc.messages), field="new_password") from None


def public_url(path: str, *, request_root: str = "") -> str:
    """An absolute address for a link sent outside the hub (FABHUB_PUBLIC_URL first)."""
    root = settings.FABHUB_PUBLIC_URL or request_root or "http://127.0.0.1:8000"
    return urljoin(root.rstrip("/") + "/", path.lstrip("/"))


# -- password -----------------------------------------------------------------------------


def password_change(*, user: User, current_password: str, new_password: str, request: HttpRequest) -> User:
    """Set a new password. Other sessions end (Django's session hash); tokens stay."""
    _check_password(user, current_password, request)
    return _set_password(user, new_password)


def _set_password(user: User, new_password: str) -> User:
    _validate_new_password(user, new_password)
    user.set_password(new_password)
    user.save(update_fields=["password"])
    password_validation.password_changed(new_password, user)
    return user


def _users_by_email(email: str) -> list[User]:
    # As Django's PasswordResetForm: active accounts with a usable password, exact match
    # once case is folded (the address as stored, not as typed, is written to).
    return [
        user
        for user in User.objects.filter(email__iexact=email.strip(), is_active=True)
        if user.has_usable_password() and user.email.strip().lower() == email.strip().lower()
    ]


def password_reset_send(*, email: str, request_root: str = "") -> int:
    """E-mail a one-time link to choose a new password to each account using `email`.

    Says nothing about whether such an account exists (the caller always answers the
    same): returns how many messages were sent, for tests. The link is Django's
    password-reset token, which stops working once the password changes or signs in.
    """
    sent = 0
    for user in _users_by_email(email):
        path = reverse(
            "password-reset-confirm",
            args=[urlsafe_base64_encode(force_bytes(user.pk)), default_token_generator.make_token(user)],
        )
        link = public_url(path, request_root=request_root)
        body = render_to_string("hub/password_reset_email.txt", {"user": user, "link": link})
        if mail.send(to=user.email, subject="Reset your fabhub password", body=body):
            sent += 1
    return sent


def password_reset_confirm(*, uidb64: str, token: str, new_password: str) -> User:
    """Set a new password from a reset link's two parts (the API's half of the pages)."""
    try:
        user = User.objects.get(pk=int(urlsafe_base64_decode(uidb64).decode()))
    except (ValueError, TypeError, OverflowError, User.DoesNotExist):
        user = None
    if user is None or not default_token_generator.check_token(user, token):
        raise ValidationError("This reset link was used already, has expired or is not valid.")
    return _set_password(user, new_password)


# -- e-mail address -----------------------------------------------------------------------


@dataclass(frozen=True)
class EmailChange:
    user_id: int
    old_email: str
    new_email: str


def _clean_email(value: str) -> str:
    email = value.strip()
    try:
        validate_email(email)
    except DjangoValidationError:
        raise ValidationError("Enter a valid e-mail address.", field="new_email") from None
    return email


def email_change_request(
    *, user: User, current_password: str, new_email: str, request: HttpRequest, request_root: str = ""
) -> str:
    """Send a confirmation link to `new_email`; the address changes only when it is followed.

    The link is signed and carries the address it replaces, so it works once (the old
    address is gone after) and only within PASSWORD_RESET_TIMEOUT. The current address,
    if any, is told that a change was asked for. Returns the link's token (for the API's
    tests and for the page that says where it went).
    """
    _check_password(user, current_password, request)
    email = _clean_email(new_email)
    if email.lower() == (user.email or "").lower():
        raise ValidationError("That is already your e-mail address.", field="new_email")
    if User.objects.filter(email__iexact=email).exclude(pk=user.pk).exists():
        raise Conflict("Another account uses that e-mail address.", field="new_email")
    token = signing.dumps({"user": user.pk, "old": user.email, "new": email}, salt=EMAIL_CHANGE_SALT)
    link = public_url(reverse("email-change-confirm", args=[token]), request_root=request_root)
    mail.send(
        to=email,
        subject="Confirm your new e-mail address on fabhub",
        body=(
            f"Hello {user.username},\n\nSomeone (we hope you) asked to use this address for the "
            f"fabhub account {user.username!r}. To confirm, open:\n\n{link}\n\n"
            "If it wasn't you, ignore this message: nothing changes.\n"
        ),
    )
    if user.email:
        mail.send(
            to=user.email,
            subject="Your fabhub e-mail address is about to change",
            body=(
                f"Hello {user.username},\n\nA change of your account's address to {email} was "
                "asked for. It happens only if the link sent there is opened. If this was not "
                "you, change your password now.\n"
            ),
        )
    return token


def email_change_read(*, token: str) -> EmailChange:
    """What a confirmation link would change, or a clear refusal."""
    max_age = settings.PASSWORD_RESET_TIMEOUT
    try:
        data = signing.loads(token, salt=EMAIL_CHANGE_SALT, max_age=max_age)
    except signing.SignatureExpired:
        raise ValidationError("This confirmation link has expired: ask for a new one.") from None
    except signing.BadSignature:
        raise ValidationError("This confirmation link is not valid.") from None
    return EmailChange(user_id=int(data["user"]), old_email=data["old"], new_email=data["new"])


@transaction.atomic
def email_change_confirm(*, user: User, token: str) -> User:
    change = email_change_read(token=token)
    if change.user_id != user.pk:
        raise PermissionDenied("This confirmation link is for another account.")
    locked = User.objects.select_for_update().get(pk=user.pk)
    if locked.email != change.old_email:
        raise ValidationError("This confirmation link was already used or replaced by a newer change.")
    if User.objects.filter(email__iexact=change.new_email).exclude(pk=user.pk).exists():
        raise Conflict("Another account uses that e-mail address now.")
    locked.email = change.new_email
    locked.save(update_fields=["email"])
    user.email = change.new_email
    return user


# -- deleting an account ------------------------------------------------------------------

# A step may refuse (raise a HubError: nothing is deleted) or act inside the transaction
# that deletes the account.
AccountDeletionStep = Callable[[User], None]
_deletion_steps: dict[str, AccountDeletionStep] = {}


def register_account_deletion_step(name: str, step: AccountDeletionStep) -> None:
    """Run `step(user)` before an account is deleted (each app's `ready()` registers)."""
    _deletion_steps[name] = step


def account_delete(*, user: User, current_password: str, confirm_username: str, request: HttpRequest) -> None:
    """Delete the account and what is only the person's; keep what others rely on.

    The steps run first, in registration order, inside the transaction: if one refuses,
    nothing at all is deleted. Files on disk (repositories) go once it commits. The
    password is checked before the transaction opens, so that a wrong one is counted
    (django-axes writes the count) and not rolled back with the refusal.
    """
    _check_password(user, current_password, request)
    if confirm_username != user.username:
        raise ValidationError("Type your username to confirm.", field="confirm_username")
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        for step in _deletion_steps.values():
            step(locked)
        locked.delete()
