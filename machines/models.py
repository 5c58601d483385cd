"""Labs (third places), their machines, who is trained on what, and one timeline per machine.

The timeline is `Booking`: a member's booking, a maintenance window, and later a queued
print job are all rows of it, told apart by `kind`. Whatever their kind, two *active*
rows of one machine never overlap. PostgreSQL guarantees it with an exclusion constraint
(`booking_no_overlap`); SQLite has no such constraint, so every write to a timeline goes
through `machines.services.timeline_lock` first (docs/labs.md explains both).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
import zoneinfo
from datetime import time
from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import DateTimeRangeField, RangeBoundary, RangeOperators
from django.core.exceptions import ValidationError
from django.core.files.storage import FileSystemStorage
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import connections, models
from django.db.models import Func, Q
from django.utils.timezone import now

from hub.models import User

# First path segments under /labs/ that the hub uses itself.
RESERVED_LAB_SLUGS = frozenset(
    {"new", "bookings", "notifications", "feeds", "calendar", "api", "jobs", "where"}
)


def validate_lab_slug(value: str) -> None:
    if value.lower() in RESERVED_LAB_SLUGS:
        raise ValidationError(f"{value!r} is reserved by the hub.")


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a time zone name such as 'Europe/Paris'.")


def validate_locale(value: str) -> None:
    if value and value not in dict(settings.LANGUAGES):
        raise ValidationError(f"{value!r} is not a language the hub knows, such as 'fr' or 'en'.")


slug_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9-]*$", "Use lowercase letters, digits and '-', starting with a letter or digit."
)


def new_feed_token() -> str:
    return secrets.token_urlsafe(32)


currency_validator = RegexValidator(r"^[A-Z]{3}$", "A currency is its three-letter ISO 4217 code, e.g. EUR.")


class PhotoStorage(FileSystemStorage):
    """Machine photos under FABHUB_DATA_DIR/photos, read at call time (tests move it)."""

    @property
    def base_location(self):
        return settings.DATA_DIR / "photos"

    @property
    def location(self):
        return str(self.base_location)

    def deconstruct(self):
        return ("machines.models.PhotoStorage", (), {})


class BookingRules(models.Model):
    """Booking rules a lab sets, and a machine may override (None: the lab's value)."""

    min_booking_minutes = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)]
    )
    max_booking_minutes = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)]
    )
    min_notice_minutes = models.PositiveIntegerField(null=True, blank=True)
    max_horizon_days = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    weekly_quota_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Hours a member may book per week, in minutes; empty: no limit."
    )
    requires_approval = models.BooleanField(null=True, blank=True)
    cancel_deadline_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="A member may cancel until this long before the start."
    )

    RULE_FIELDS = (
        "min_booking_minutes", "max_booking_minutes", "min_notice_minutes", "max_horizon_days",
        "weekly_quota_minutes", "requires_approval", "cancel_deadline_minutes",
    )  # fmt: skip

    class Meta:
        abstract = True


class Lab(BookingRules):
    class JoinPolicy(models.TextChoices):
        OPEN = "open", "Anyone may join"
        REQUEST = "request", "A manager approves each request"

    name = models.CharField(max_length=200)
    slug = models.CharField(
        max_length=60,
        unique=True,
        validators=[slug_validator, validate_lab_slug],
        error_messages={"unique": "That lab name is taken."},
    )
    address = models.TextField(blank=True)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    # How its pages write dates and times (a language code of settings.LANGUAGES); empty
    # follows the hub's LANGUAGE_CODE, so a hub that changes language takes its labs along.
    locale = models.CharField(max_length=15, blank=True, default="", validators=[validate_locale])
    description = models.TextField(blank=True, help_text="Markdown.")
    # Rendered when written (hub.markdown.render_field), with the renderer's version.
    description_html = models.TextField(blank=True, editable=False)
    description_html_version = models.CharField(max_length=40, blank=True, editable=False)

    join_policy = models.CharField(max_length=10, choices=JoinPolicy.choices, default=JoinPolicy.OPEN)
    # Where it is, for "nearest" (distances are computed locally; nothing is geocoded online).
    latitude = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(-90.0), MaxValueValidator(90.0)]
    )
    longitude = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(-180.0), MaxValueValidator(180.0)]
    )
    created_at = models.DateTimeField(default=now)
    # Opening a lab is a site policy (FABHUB_OPEN_LAB_CREATION): by default a site
    # administrator approves it first. Until then it has no machines and no members.
    approved_at = models.DateTimeField(null=True, blank=True)

    # The lab's rules are never empty: machines fall back to them.
    DEFAULT_RULES = {
        "min_booking_minutes": 15,
        "max_booking_minutes": 240,
        "min_notice_minutes": 0,
        "max_horizon_days": 60,
        "weekly_quota_minutes": None,
        "requires_approval": False,
        "cancel_deadline_minutes": 60,
    }

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(min_booking_minutes__isnull=True)
                | Q(max_booking_minutes__isnull=True)
                | Q(min_booking_minutes__lte=models.F("max_booking_minutes")),
                name="lab_min_booking_not_above_max",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_approved(self) -> bool:
        return self.approved_at is not None

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    @property
    def language(self) -> str:
        """The language its dates and times are written in: its own, or the hub's."""
        return self.locale or settings.LANGUAGE_CODE


