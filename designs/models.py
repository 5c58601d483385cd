from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.storage import FileSystemStorage
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


class OkhTechnologyReadiness(models.TextChoices):
    """Open Know-How technology readiness levels (OTRL)."""

    OTRL_1 = "OTRL-1", "OTRL-1: ideation"
    OTRL_2 = "OTRL-2", "OTRL-2: conception"
    OTRL_3 = "OTRL-3", "OTRL-3: development"
    OTRL_4 = "OTRL-4", "OTRL-4: prototyping and testing"
    OTRL_5 = "OTRL-5", "OTRL-5: manufacturing development"
    OTRL_6 = "OTRL-6", "OTRL-6: product qualified"
    OTRL_7 = "OTRL-7", "OTRL-7: product deployed"
    OTRL_8 = "OTRL-8", "OTRL-8: product with proven record"


class OkhDocumentationReadiness(models.TextChoices):
    """Open Know-How documentation readiness levels (ODRL)."""

    ODRL_1 = "ODRL-1", "ODRL-1: documentation published"
    ODRL_2 = "ODRL-2", "ODRL-2: documentation complete"
    ODRL_3 = "ODRL-3", "ODRL-3: documentation reproducible"
    ODRL_3_STAR = "ODRL-3*", "ODRL-3*: documentation reproduced and verified"
    ODRL_4 = "ODRL-4", "ODRL-4: documentation certified"


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
    # Off by default: every tag is a release, so a push may not move or delete one, nor
    # may the pages or the API delete one.
    allow_tag_changes = models.BooleanField(default=False)
    # What an Open Know-How manifest needs and the hub cannot derive (designs/okh.py); an
    # okh.toml committed at the root takes precedence over these.
    okh_function = models.TextField(blank=True, max_length=2000)
    okh_technology_readiness = models.CharField(
        max_length=8, blank=True, choices=OkhTechnologyReadiness.choices
    )
    okh_documentation_readiness = models.CharField(
        max_length=8, blank=True, choices=OkhDocumentationReadiness.choices
    )
    okh_documentation_language = models.CharField(max_length=35, blank=True)
    # A mesh at the default branch's head, whose thumbnail stands for the design in lists.
    cover_blob_sha = models.CharField(max_length=40, blank=True)
    # Attribution outlives the upstream row: if the upstream is deleted, the fork still
    # names it by `forked_from_name` and the commit it was taken at.
    forked_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="forks"
    )
    forked_from_name = models.CharField(max_length=250, blank=True)
    fork_point = models.CharField(max_length=40, blank=True)
    # A fork whose upstream lives on another hub (brought here by an account archive):
    # the upstream's address there, since `forked_from` can only name a design of this hub.
    forked_from_url = models.CharField(max_length=500, blank=True)
    # Imported from another hub (hub/archives.py): the design's address there.
    imported_from = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    # Not a field: `presenters.with_covers` sets the cover thumbnail's address for lists.
    cover_url: str | None
    # Not a field: `selectors.with_social_counts` sets its stars, watchers, forks and makes.
    social: Any

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

    @cached_property
    def repo(self) -> Repository:
        # One per design object: opening a repository costs ~1.7 ms, and a page or an
        # assembly check asks for it dozens of times.
        return Repository(self.repo_path)


def repo_path(owner_username: str, slug: str) -> Path:
    return Path(settings.REPOS_DIR) / owner_username / f"{slug}.git"


class Collaborator(models.Model):
    class Role(models.TextChoices):
        READ = "read", "Read"
        WRITE = "write", "Write"

    design = models.ForeignKey(Design, on_delete=models.CASCADE, related_name="collaborators")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="collaborations"
    )
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


