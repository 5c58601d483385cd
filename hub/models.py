from __future__ import annotations

import hashlib
import secrets
import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "fh_"
# Lab agent tokens (machines.models.LabAgent): a prefix of their own, so every surface
# tells them from personal tokens before looking anything up.
AGENT_TOKEN_PREFIX = "fha_"


# First path segments the hub uses itself; a user by such a name would shadow them.
RESERVED_USERNAMES = frozenset(
    {
        "admin",
        "api",
        "static",
        "media",
        "new",
        "login",
        "logout",
        "signup",
        "settings",
        "labs",
        "machines",
        "notifications",
        "credentials",
        "okh",
        "password-reset",
        ".well-known",
    }
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


class SigningKey(models.Model):
    """One of the hub's Ed25519 keys (hub/records). The newest key not retired signs new
    records; every key stays published, so what an old key signed still verifies after a
    rotation. The private half is stored encrypted (hub.crypto)."""

    key_id = models.CharField(max_length=64, unique=True)
    # Multikey form: multibase base58btc of the multicodec ed25519-pub header + 32 bytes.
    public_key = models.CharField(max_length=64, unique=True)
    private_key = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.key_id


class Credential(models.Model):
    """A record the hub signed about a person: something they made, or a qualification a
    lab granted them. `document` is the signed credential exactly as issued; the feature
    app that owns the event names it in `source` (one unrevoked credential per source)."""

    class Kind(models.TextChoices):
        MAKE = "make", "Make"
        QUALIFICATION = "qualification", "Qualification"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    source = models.CharField(max_length=100)
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="credentials"
    )
    document = models.JSONField()
    # The credential's bit in the hub's revocation status list.
    status_index = models.PositiveIntegerField(unique=True)
    issued_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revocation_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-issued_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["source"],
                condition=models.Q(revoked_at__isnull=True),
                name="credential_one_live_per_source",
            )
        ]
        indexes = [models.Index(fields=["subject", "kind"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.id}"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class AccountArchive(models.Model):
    """An archive of everything a person has on this hub (hub/archives.py), built in the
    background, downloadable by them only until `expires_at`."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        BUILDING = "building", "Building"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="archives")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)  # percent
    stage = models.CharField(max_length=200, blank=True)
    size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"archive {self.pk} of {self.owner_id} ({self.status})"


class ArchiveImport(models.Model):
    """An archive from another hub (or this one) being imported into an account."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        IMPORTING = "importing", "Importing"
        DONE = "done", "Done"
        FAILED = "failed", "Refused"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="archive_imports"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    stage = models.CharField(max_length=200, blank=True)
    # What the archive's signed manifest says, once read.
    source_hub = models.CharField(max_length=500, blank=True)
    source_account = models.CharField(max_length=500, blank=True)
    # "verified": signed by a key this hub may trust; "unverified": from a hub it cannot
    # check (designs are imported as content, records stay unverified).
    signature = models.CharField(max_length=20, blank=True)
    report = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The claim of the imported records: a challenge the source hub must sign.
    claim_challenge = models.CharField(max_length=64, blank=True)
    claim_challenge_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"import {self.pk} into {self.account_id} ({self.status})"


class ImportedObject(models.Model):
    """What an import made of an object of another hub: a second import of the same
    archive finds it here and changes nothing (keyed on the source hub and its id)."""

    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    source_hub = models.CharField(max_length=500)
    kind = models.CharField(max_length=40)
    original_id = models.CharField(max_length=200)
    local_id = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "source_hub", "kind", "original_id"], name="imported_object_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.original_id} of {self.source_hub}"


class ImportedRecord(models.Model):
    """History brought from another hub, shown read-only with its origin: a signed record
    (credential) or what the person did there (a proposal, a comment, a booking, a print)."""

    class Kind(models.TextChoices):
        CREDENTIAL = "credential", "Signed record"
        PROPOSAL = "proposal", "Proposal"
        COMMENT = "comment", "Comment"
        BOOKING = "booking", "Booking"
        PRINT = "print", "Print"

    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="imported_records"
    )
    archive_import = models.ForeignKey(
        ArchiveImport, on_delete=models.SET_NULL, null=True, related_name="records"
    )
    source_hub = models.CharField(max_length=500)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    original_id = models.CharField(max_length=200)
    data = models.JSONField()
    # Credentials: what verifying them on import said, and whether the person proved they
    # control the account the record names (hub/archives.py, the claim).
    verification = models.CharField(max_length=30, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["kind", "-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "source_hub", "kind", "original_id"], name="imported_record_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.original_id} from {self.source_hub}"


# -- notifications (hub/notifications.py; docs/notifications.md) ----------------------------


class NotificationKind(models.TextChoices):
    PROPOSAL_OPENED = "proposal_opened", "A proposal opened on your design"
    PROPOSAL_COMMENT = "proposal_comment", "A comment on a proposal you take part in"
    MENTION = "mention", "You are @mentioned"
    PROPOSAL_MERGED = "proposal_merged", "A proposal you take part in is merged"
    PROPOSAL_CLOSED = "proposal_closed", "A proposal you take part in is closed"
    RELEASE = "release", "A new release of a design you watch"
    FORKED = "forked", "Your design is forked"
    MODULE_UPGRADE = "module_upgrade", "A module of your assembly has a new release"
    LAB_BOOKING = "lab_booking", "Your lab bookings"
    LAB = "lab", "Your labs and prints"


class Notification(models.Model):
    """One message to one person, of any kind: shown in their inbox, and e-mailed when
    their preferences (NotificationPreference) say so.

    What it is about is named by `target_type` ("designs.design", "machines.booking", …)
    and `target_id`, not by a foreign key: the hub imports no feature app, and the app
    that owns the target registers in hub.notifications who may still see it, so the inbox
    re-checks access when it is read. `target_type` empty: about nothing that can be lost.
    """

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=20, choices=NotificationKind.choices)
    # Who did it; nobody for what the hub itself did (a reminder, a printer's report).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    subject = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    # A path on this hub ("/ada/rover/proposals/3/"), never an outside address.
    link = models.CharField(max_length=500, blank=True)
    target_type = models.CharField(max_length=40, blank=True)
    target_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["recipient", "-created_at"], name="notification_recipient_recent"),
            models.Index(
                fields=["recipient"], condition=models.Q(read_at__isnull=True), name="notification_unread"
            ),
            models.Index(fields=["target_type", "target_id"], name="notification_target"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(target_type="") | models.Q(target_id__isnull=False),
                name="notification_target_has_id",
            ),
            models.CheckConstraint(
                condition=models.Q(link="") | models.Q(link__startswith="/"),
                name="notification_link_is_a_path",
            ),
        ]

    def __str__(self) -> str:
        return f"to {self.recipient}: {self.subject}"


class NotificationPreference(models.Model):
    """A person's choice to have (or not) one kind of notification e-mailed. No row: the
    kind's default (hub.notifications.EMAIL_BY_DEFAULT)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preferences"
    )
    kind = models.CharField(max_length=20, choices=NotificationKind.choices)
    email = models.BooleanField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "kind"], name="notification_preference_one_per_kind")
        ]

    def __str__(self) -> str:
        return f"{self.user}: {self.kind} e-mail {'on' if self.email else 'off'}"