class LabMembership(models.Model):
    class Role(models.TextChoices):
        MEMBER = "member", "Member"
        MANAGER = "manager", "Manager"

    class Status(models.TextChoices):
        PENDING = "pending", "Asked to join"
        ACTIVE = "active", "Member"

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="lab_memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(default=now)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["lab", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["lab", "user"], name="lab_membership_unique"),
            # A manager is a member too: never one waiting for approval.
            models.CheckConstraint(
                condition=~Q(role="manager", status="pending"), name="lab_manager_is_active"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.lab} ({self.role}, {self.status})"


class OpeningHours(models.Model):
    """One opening interval of a weekday, in the lab's wall-clock time.

    `closes` 00:00 means midnight at the end of the day, so 00:00–00:00 is open all day
    and two such days in a row make one interval a booking may span.
    """

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="opening_hours")
    weekday = models.PositiveSmallIntegerField(help_text="0 = Monday … 6 = Sunday")
    opens = models.TimeField()
    closes = models.TimeField()

    class Meta:
        ordering = ["weekday", "opens"]
        constraints = [
            models.CheckConstraint(condition=Q(weekday__lte=6), name="opening_hours_weekday_range"),
            models.CheckConstraint(
                condition=Q(closes__gt=models.F("opens")) | Q(closes=time(0)),
                name="opening_hours_close_after_open",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.lab} day {self.weekday} {self.opens}–{self.closes}"


class Closure(models.Model):
    """An exceptional closure (holiday, event): no booking may touch it."""

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="closures")
    start = models.DateTimeField()
    end = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["start"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=models.F("start")), name="closure_ends_after_start"),
        ]

    def __str__(self) -> str:
        return f"{self.lab} closed {self.start}–{self.end}"


class Machine(BookingRules):
    class Kind(models.TextChoices):
        FDM_PRINTER = "fdm_printer", "FDM printer"
        RESIN_PRINTER = "resin_printer", "Resin printer"
        LASER_CUTTER = "laser_cutter", "Laser cutter"
        CNC_MILL = "cnc_mill", "CNC mill"
        VINYL_CUTTER = "vinyl_cutter", "Vinyl cutter"
        OTHER = "other", "Other"

    class Status(models.TextChoices):
        AVAILABLE = "available", "Available"
        MAINTENANCE = "maintenance", "In maintenance"
        OUT_OF_ORDER = "out_of_order", "Out of order"

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="machines")
    name = models.CharField(max_length=200)
    slug = models.CharField(max_length=60, validators=[slug_validator])
    kind = models.CharField(max_length=20, choices=Kind.choices)
    model_name = models.CharField("model", max_length=200, blank=True)
    work_x_mm = models.PositiveIntegerField(null=True, blank=True)
    work_y_mm = models.PositiveIntegerField(null=True, blank=True)
    work_z_mm = models.PositiveIntegerField(null=True, blank=True)
    capabilities = models.JSONField(
        default=dict, blank=True, help_text="e.g. nozzle_diameters_mm, materials, max_temperature_c"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.AVAILABLE)
    status_reason = models.CharField(max_length=500, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    photo = models.FileField(upload_to="machines/", storage=PhotoStorage(), blank=True)
    notes = models.TextField(blank=True)
    requires_qualification = models.BooleanField(default=False)
    # What an hour on it costs (bookings and prints); empty: the lab's price per machine-hour.
    price_per_hour = models.DecimalField(
        max_digits=10, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(Decimal(0))]
    )
    # Fernet token of the connection settings (machines/secrets.py). Write-only: no
    # serializer, form or template ever reads it; drivers call `connection_settings()`.
    connection_secret = models.TextField(blank=True, editable=False)
    # A printer "via agent": the lab agent that drives it from inside the lab's network.
    # The hub then holds no address or key for it (the agent's own configuration does).
    agent = models.ForeignKey(
        "LabAgent", null=True, blank=True, on_delete=models.SET_NULL, related_name="machines"
    )
    # Bumped by every write to this machine's timeline: the UPDATE is the lock that
    # serialises them (services.timeline_lock), and the value versions availability.
    timeline_version = models.PositiveBigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["lab", "name"]
        constraints = [
            models.UniqueConstraint(fields=["lab", "slug"], name="machine_slug_unique_per_lab"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.lab})"

    @property
    def has_connection(self) -> bool:
        """True when the hub can drive it: directly (stored settings) or through an agent."""
        return bool(self.connection_secret) or self.agent_id is not None

    @property
    def is_bookable(self) -> bool:
        return self.status == self.Status.AVAILABLE