class BlobDiff(models.Model):
    """The detailed comparison of two blobs (a text patch, a BOM's rows, a geometric diff),
    computed once in the background and shared by every page, process and worker.

    Keyed by what the result depends on: the two blob shas ("" for a side that is absent)
    and `differ`, which names the comparison and the formats it read the blobs as ("text",
    "bom", "geometry:stl:stl"). Rows move pending → running → done | failed like mesh
    analyses; the move to running is a claim (a conditional update).
    """

    Status = MeshAnalysis.Status  # the same life cycle: pending → running → done | failed

    old_sha = models.CharField(max_length=40, blank=True)
    new_sha = models.CharField(max_length=40, blank=True)
    differ = models.CharField(max_length=64)
    # A design and the names the blobs were first compared under: where to read them.
    design = models.ForeignKey(Design, null=True, on_delete=models.SET_NULL, related_name="+")
    old_path = models.CharField(max_length=4096, blank=True)
    new_path = models.CharField(max_length=4096)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    kind = models.CharField(max_length=32, blank=True)  # a FileDiff's kind, once done
    detail = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint("old_sha", "new_sha", "differ", name="blobdiff_unique_pair"),
        ]
        indexes = [models.Index(fields=["status", "queued_at"])]

    def __str__(self) -> str:
        return f"{self.differ} {self.old_sha[:10]}→{self.new_sha[:10]} {self.status}"


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
            models.CheckConstraint(
                condition=models.Q(oid__regex=r"^[0-9a-f]{64}$"), name="lfs_object_oid_sha256"
            ),
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


# -- collaboration across forks and hubs (designs/services/proposals.py, mirrors.py) -------


class ChangeProposal(models.Model):
    """A request to merge `source_branch` of `source` into `target_branch` of `target`.

    The source is the target itself or a design of its fork network. Its head is copied
    into the target repository as `refs/proposals/<number>/head`, so the proposal can be
    reviewed and merged even after the source branch (or design) is gone. The merge
    figures (`merge_state`, `conflicts`, …) were computed for `head_sha` onto `target_sha`;
    `designs.proposals.proposal_refresh` recomputes them when either branch moves.
    """

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        MERGED = "merged", "Merged"
        CLOSED = "closed", "Closed"

    class MergeState(models.TextChoices):
        UNKNOWN = "unknown", "Not checked yet"
        FAST_FORWARD = "fast-forward", "Can be fast-forwarded"
        CLEAN = "clean", "Merges cleanly"
        CONFLICT = "conflict", "Has conflicts"
        MISSING = "missing", "A branch is missing"

    target = models.ForeignKey(Design, on_delete=models.CASCADE, related_name="proposals")
    number = models.PositiveIntegerField()
    target_branch = models.CharField(max_length=200)
    source = models.ForeignKey(
        Design, null=True, blank=True, on_delete=models.SET_NULL, related_name="outgoing_proposals"
    )
    # "owner/slug" of the source, kept if the source design is deleted.
    source_name = models.CharField(max_length=250)
    source_branch = models.CharField(max_length=200)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="proposals"
    )
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # Rendered when written (hub.markdown.render_field); links hold REVISION_PLACEHOLDER
    # where the proposal's head goes, filled in when shown.
    description_html = models.TextField(blank=True, editable=False)
    description_html_version = models.CharField(max_length=40, blank=True, editable=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    head_sha = models.CharField(max_length=40)
    target_sha = models.CharField(max_length=40, blank=True)
    merge_base = models.CharField(max_length=40, blank=True)
    merge_state = models.CharField(max_length=20, choices=MergeState.choices, default=MergeState.UNKNOWN)
    # [{"path", "kind", "message"}] when merge_state is "conflict".
    conflicts = models.JSONField(default=list, blank=True)
    commit_count = models.PositiveIntegerField(default=0)
    merged_sha = models.CharField(max_length=40, blank=True)
    merged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    merged_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint("target", "number", name="proposal_number_unique_per_design"),
            models.UniqueConstraint(
                "target",
                "target_branch",
                "source",
                "source_branch",
                condition=models.Q(status="open"),
                name="proposal_one_open_per_branch_pair",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="merged") | ~models.Q(merged_sha=""),
                name="proposal_merged_has_sha",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.target} #{self.number}"

    @property
    def head_ref(self) -> str:
        return f"refs/proposals/{self.number}/head"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN


