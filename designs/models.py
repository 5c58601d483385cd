from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from designs.git import Repository


class Licence(models.TextChoices):
    """SPDX identifiers; the open-hardware licences come first."""

    CERN_OHL_S = "CERN-OHL-S-2.0", "CERN Open Hardware Licence v2 – Strongly Reciprocal"
    CERN_OHL_W = "CERN-OHL-W-2.0", "CERN Open Hardware Licence v2 – Weakly Reciprocal"
    CERN_OHL_P = "CERN-OHL-P-2.0", "CERN Open Hardware Licence v2 – Permissive"
    TAPR_OHL = "TAPR-OHL-1.0", "TAPR Open Hardware License v1.0"
    CC_BY = "CC-BY-4.0", "Creative Commons Attribution 4.0"
    CC_BY_SA = "CC-BY-SA-4.0", "Creative Commons Attribution Share Alike 4.0"
    CC0 = "CC0-1.0", "Creative Commons Zero v1.0 Universal"
    GPL3 = "GPL-3.0-or-later", "GNU General Public License v3.0 or later"
    MIT = "MIT", "MIT License"
    APACHE2 = "Apache-2.0", "Apache License 2.0"


slug_validator = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9._-]{0,98}[a-z0-9_-])?$",
    "Use 1–100 lowercase letters, digits, '.', '-' or '_', starting with a letter or digit.",
)


class Tag(models.Model):
    name = models.SlugField(max_length=50, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Design(models.Model):
    """A design: one bare git repository on disk plus this row describing it."""

    class Visibility(models.TextChoices):
        PUBLIC = "public", "Public"
        PRIVATE = "private", "Private"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="designs")
    slug = models.CharField(max_length=100, validators=[slug_validator])
    title = models.CharField(max_length=200)
    summary = models.TextField(blank=True)
    licence = models.CharField(max_length=32, choices=Licence.choices)
    visibility = models.CharField(max_length=10, choices=Visibility.choices, default=Visibility.PUBLIC)
    tags = models.ManyToManyField(Tag, blank=True, related_name="designs")
    default_branch = models.CharField(max_length=100, default="main")
    # Off by default: a push may not delete or rewrite the default branch's history.
    allow_default_branch_rewrite = models.BooleanField(default=False)
    # A mesh at the default branch's head, whose thumbnail stands for the design in lists.
    cover_blob_sha = models.CharField(max_length=40, blank=True)
    # Attribution outlives the upstream row: if the upstream is deleted, the fork still
    # names it by `forked_from_name` and the commit it was taken at.
    forked_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="forks"
    )
    forked_from_name = models.CharField(max_length=250, blank=True)
    fork_point = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(Lower("slug"), "owner", name="design_slug_unique_per_owner"),
            models.CheckConstraint(
                condition=models.Q(forked_from_name="") | ~models.Q(fork_point=""),
                name="design_fork_has_fork_point",
            ),
        ]
        indexes = [models.Index(fields=["visibility", "-updated_at"])]

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        return f"{self.owner.username}/{self.slug}"

    @property
    def is_fork(self) -> bool:
        return bool(self.forked_from_name)

    @property
    def repo_path(self) -> Path:
        return repo_path(self.owner.username, self.slug)

    @property
    def repo(self) -> Repository:
        return Repository(self.repo_path)


def repo_path(owner_username: str, slug: str) -> Path:
    return Path(settings.REPOS_DIR) / owner_username / f"{slug}.git"


class Collaborator(models.Model):
    class Role(models.TextChoices):
        READ = "read", "Read"
        WRITE = "write", "Write"

    design = models.ForeignKey(Design, on_delete=models.CASCADE, related_name="collaborators")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="collaborations")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.READ)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint("design", "user", name="collaborator_unique")]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) on {self.design}"


class MeshAnalysis(models.Model):
    """The figures of one mesh blob. Keyed by blob sha: analysed once, wherever it appears."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    blob_sha = models.CharField(max_length=40, unique=True)
    # A design and a name the blob was first seen under: where to read it, and its format.
    design = models.ForeignKey(Design, null=True, on_delete=models.SET_NULL, related_name="+")
    path = models.CharField(max_length=4096)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    figures = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "queued_at"])]

    def __str__(self) -> str:
        return f"{self.blob_sha[:10]} {self.status}"


class MeshDiff(models.Model):
    """A cached geometric comparison of two mesh blobs."""

    old_sha = models.CharField(max_length=40)
    new_sha = models.CharField(max_length=40)
    result = models.JSONField(null=True)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint("old_sha", "new_sha", name="meshdiff_unique_pair")]

    def __str__(self) -> str:
        return f"{self.old_sha[:10]}→{self.new_sha[:10]}"


class LfsObject(models.Model):
    """A Git LFS object in the store (designs.lfs_store), known by its sha256.

    The bytes are stored once whatever the number of designs using them; which designs
    may serve an object is `DesignLfsObject`.
    """

    oid = models.CharField(max_length=64, unique=True)
    size = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    designs = models.ManyToManyField(Design, through="DesignLfsObject", related_name="lfs_objects")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(oid__regex=r"^[0-9a-f]{64}$"), name="lfs_object_oid_sha256"),
            models.CheckConstraint(condition=models.Q(size__gte=0), name="lfs_object_size_not_negative"),
        ]

    def __str__(self) -> str:
        return self.oid


class DesignLfsObject(models.Model):
    """`design` may serve `lfs_object`: someone with write access uploaded it (or proved
    they could read it) for this design, or the design was forked from one that could."""

    design = models.ForeignKey(Design, on_delete=models.CASCADE, related_name="lfs_links")
    lfs_object = models.ForeignKey(LfsObject, on_delete=models.CASCADE, related_name="links")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint("design", "lfs_object", name="design_lfs_object_unique")]

    def __str__(self) -> str:
        return f"{self.design} → {self.lfs_object}"


class LfsLock(models.Model):
    """A Git LFS file lock (`git lfs lock <path>`): one holder per path and design."""

    design = models.ForeignKey(Design, on_delete=models.CASCADE, related_name="lfs_locks")
    path = models.CharField(max_length=4096)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="lfs_locks")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["pk"]
        constraints = [models.UniqueConstraint("design", "path", name="lfs_lock_unique_path")]

    def __str__(self) -> str:
        return f"{self.path} locked by {self.owner} in {self.design}"