class LabAgent(models.Model):
    """A program inside a lab's network that drives some of the lab's printers for the hub,
    dialling out to it (docs/agent.md). It proves itself with a token of its own, of which
    only the digest is kept; `last_seq` is the last of its numbered reports the hub applied.
    """

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="agents")
    name = models.CharField(max_length=100)
    digest = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=12)  # the token's first characters, to tell agents apart
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    last_address = models.GenericIPAddressField(null=True, blank=True)
    version = models.CharField(max_length=60, blank=True)
    last_seq = models.BigIntegerField(default=0)
    # A random id the agent keeps with its state: a new one means it lost that state (a new
    # SD card, a reinstall), so its numbering starts again.
    instance = models.CharField(max_length=64, blank=True)
    # The agent still holds reports from a time it could not reach the hub: what the hub
    # knows of its printers is history until they are in.
    catching_up = models.BooleanField(default=False)

    class Meta:
        ordering = ["lab", "name"]

    def __str__(self) -> str:
        return f"agent {self.name} ({self.lab})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class AgentCommand(models.Model):
    """One thing the hub asks an agent to do to one printer. Delivered with every sync
    until the agent answers it (the agent runs each command id once); withdrawn only
    while never delivered, so a command the agent may be running is never taken back."""

    class Action(models.TextChoices):
        START = "start", "Upload and start"
        PAUSE = "pause", "Pause"
        RESUME = "resume", "Resume"
        CANCEL = "cancel", "Cancel"
        CONNECT = "connect", "Connect"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for the agent"
        DELIVERED = "delivered", "Delivered"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        WITHDRAWN = "withdrawn", "Withdrawn before delivery"

    OPEN = (Status.PENDING, Status.DELIVERED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey(LabAgent, on_delete=models.CASCADE, related_name="commands")
    machine = models.ForeignKey(Machine, on_delete=models.CASCADE, related_name="agent_commands")
    action = models.CharField(max_length=10, choices=Action.choices)
    remote_name = models.CharField(max_length=255, blank=True)
    gcode_sha256 = models.CharField(max_length=64, blank=True)
    gcode_size = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    message = models.CharField(max_length=500, blank=True)
    retryable = models.BooleanField(default=False)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["agent", "status"], name="agentcommand_agent_open")]

    def __str__(self) -> str:
        return f"{self.action} on {self.machine_id} ({self.status})"