class ProposalComment(models.Model):
    proposal = models.ForeignKey(ChangeProposal, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    body = models.TextField()
    body_html = models.TextField(blank=True, editable=False)
    body_html_version = models.CharField(max_length=40, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"comment {self.pk} on {self.proposal}"


class PullMirror(models.Model):
    """The design is a copy of the repository at `url`: fetched on a schedule and on
    demand, with its LFS objects, and read-only on this hub."""

    design = models.OneToOneField(Design, on_delete=models.CASCADE, related_name="pull_mirror")
    url = models.CharField(max_length=2000)
    # Fernet token of {"username", "secret"} (hub.crypto); never shown again once saved.
    credential = models.TextField(blank=True)
    username = models.CharField(max_length=200, blank=True)
    interval = models.PositiveIntegerField(help_text="Seconds between scheduled refreshes.")
    next_refresh_at = models.DateTimeField(default=timezone.now)
    refreshing_since = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # Set on a successful refresh that still lacked something (LFS objects the remote lost).
    warning = models.TextField(blank=True)
    failures = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["next_refresh_at"])]

    def __str__(self) -> str:
        return f"{self.design} ← {self.url}"


class PushMirror(models.Model):
    """After each change the hub pushes the design's branches and tags (and LFS objects)
    to `url`. Never forced: a remote that moved on its own is reported, not overwritten."""

    design = models.ForeignKey(Design, on_delete=models.CASCADE, related_name="push_mirrors")
    url = models.CharField(max_length=2000)
    credential = models.TextField(blank=True)
    username = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=True)
    # Changes not pushed yet: set by every ref change, cleared when a push starts.
    pending = models.BooleanField(default=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    pushing_since = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    failures = models.PositiveIntegerField(default=0)
    # ref → sha the remote accepted last: later pushes look for LFS objects only in newer commits.
    pushed_refs = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["pk"]
        constraints = [models.UniqueConstraint("design", "url", name="push_mirror_unique_url")]
        indexes = [models.Index(fields=["pending", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.design} → {self.url}"


class MakePhotoStorage(FileSystemStorage):
    """Photos of makes under FABHUB_DATA_DIR/photos/makes, read at call time (tests move it)."""

    @property
    def base_location(self):
        return settings.DATA_DIR / "photos" / "makes"

    @property
    def location(self):
        return str(self.base_location)

    def deconstruct(self):
        return ("designs.models.MakePhotoStorage", (), {})


class Make(models.Model):
    """ "I made one": a person's record that they built a design at one exact commit, with a
    photo, notes and where. Print records of the lab print queue are makes too, but they
    live in machines; this is the one anybody can add. The hub signs each (hub.records)."""

    class Outcome(models.TextChoices):
        WORKS = "works", "It works"
        PARTLY = "partly", "Made, with problems"
        FAILED = "failed", "Did not work"

    design = models.ForeignKey(Design, on_delete=models.CASCADE, related_name="makes")
    commit_sha = models.CharField(max_length=40)
    # The part made, when it is one file of the design; empty for the whole design.
    path = models.CharField(max_length=4096, blank=True)
    maker = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="makes")
    photo = models.FileField(upload_to="%Y/%m/", storage=MakePhotoStorage(), blank=True)
    notes = models.TextField(blank=True, max_length=4000)
    where = models.CharField(max_length=200, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.WORKS)
    made_on = models.DateField(default=timezone.localdate)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-made_on", "-created_at", "-pk"]
        indexes = [
            models.Index(fields=["design", "commit_sha"], name="make_design_commit"),
            models.Index(fields=["maker", "-made_on"], name="make_maker_made_on"),
        ]

    def __str__(self) -> str:
        return f"{self.maker} made {self.design} at {self.commit_sha[:10]}"


class AssemblyCheck(models.Model):
    """What the hub found reading one commit of a design as an assembly of modules
    (designs/services/assemblies.py): the modules it pins, resolved to designs where it
    can, and every problem as a sentence. Computed once per commit, after the ref move
    that brought it, and again when a module it names appears or changes visibility."""

    design = models.ForeignKey(Design, on_delete=models.CASCADE, related_name="assembly_checks")
    commit_sha = models.CharField(max_length=40)
    is_assembly = models.BooleanField(default=False)
    problems = models.JSONField(default=list)
    modules = models.JSONField(default=list)
    checked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["design", "commit_sha"], name="assembly_check_one_per_commit")
        ]

    def __str__(self) -> str:
        return f"{self.design} at {self.commit_sha[:10]}: {len(self.problems)} problems"


