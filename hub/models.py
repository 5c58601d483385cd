from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "fh_"


# First path segments the hub uses itself; a user by such a name would shadow them.
RESERVED_USERNAMES = frozenset(
    {"admin", "api", "static", "media", "new", "login", "logout", "signup", "settings", "labs", "machines"}
)


def validate_username(value: str) -> None:
    """A username is a folder on disk and a URL segment: keep it plain."""
    if value.lower() in RESERVED_USERNAMES:
        raise ValidationError(f"{value!r} is reserved by the hub.")
    if ".." in value or value.lower().endswith(".git"):
        raise ValidationError("A username cannot contain '..' or end in '.git'.")


class User(AbstractUser):
    """A person on the hub. Their username is their namespace: /<username>/<design>."""

    username = models.CharField(
        max_length=39,
        unique=True,
        validators=[
            RegexValidator(
                r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                "Use letters, digits, '.', '-' or '_', starting with a letter or digit.",
            ),
            validate_username,
        ],
        error_messages={"unique": "That username is taken."},
    )
    bio = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.username


def hash_token(raw: str) -> str:
    # Tokens are 256-bit random strings, so a fast unsalted digest is enough: there is
    # nothing to brute-force, and lookup by digest stays a single indexed query.
    return hashlib.sha256(raw.encode()).hexdigest()


def new_raw_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class AccessToken(models.Model):
    """A personal access token for the API and git. Only its digest is stored."""

    class Scope(models.TextChoices):
        READ = "read", "Read"
        WRITE = "write", "Read and write"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="access_tokens")
    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.WRITE)
    digest = models.CharField(max_length=64, unique=True)
    # The first characters, shown in lists so the user can tell tokens apart.
    hint = models.CharField(max_length=12)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.user} · {self.name}"

    @property
    def is_active(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()