class Qualification(models.Model):
    """A manager's record that a member is trained for one machine or a kind of machine."""

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="qualifications")
    member = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="qualifications"
    )
    machine = models.ForeignKey(
        Machine, on_delete=models.CASCADE, null=True, blank=True, related_name="qualifications"
    )
    kind = models.CharField(max_length=20, choices=Machine.Kind.choices, blank=True)
    trained_on = models.DateField()
    trainer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    expires_on = models.DateField(null=True, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["lab", "member__username", "-trained_on"]
        constraints = [
            # Exactly one of: a machine, a kind.
            models.CheckConstraint(
                condition=(Q(machine__isnull=False) & Q(kind="")) | (Q(machine__isnull=True) & ~Q(kind="")),
                name="qualification_machine_or_kind",
            ),
            models.CheckConstraint(
                condition=Q(expires_on__isnull=True) | Q(expires_on__gte=models.F("trained_on")),
                name="qualification_expires_after_training",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.member} trained on {self.machine or self.get_kind_display()}"

    def covers(self, machine: Machine) -> bool:
        return self.machine_id == machine.pk or (self.machine_id is None and self.kind == machine.kind)

    def valid_on(self, day) -> bool:
        return self.trained_on <= day and (self.expires_on is None or day <= self.expires_on)


class TsTzRange(Func):
    function = "TSTZRANGE"
    output_field = DateTimeRangeField()


class TimelineExclusion(ExclusionConstraint):
    """An exclusion constraint on PostgreSQL, nothing elsewhere.

    The model state (and so every migration) is the same on every database; only the
    SQL differs. SQLite has no exclusion constraints: there the services' write path,
    which takes the database's write lock before it checks for overlaps, is the guard.
    """

    def _postgres(self, schema_editor) -> bool:
        return schema_editor.connection.vendor == "postgresql"

    def constraint_sql(self, model, schema_editor):
        return super().constraint_sql(model, schema_editor) if self._postgres(schema_editor) else None

    def create_sql(self, model, schema_editor):
        return super().create_sql(model, schema_editor) if self._postgres(schema_editor) else None

    def remove_sql(self, model, schema_editor):
        return super().remove_sql(model, schema_editor) if self._postgres(schema_editor) else None

    def validate(self, model, instance, exclude=None, using="default"):
        if connections[using].vendor == "postgresql":
            super().validate(model, instance, exclude=exclude, using=using)


class Booking(models.Model):
    """One entry of a machine's timeline, over [start, end) in UTC."""

    class Kind(models.TextChoices):
        BOOKING = "booking", "Booking"
        MAINTENANCE = "maintenance", "Maintenance"
        # A print job on the machine (machines/printing/dispatch.py): one timeline for people and jobs.
        PRINT_JOB = "print_job", "Print job"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for approval"
        APPROVED = "approved", "Confirmed"
        REFUSED = "refused", "Refused"
        CANCELLED = "cancelled", "Cancelled"

    # Rows in these states hold their slot; the others are history.
    ACTIVE = (Status.PENDING, Status.APPROVED)

    machine = models.ForeignKey(Machine, on_delete=models.CASCADE, related_name="bookings")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.BOOKING)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.APPROVED)
    member = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="bookings"
    )
    start = models.DateTimeField()
    end = models.DateTimeField()
    note = models.CharField(max_length=500, blank=True, help_text="What it is for.")
    reason = models.CharField(
        max_length=500, blank=True, help_text="Why it was refused, cancelled or blocked."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=now)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    # Set when the machine broke down or went into maintenance under this booking: a
    # manager decides whether it is cancelled or kept.
    needs_decision = models.BooleanField(default=False)
    start_checked_at = models.DateTimeField(null=True, blank=True)
    # Priced bookings (machines/accounting.py): the credit held at booking, the cost settled.
    held_amount = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal(0))
    cost = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)

    class Meta:
        ordering = ["start"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=models.F("start")), name="booking_ends_after_start"),
            models.CheckConstraint(
                condition=~Q(kind="booking") | Q(member__isnull=False), name="booking_has_member"
            ),
            TimelineExclusion(
                name="booking_no_overlap",
                expressions=[
                    ("machine", RangeOperators.EQUAL),
                    (TsTzRange("start", "end", RangeBoundary()), RangeOperators.OVERLAPS),
                ],
                condition=Q(status__in=["pending", "approved"]),
                violation_error_message="This machine is already booked at that time.",
            ),
        ]
        indexes = [
            # Active rows of one machine never overlap, so sorted by start they are also
            # sorted by end: selectors.timeline_between reads a window off this index.
            models.Index(
                fields=["machine", "start"],
                condition=Q(status__in=["pending", "approved"]),
                name="booking_active_machine_start",
            ),
            models.Index(fields=["member", "start"], name="booking_member_start"),
            # On PostgreSQL only, and so not listed here: booking_active_period, a GiST index
            # on the active rows' periods (migration 0011) for reads across all machines.
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.machine} {self.start:%Y-%m-%d %H:%M}–{self.end:%H:%M} UTC"

    @property
    def booking_member(self) -> User:
        """The member a booking is for. Only rows of kind `booking` have one
        (`booking_has_member`); maintenance and print-job rows have none."""
        if self.member is None:
            raise LookupError(f"timeline row {self.pk} is not a member's booking")
        return self.member

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def duration(self):
        return self.end - self.start


class CalendarFeed(models.Model):
    """An iCalendar feed behind an unguessable URL: a lab's, a machine's or a member's own.

    The token is kept as is (not hashed): it is a read-only capability that its owner
    must be able to see again, like a calendar app's secret address. Lab and machine feeds
    stop working when their owner leaves the lab; any feed can be reset.
    """

    class Scope(models.TextChoices):
        LAB = "lab", "Lab"
        MACHINE = "machine", "Machine"
        MEMBER = "member", "My bookings"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="calendar_feeds"
    )
    scope = models.CharField(max_length=10, choices=Scope.choices)
    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    machine = models.ForeignKey(Machine, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    token = models.CharField(max_length=64, unique=True, default=new_feed_token)
    created_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["owner"], condition=Q(scope="member"), name="calendar_feed_one_member"
            ),
            models.UniqueConstraint(
                fields=["owner", "lab"], condition=Q(scope="lab"), name="calendar_feed_one_lab"
            ),
            models.UniqueConstraint(
                fields=["owner", "machine"], condition=Q(scope="machine"), name="calendar_feed_one_machine"
            ),
            models.CheckConstraint(
                condition=Q(scope="member", lab__isnull=True, machine__isnull=True)
                | Q(scope="lab", lab__isnull=False, machine__isnull=True)
                | Q(scope="machine", lab__isnull=False, machine__isnull=False),
                name="calendar_feed_scope_matches",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scope} feed of {self.owner}"


# -- the print queue (docs/print-queue.md) -------------------------------------------------------