class ModuleUse(models.Model):
    """An assembly's default branch pins a design of this hub as a module: the module's
    "used by" list, kept by the assembly check of the default branch's head."""

    assembly = models.ForeignKey(Design, on_delete=models.CASCADE, related_name="module_uses")
    module = models.ForeignKey(Design, on_delete=models.CASCADE, related_name="used_by")
    path = models.CharField(max_length=4096)
    commit_sha = models.CharField(max_length=40)
    release = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["assembly_id", "path"]
        constraints = [models.UniqueConstraint(fields=["assembly", "path"], name="module_use_one_per_path")]
        indexes = [models.Index(fields=["module"], name="module_use_module")]

    def __str__(self) -> str:
        return f"{self.assembly} uses {self.module} at {self.commit_sha[:10]}"


class Watch(models.Model):
    """What a person wants to hear about one design. Owners and proposal authors watch
    with level `all` from their first act unless they chose `ignore` (a row with `ignore`
    is how the hub remembers that choice)."""

    class Level(models.TextChoices):
        ALL = "all", "All activity"
        RELEASES = "releases", "Releases only"
        IGNORE = "ignore", "Ignore"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="watches")
    design = models.ForeignKey(Design, on_delete=models.CASCADE, related_name="watches")
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.ALL)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "design"], name="watch_one_per_user")]
        indexes = [models.Index(fields=["design", "level"], name="watch_design_level")]

    def __str__(self) -> str:
        return f"{self.user} watches {self.design} ({self.level})"


class Star(models.Model):
    """A person's star on a design: a public mark of appreciation, counted on lists."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="stars")
    design = models.ForeignKey(Design, on_delete=models.CASCADE, related_name="stars")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "design"], name="star_one_per_user")]
        indexes = [models.Index(fields=["design"], name="star_design")]

    def __str__(self) -> str:
        return f"{self.user} starred {self.design}"


class SearchDocument(models.Model):
    """What search finds a design by, as of its default branch's head: its words as the
    hub's tokeniser splits them (designs/search/tokens.py), one space between words, and
    the plain text that snippets are cut from.

    The full-text index over the `*_words` columns is the database's own, made by
    migration 0011: an FTS5 table kept in step by triggers on SQLite, a generated
    tsvector column with a GIN index on PostgreSQL (designs/search/backends.py). Rebuilt
    in the background after every change (designs/services/search.py); visibility is not
    stored here: every search is narrowed by the visibility rule when it runs."""

    design = models.OneToOneField(
        Design, on_delete=models.CASCADE, primary_key=True, related_name="search_document"
    )
    title_words = models.TextField(blank=True)
    summary_words = models.TextField(blank=True)
    readme_words = models.TextField(blank=True)
    path_words = models.TextField(blank=True)
    readme_text = models.TextField(blank=True)
    paths = models.TextField(blank=True)  # one a line
    # The commit the README and the paths were read at ("" for an empty design).
    commit_sha = models.CharField(max_length=40, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"search document of design {self.design_id}"


class ReleaseAsset(models.Model):
    """A file attached to a release (a tag) of a design, such as a ready-to-print export
    or an assembly guide (designs/services/releases.py, docs/releases.md).

    Its bytes live in the content-addressed store of Git LFS objects (designs.lfs_store),
    named by `sha256`; this row says which release of which design serves them under which
    name. A name is taken once per release: replacing a file means deleting it first.
    """

    design = models.ForeignKey(Design, on_delete=models.CASCADE, related_name="release_assets")
    tag = models.CharField(max_length=255)
    name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    content_type = models.CharField(max_length=100)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint("design", "tag", "name", name="release_asset_one_per_name"),
            models.CheckConstraint(
                condition=models.Q(sha256__regex=r"^[0-9a-f]{64}$"), name="release_asset_sha256"
            ),
            models.CheckConstraint(condition=models.Q(size__gte=0), name="release_asset_size_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.name} of {self.design} {self.tag}"