class PrintSettings(models.Model):
    """How a lab runs its print queue. A lab without a row has the defaults."""

    class Slicer(models.TextChoices):
        PRUSA_SLICER = "prusa-slicer", "PrusaSlicer"
        NONE = "none", "No slicer: G-code only"

    lab = models.OneToOneField(Lab, on_delete=models.CASCADE, primary_key=True, related_name="print_settings")
    requires_approval = models.BooleanField(
        default=False, help_text="A manager approves each member's job before it is queued."
    )
    max_active_jobs = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Jobs a member may have in the queue or on a printer at once; empty: no limit.",
    )
    weekly_print_minutes = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Estimated print minutes a member may submit per lab week; empty: no limit.",
    )
    slicer = models.CharField(max_length=20, choices=Slicer.choices, default=Slicer.PRUSA_SLICER)

    class FailedPrints(models.TextChoices):
        REFUND = "refund", "Refunded: the member pays nothing for a failed print"
        CHARGE = "charge", "Charged: the member pays what was used"

    # Prices (docs/labs.md). Money is Decimal in the lab's currency; all zero: a free lab.
    currency = models.CharField(max_length=3, default="EUR", validators=[currency_validator])
    price_per_job = models.DecimalField(
        max_digits=10, decimal_places=2, default=Decimal(0), validators=[MinValueValidator(Decimal(0))]
    )
    price_per_machine_hour = models.DecimalField(
        max_digits=10, decimal_places=2, default=Decimal(0), validators=[MinValueValidator(Decimal(0))]
    )
    # Prepaid credits: submissions hold the estimate, the end of the print settles it.
    credits_enabled = models.BooleanField(default=False)
    overrun_tolerance_percent = models.PositiveSmallIntegerField(
        default=10,
        validators=[MaxValueValidator(1000)],
        help_text="A print costing more than its hold is charged up to this much more; the lab absorbs the rest.",
    )
    failed_prints = models.CharField(max_length=10, choices=FailedPrints.choices, default=FailedPrints.REFUND)
    # Whether a print may run past closing time (no one there to watch it).
    unattended_overnight = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"print settings of {self.lab}"


class MaterialPrice(models.Model):
    """What a gram of one material costs at a lab, and its density (for estimates made
    from a mesh's volume before slicing)."""

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="material_prices")
    material = models.CharField(max_length=40)
    price_per_gram = models.DecimalField(
        max_digits=10, decimal_places=4, default=Decimal(0), validators=[MinValueValidator(Decimal(0))]
    )
    density_g_cm3 = models.DecimalField(
        max_digits=5,
        decimal_places=3,
        default=Decimal("1.240"),
        validators=[MinValueValidator(Decimal("0.1")), MaxValueValidator(Decimal("25"))],
    )

    class Meta:
        ordering = ["lab", "material"]
        constraints = [
            models.UniqueConstraint(fields=["lab", "material"], name="material_price_unique_per_lab"),
            models.CheckConstraint(condition=Q(price_per_gram__gte=0), name="material_price_not_negative"),
            models.CheckConstraint(condition=Q(density_g_cm3__gt=0), name="material_density_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.material} at {self.lab}"


class Spool(models.Model):
    """A spool of filament in a lab's stock, maybe loaded on a printer; prints use it up."""

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="spools")
    material = models.CharField(max_length=40)
    colour = models.CharField(max_length=40, blank=True)
    initial_g = models.DecimalField(
        max_digits=8, decimal_places=1, validators=[MinValueValidator(Decimal(0))]
    )
    remaining_g = models.DecimalField(
        max_digits=8, decimal_places=1, validators=[MinValueValidator(Decimal(0))]
    )
    low_stock_g = models.DecimalField(
        max_digits=8, decimal_places=1, default=Decimal(100), validators=[MinValueValidator(Decimal(0))]
    )
    printer = models.OneToOneField(
        "Printer", null=True, blank=True, on_delete=models.SET_NULL, related_name="spool"
    )
    created_at = models.DateTimeField(default=now)
    low_stock_notified_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["lab", "material", "colour", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(remaining_g__gte=0), name="spool_remaining_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.material} {self.colour} spool ({self.remaining_g} g) at {self.lab}"


class CreditAccount(models.Model):
    """A member's prepaid balance at a lab. `held` is reserved by jobs and bookings not yet
    settled; the database refuses a balance below what is held (and so below zero), so
    racing debits can never overdraw it."""

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="credit_accounts")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="credit_accounts"
    )
    balance = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal(0))
    held = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal(0))

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["lab", "user"], name="credit_account_unique"),
            models.CheckConstraint(condition=Q(held__gte=0), name="credit_held_not_negative"),
            models.CheckConstraint(
                condition=Q(balance__gte=models.F("held")), name="credit_balance_covers_held"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} at {self.lab}: {self.balance} ({self.held} held)"


class CreditEntry(models.Model):
    """One movement of a credit account: the ledger, never edited, exported monthly."""

    class Kind(models.TextChoices):
        TOP_UP = "top_up", "Top-up"
        HOLD = "hold", "Hold"
        RELEASE = "release", "Hold released"
        CHARGE = "charge", "Charge"
        ABSORBED = "absorbed", "Absorbed by the lab"
        REFUND = "refund", "Refund"
        ADJUSTMENT = "adjustment", "Adjustment"

    account = models.ForeignKey(CreditAccount, on_delete=models.CASCADE, related_name="entries")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    # Signed: what the movement did to the balance (charges negative) or, for holds and
    # releases, to the held amount.
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    balance_after = models.DecimalField(max_digits=12, decimal_places=2)
    held_after = models.DecimalField(max_digits=12, decimal_places=2)
    job = models.ForeignKey(
        "PrintJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="credit_entries"
    )
    booking = models.ForeignKey(
        Booking, null=True, blank=True, on_delete=models.SET_NULL, related_name="credit_entries"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} ({self.account})"


class Printer(models.Model):
    """A machine's place in the print queue: what is loaded, how jobs are sliced for it,
    and what its driver last said. A machine without one takes no queued jobs.

    The observed fields (`state` … `seen_at`) are written by the poller and the send
    task only; for a machine without network control they are the operator's record.
    """

    class AfterPrint(models.TextChoices):
        CONFIRM = "confirm", "Wait until someone confirms the bed is clear"
        AUTO = "auto", "Take the next job at once (the part is removed automatically)"

    machine = models.OneToOneField(
        Machine, on_delete=models.CASCADE, primary_key=True, related_name="printer"
    )
    accepts_jobs = models.BooleanField(default=True)
    material = models.CharField(max_length=40, default="PLA", help_text="Material loaded now, e.g. PLA.")
    colour = models.CharField(max_length=40, blank=True, help_text="Colour loaded now, e.g. black.")
    nozzle_mm = models.DecimalField(max_digits=4, decimal_places=2, default=0.4)
    profile_name = models.CharField(max_length=200, blank=True, help_text="e.g. 'MK4 0.2 mm PLA'.")
    slicer_profile = models.TextField(
        blank=True, help_text="PrusaSlicer configuration (.ini) used to slice jobs for this machine."
    )
    after_print = models.CharField(max_length=10, choices=AfterPrint.choices, default=AfterPrint.CONFIRM)
    # Where the print server finds the printer (OctoPrint's serial port, e.g. /dev/ttyACM0
    # or VIRTUAL); empty: the print server's own choice.
    serial_port = models.CharField(max_length=100, blank=True)
    baudrate = models.PositiveIntegerField(null=True, blank=True)
    # What the printer said last (machines.printing.drivers.PrinterState values).
    state = models.CharField(max_length=20, default="unknown")
    progress = models.FloatField(null=True, blank=True)
    job_name = models.CharField(max_length=255, blank=True)
    temperatures = models.JSONField(default=dict, blank=True)
    message = models.CharField(max_length=500, blank=True)
    seen_at = models.DateTimeField(null=True, blank=True, help_text="Last time the printer answered.")
    state_changed_at = models.DateTimeField(null=True, blank=True)
    # False from the moment a print leaves something on the bed until a person says it is clear.
    bed_clear = models.BooleanField(default=True)
    bed_note = models.CharField(max_length=500, blank=True)
    # A poller holds the printer until then; a poller that died lets it go by itself.
    poll_lease_until = models.DateTimeField(null=True, blank=True)
    connect_tried_at = models.DateTimeField(null=True, blank=True)
    # For a printer via agent: the status its agent reported last, as sent (validated),
    # with `observed_at`; the agent driver hands it to the poller like a direct answer.
    agent_report = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(nozzle_mm__gt=0), name="printer_nozzle_positive"),
        ]

    def __str__(self) -> str:
        return f"printer {self.machine}"

    @property
    def profile_key(self) -> str:
        """Identifies the G-code this printer needs: same profile and bed, same G-code."""
        m = self.machine
        text = f"{self.slicer_profile}\n{m.work_x_mm}x{m.work_y_mm}x{m.work_z_mm}\n{self.nozzle_mm:.2f}\n"
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def build_volume(self) -> tuple[float, float, float] | None:
        m = self.machine
        if m.work_x_mm and m.work_y_mm and m.work_z_mm:
            return (float(m.work_x_mm), float(m.work_y_mm), float(m.work_z_mm))
        return None


class PrintJob(models.Model):
    """A part to make: a file pinned at a commit (or an uploaded G-code), for a lab.

    The job moves through `status` by claims only (conditional updates, see
    machines/printing/jobs.py). While it is on a printer it names
    the machine, and at most one job per machine is on it (`print_job_one_per_printer`).
    """

    class Status(models.TextChoices):
        PREPARING = "preparing", "Preparing (slicing)"
        PENDING_APPROVAL = "pending_approval", "Waiting for approval"
        REFUSED = "refused", "Refused"
        QUEUED = "queued", "Queued"
        DISPATCHING = "dispatching", "Sending to the printer"
        AWAITING_OPERATOR = "awaiting_operator", "Waiting for an operator to start it"
        PRINTING = "printing", "Printing"
        PAUSED = "paused", "Paused"
        PRINTER_LOST = "printer_lost", "Printer lost"
        AWAITING_REMOVAL = "awaiting_removal", "Printed: awaiting removal"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class FileKind(models.TextChoices):
        MESH = "mesh", "Mesh (sliced by the hub)"
        GCODE = "gcode", "G-code"

    class Priority(models.IntegerChoices):
        LOW = 0, "Low"
        NORMAL = 1, "Normal"
        HIGH = 2, "High"
        URGENT = 3, "Urgent"

    # A job in one of these occupies its machine.
    ON_PRINTER = (
        "dispatching",
        "awaiting_operator",
        "printing",
        "paused",
        "printer_lost",
        "awaiting_removal",
    )
    OPEN = ("preparing", "pending_approval", "queued", *ON_PRINTER)
    FINAL = ("refused", "done", "failed", "cancelled")

    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="print_jobs")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="print_jobs")
    file_kind = models.CharField(max_length=10, choices=FileKind.choices)
    # From a design: pinned to a commit. The names survive the design's deletion.
    design = models.ForeignKey(
        "designs.Design", on_delete=models.SET_NULL, null=True, blank=True, related_name="print_jobs"
    )
    design_name = models.CharField(max_length=300, blank=True, help_text="owner/slug")
    path = models.CharField(
        max_length=4096, help_text="File path in the design, or the uploaded file's name."
    )
    rev = models.CharField(
        max_length=255, blank=True, help_text="What the member asked for (branch, tag, sha)."
    )
    commit_sha = models.CharField(max_length=40, blank=True)
    blob_sha = models.CharField(max_length=40, blank=True)
    # sha256 of the source file's content (an uploaded G-code is stored under it).
    source_sha = models.CharField(max_length=64, blank=True)
    machine_kind = models.CharField(
        max_length=20, choices=Machine.Kind.choices, default=Machine.Kind.FDM_PRINTER
    )
    material = models.CharField(max_length=40, default="PLA")
    colour = models.CharField(max_length=40, blank=True, help_text="Empty: any colour.")
    nozzle_mm = models.DecimalField(
        max_digits=4, decimal_places=2, null=True, blank=True, help_text="Empty: any."
    )
    copies = models.PositiveSmallIntegerField(default=1)
    copies_done = models.PositiveSmallIntegerField(default=0)
    priority = models.SmallIntegerField(choices=Priority.choices, default=Priority.NORMAL)
    notes = models.TextField(blank=True)
    needs_approval = models.BooleanField(default=False)
    # Part size for the fit check: the mesh's oriented box, or the G-code's extents (mm).
    size_mm = models.JSONField(null=True, blank=True)
    estimated_seconds = models.PositiveIntegerField(null=True, blank=True)
    filament_mm = models.FloatField(null=True, blank=True)
    filament_g = models.FloatField(null=True, blank=True)
    # Cost (machines/accounting.py), in `cost_currency`: estimated at submission (refined
    # when sliced), actual once the print ended; `held_amount` is the credit it holds.
    cost_currency = models.CharField(max_length=3, blank=True)
    estimated_cost = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    actual_cost = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    held_amount = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal(0))
    filament_g_used = models.FloatField(null=True, blank=True)

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PREPARING)
    reason = models.TextField(blank=True, help_text="Why it was refused, failed or cancelled.")
    submitted_at = models.DateTimeField(default=now)
    queued_at = models.DateTimeField(null=True, blank=True, help_text="When it last entered the queue.")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Preparation lease: a worker slicing the job holds it until then.
    prepare_attempts = models.PositiveSmallIntegerField(default=0)
    prepare_lease_until = models.DateTimeField(null=True, blank=True)

    # The current (or last) print.
    machine = models.ForeignKey(
        Machine, on_delete=models.SET_NULL, null=True, blank=True, related_name="print_jobs"
    )
    booking = models.ForeignKey(Booking, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    gcode = models.ForeignKey(
        "PrintGcode", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # New for every dispatch: a send task or sweeper acting on an older dispatch changes nothing.
    dispatch_token = models.CharField(max_length=32, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    remote_name = models.CharField(max_length=255, blank=True)
    progress = models.FloatField(null=True, blank=True)
    print_started_at = models.DateTimeField(null=True, blank=True)
    print_ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-submitted_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["machine"],
                condition=Q(
                    status__in=[
                        "dispatching",
                        "awaiting_operator",
                        "printing",
                        "paused",
                        "printer_lost",
                        "awaiting_removal",
                    ]
                ),
                name="print_job_one_per_printer",
            ),
            models.CheckConstraint(
                condition=~Q(
                    status__in=[
                        "dispatching",
                        "awaiting_operator",
                        "printing",
                        "paused",
                        "printer_lost",
                        "awaiting_removal",
                    ]
                )
                | Q(machine__isnull=False),
                name="print_job_on_printer_has_machine",
            ),
            models.CheckConstraint(
                condition=Q(copies__gte=1) & Q(copies__lte=100), name="print_job_copies_range"
            ),
            models.CheckConstraint(
                condition=Q(copies_done__lte=models.F("copies")), name="print_job_copies_done"
            ),
        ]
        indexes = [
            # The dispatcher's read: queued jobs of a lab for a material, best first.
            models.Index(
                fields=["lab", "machine_kind", "material", "-priority", "queued_at"],
                condition=Q(status="queued"),
                name="print_job_queue",
            ),
            models.Index(fields=["owner", "-submitted_at"], name="print_job_owner_recent"),
            models.Index(fields=["status", "claimed_at"], name="print_job_status_claimed"),
        ]

    def __str__(self) -> str:
        return f"print job {self.pk} ({self.filename})"

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN

    @property
    def on_printer(self) -> bool:
        return self.status in self.ON_PRINTER

    @property
    def printer_machine(self) -> Machine:
        """The machine of a job that is (or was) given to a printer. Code that reaches for
        it holds such a job (`print_job_on_printer_has_machine`); one without is a bug."""
        if self.machine is None:
            raise LookupError(f"print job {self.pk} was never given to a printer")
        return self.machine

    @property
    def printer_gcode(self) -> PrintGcode:
        """The G-code chosen when the job was claimed for a printer (see printer_machine)."""
        if self.gcode is None:
            raise LookupError(f"print job {self.pk} has no G-code chosen")
        return self.gcode


class PrintGcode(models.Model):
    """The G-code a job prints on printers of one profile (`profile_key`; "" for a job
    that came as G-code, which any printer takes). The file is stored by its sha256."""

    job = models.ForeignKey(PrintJob, on_delete=models.CASCADE, related_name="gcodes")
    profile_key = models.CharField(max_length=64, blank=True)
    profile_name = models.CharField(max_length=200, blank=True)
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField()
    slicer = models.CharField(
        max_length=100, blank=True, help_text="e.g. 'PrusaSlicer 2.5.0'; empty for uploads."
    )
    estimated_seconds = models.PositiveIntegerField(null=True, blank=True)
    estimate_source = models.CharField(max_length=20, blank=True, help_text="slicer, metadata or parsed.")
    filament_mm = models.FloatField(null=True, blank=True)
    filament_g = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "profile_key"], name="print_gcode_one_per_profile")
        ]

    def __str__(self) -> str:
        return f"G-code {self.sha256[:10]} of job {self.job_id}"


class PrintRecord(models.Model):
    """What was made, from what, where, by whom: written when a print ends, kept for good.

    The provenance of a physical part: from the part back to the exact commit. Names are
    copied so the record outlives the design, the machine and the account.
    """

    class Result(models.TextChoices):
        DONE = "done", "Printed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        INTERRUPTED = "interrupted", "Interrupted (printer lost)"

    # Kept when the job goes with its owner's account (hub.accounts): the lab's record of
    # what its machines made outlives the person's queue entry, without their name.
    job = models.ForeignKey(PrintJob, on_delete=models.SET_NULL, null=True, related_name="records")
    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="print_records")
    machine = models.ForeignKey(Machine, on_delete=models.SET_NULL, null=True, related_name="print_records")
    machine_name = models.CharField(max_length=200)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    owner_name = models.CharField(max_length=150)
    design = models.ForeignKey(
        "designs.Design", on_delete=models.SET_NULL, null=True, blank=True, related_name="print_records"
    )
    design_name = models.CharField(max_length=300, blank=True)
    path = models.CharField(max_length=4096)
    commit_sha = models.CharField(max_length=40, blank=True)
    blob_sha = models.CharField(max_length=40, blank=True)
    gcode_sha = models.CharField(max_length=64)
    slicer = models.CharField(max_length=100, blank=True)
    profile_name = models.CharField(max_length=200, blank=True)
    profile_key = models.CharField(max_length=64, blank=True)
    material = models.CharField(max_length=40, blank=True)
    colour = models.CharField(max_length=40, blank=True)
    copy = models.PositiveSmallIntegerField(default=1)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField()
    result = models.CharField(max_length=20, choices=Result.choices)
    reason = models.TextField(blank=True)
    # What the print used and cost (the lab's monthly report).
    grams = models.FloatField(null=True, blank=True)
    seconds = models.PositiveIntegerField(null=True, blank=True)
    cost = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)
    removed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-ended_at", "-pk"]
        indexes = [models.Index(fields=["design", "commit_sha"], name="print_record_design_commit")]

    def __str__(self) -> str:
        return f"{self.get_result_display()}: {self.path} on {self.machine_name}"
