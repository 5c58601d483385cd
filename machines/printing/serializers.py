"""Input and output shapes of the print queue API. Inputs validate; outputs describe."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from django.db.models import QuerySet
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from hub.inputs import Input
from machines.models import LabAgent, Machine, MaterialPrice, Printer, PrintJob, PrintRecord, PrintSettings
from machines.printing import selectors as ps
from machines.printing.slicer import slicer_installed
from machines.printing.waiting import waiting_reasons
from machines.selectors import agent_contact


def _absolute(context: Mapping[str, Any], path: str) -> str:
    request = context.get("request")
    return request.build_absolute_uri(path) if request else path


class MaterialPriceOutput(serializers.ModelSerializer):
    class Meta:
        model = MaterialPrice
        fields = ["material", "price_per_gram", "density_g_cm3"]


class PrintSettingsOutput(serializers.ModelSerializer):
    lab = serializers.CharField(source="lab.slug")
    slicer_installed = serializers.SerializerMethodField()
    material_prices = serializers.SerializerMethodField()

    class Meta:
        model = PrintSettings
        fields = [
            "lab",
            "requires_approval",
            "max_active_jobs",
            "weekly_print_minutes",
            "slicer",
            "slicer_installed",
            "currency",
            "price_per_job",
            "price_per_machine_hour",
            "material_prices",
            "credits_enabled",
            "overrun_tolerance_percent",
            "failed_prints",
        ]

    @extend_schema_field(MaterialPriceOutput(many=True))
    def get_material_prices(self, row: PrintSettings) -> list[dict]:
        rows = MaterialPrice.objects.filter(lab_id=row.lab_id).order_by("material")
        return list(MaterialPriceOutput(rows, many=True).data)

    def get_slicer_installed(self, row: PrintSettings) -> bool:
        """Whether mesh jobs are taken: the lab names a slicer and the hub has it."""
        return row.slicer != PrintSettings.Slicer.NONE and slicer_installed()


class PrintSettingsInput(Input):
    refuse_empty = True
    requires_approval = serializers.BooleanField(required=False)
    max_active_jobs = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    weekly_print_minutes = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    slicer = serializers.ChoiceField(choices=PrintSettings.Slicer.choices, required=False)
    # Prices and credits: the service checks them (machines/printing/prices.py).
    currency = serializers.CharField(required=False, help_text="ISO 4217, e.g. EUR.")
    price_per_job = serializers.DecimalField(max_digits=14, decimal_places=6, required=False)
    price_per_machine_hour = serializers.DecimalField(max_digits=14, decimal_places=6, required=False)
    credits_enabled = serializers.BooleanField(required=False)
    overrun_tolerance_percent = serializers.IntegerField(required=False)
    failed_prints = serializers.ChoiceField(choices=PrintSettings.FailedPrints.choices, required=False)


class JobBriefOutput(serializers.ModelSerializer):
    """A job as every member of its lab sees it on the queue: no source, no notes."""

    owner = serializers.CharField(source="owner.username")
    filename = serializers.CharField()
    machine = serializers.SerializerMethodField()
    seconds_left = serializers.SerializerMethodField()
    waiting_reasons = serializers.SerializerMethodField()

    class Meta:
        model = PrintJob
        fields = [
            "id",
            "owner",
            "filename",
            "status",
            "waiting_reasons",
            "priority",
            "material",
            "colour",
            "copies",
            "copies_done",
            "estimated_seconds",
            "machine",
            "progress",
            "seconds_left",
            "submitted_at",
            "queued_at",
            "print_started_at",
            "cost_currency",
            "estimated_cost",
            "actual_cost",
        ]

    def get_machine(self, job: PrintJob) -> str | None:
        return job.machine.slug if job.machine is not None else None

    def get_seconds_left(self, job: PrintJob) -> int | None:
        return ps.seconds_left(job)

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_waiting_reasons(self, job: PrintJob) -> list[str]:
        """Why the job has not started yet, in the dispatcher's own words (empty: it is on a
        printer or finished, or nothing holds it back and it starts at the next round)."""
        # Worked out once for the whole list being written, not per job.
        known = cast("dict[str, Any]", self.context).setdefault("waiting_reasons", {})
        if job.pk not in known:
            listed = getattr(self.parent, "instance", None)
            rows = list(listed) if isinstance(listed, list | tuple | QuerySet) else [job]
            known.update(waiting_reasons(rows if job in rows else [job]))
        return known.get(job.pk, [])


class GcodeOutput(serializers.Serializer):
    sha256 = serializers.CharField()
    size = serializers.IntegerField()
    slicer = serializers.CharField()
    profile_name = serializers.CharField()
    estimated_seconds = serializers.IntegerField(allow_null=True)
    estimate_source = serializers.CharField()
    filament_mm = serializers.FloatField(allow_null=True)
    filament_g = serializers.FloatField(allow_null=True)


class PrintJobOutput(JobBriefOutput):
    lab = serializers.CharField(source="lab.slug")
    design = serializers.CharField(
        source="design_name", help_text="owner/slug; empty for an uploaded G-code."
    )
    machine_name = serializers.SerializerMethodField()
    nozzle_mm = serializers.DecimalField(max_digits=4, decimal_places=2, allow_null=True)
    gcode = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    web_url = serializers.SerializerMethodField()

    class Meta:
        model = PrintJob
        fields = [
            "id",
            "lab",
            "owner",
            "status",
            "waiting_reasons",
            "reason",
            "file_kind",
            "design",
            "path",
            "filename",
            "rev",
            "commit_sha",
            "blob_sha",
            "source_sha",
            "machine_kind",
            "material",
            "colour",
            "nozzle_mm",
            "copies",
            "copies_done",
            "priority",
            "notes",
            "needs_approval",
            "size_mm",
            "estimated_seconds",
            "filament_mm",
            "filament_g",
            "cost_currency",
            "estimated_cost",
            "actual_cost",
            "held_amount",
            "filament_g_used",
            "machine",
            "machine_name",
            "progress",
            "seconds_left",
            "gcode",
            "submitted_at",
            "queued_at",
            "decided_at",
            "print_started_at",
            "print_ended_at",
            "finished_at",
            "url",
            "web_url",
        ]

    def get_machine_name(self, job: PrintJob) -> str | None:
        return job.machine.name if job.machine is not None else None

    @extend_schema_field(GcodeOutput(allow_null=True))
    def get_gcode(self, job: PrintJob) -> dict | None:
        """The G-code being (or last) printed."""
        return GcodeOutput(job.gcode).data if job.gcode is not None else None

    def get_url(self, job: PrintJob) -> str:
        return _absolute(self.context, reverse("api-print-job", args=[job.pk]))

    def get_web_url(self, job: PrintJob) -> str:
        return _absolute(self.context, reverse("print-job", args=[job.pk]))


class PrintJobSubmitInput(Input):
    lab = serializers.CharField(help_text="The lab's slug.")
    design = serializers.CharField(required=False, help_text="owner/slug of the design (or upload `file`).")
    path = serializers.CharField(
        required=False, max_length=4096, help_text="File in the design: STL, 3MF, OBJ or G-code."
    )
    rev = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=255,
        help_text="Branch, tag or commit; pinned to its commit at submission. Default: the default branch.",
    )
    file = serializers.FileField(
        required=False, help_text="A G-code file to print (instead of a design file)."
    )
    material = serializers.CharField(max_length=40, default="PLA")
    colour = serializers.CharField(max_length=40, required=False, allow_blank=True, default="")
    nozzle_mm = serializers.DecimalField(
        max_digits=4, decimal_places=2, required=False, allow_null=True, default=None
    )
    copies = serializers.IntegerField(default=1, min_value=1, max_value=100)
    priority = serializers.ChoiceField(
        choices=PrintJob.Priority.choices,
        default=PrintJob.Priority.NORMAL,
        help_text="Above 1 (normal): managers only.",
    )
    notes = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    machine_kind = serializers.ChoiceField(choices=Machine.Kind.choices, default=Machine.Kind.FDM_PRINTER)

    def validate(self, data):
        if bool(data.get("design")) == bool(data.get("file")):
            raise serializers.ValidationError("Give either a design (with path) or a G-code file.")
        if data.get("design") and not data.get("path"):
            raise serializers.ValidationError({"path": "Say which file of the design to print."})
        return data


class PrintJobRecordInput(Input):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class CurrentJobOutput(serializers.Serializer):
    id = serializers.IntegerField()
    owner = serializers.CharField()
    filename = serializers.CharField()
    status = serializers.CharField()
    progress = serializers.FloatField(allow_null=True)
    seconds_left = serializers.IntegerField(allow_null=True)


def printer_summary(printer: Printer) -> str:
    """What a printer's state says to someone who does not manage the lab."""
    if printer.state == "offline":
        return "The printer does not answer."
    if printer.state == "error":
        return "The printer needs a manager's attention."
    return ""


class PrinterOutput(serializers.ModelSerializer):
    machine = serializers.CharField(source="machine.slug")
    machine_id = serializers.IntegerField(source="machine.pk")
    name = serializers.CharField(source="machine.name")
    lab = serializers.CharField(source="machine.lab.slug")
    machine_status = serializers.CharField(source="machine.status")
    build_volume = serializers.SerializerMethodField()
    networked = serializers.BooleanField(source="machine.has_connection")
    nozzle_mm = serializers.DecimalField(max_digits=4, decimal_places=2)
    current_job = serializers.SerializerMethodField()
    display_state = serializers.SerializerMethodField()

    class Meta:
        model = Printer
        fields = [
            "machine",
            "machine_id",
            "name",
            "lab",
            "machine_status",
            "build_volume",
            "networked",
            "accepts_jobs",
            "material",
            "colour",
            "nozzle_mm",
            "profile_name",
            "slicer_profile",
            "after_print",
            "serial_port",
            "baudrate",
            "state",
            "display_state",
            "progress",
            "job_name",
            "temperatures",
            "message",
            "seen_at",
            "state_changed_at",
            "bed_clear",
            "bed_note",
            "current_job",
        ]

    def to_representation(self, printer: Printer) -> dict:
        data = super().to_representation(printer)
        # The printer's own words (and the driver's, naming its address) are for the lab's
        # managers: the view says so in the context; everyone else gets a summary.
        if not self.context.get("show_remote_text"):
            data["message"] = printer_summary(printer)
        return data

    def get_build_volume(self, printer: Printer) -> list[float] | None:
        volume = printer.build_volume
        return list(volume) if volume else None

    def _job_on(self, printer: Printer) -> PrintJob | None:
        jobs = self.context.get("current_jobs")  # the view read them all at once
        if jobs is not None:
            return jobs.get(printer.pk)
        read = cast("dict[str, Any]", self.context).setdefault("jobs_read", {})
        if printer.pk not in read:
            read[printer.pk] = ps.active_job_on(printer.machine)
        return read[printer.pk]

    def get_display_state(self, printer: Printer) -> str:
        """The state to show: the job on the printer decides while there is one (never
        idle under a print or a part to collect); else the printer's own."""
        return ps.printer_card_state(printer, self._job_on(printer)).value

    @extend_schema_field(CurrentJobOutput(allow_null=True))
    def get_current_job(self, printer: Printer) -> dict | None:
        job = self._job_on(printer)
        if job is None:
            return None
        return {
            "id": job.pk,
            "owner": job.owner.username,
            "filename": job.filename,
            "status": job.status,
            "progress": job.progress,
            "seconds_left": ps.seconds_left(job),
        }


class PrinterInput(Input):
    accepts_jobs = serializers.BooleanField(required=False)
    material = serializers.CharField(max_length=40, required=False, help_text="Loaded now, e.g. PLA.")
    colour = serializers.CharField(max_length=40, required=False, allow_blank=True)
    nozzle_mm = serializers.DecimalField(max_digits=4, decimal_places=2, required=False)
    profile_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    slicer_profile = serializers.CharField(
        required=False, allow_blank=True, help_text="PrusaSlicer .ini text."
    )
    after_print = serializers.ChoiceField(choices=Printer.AfterPrint.choices, required=False)
    serial_port = serializers.CharField(max_length=100, required=False, allow_blank=True)
    baudrate = serializers.IntegerField(required=False, allow_null=True, min_value=1)


class PrintRecordOutput(serializers.ModelSerializer):
    lab = serializers.CharField(source="lab.slug")
    machine = serializers.CharField(source="machine_name")
    owner = serializers.CharField(source="owner_name")
    design = serializers.CharField(source="design_name")

    class Meta:
        model = PrintRecord
        fields = [
            "id",
            "job",
            "lab",
            "machine",
            "owner",
            "design",
            "path",
            "commit_sha",
            "blob_sha",
            "gcode_sha",
            "slicer",
            "profile_name",
            "material",
            "colour",
            "copy",
            "started_at",
            "ended_at",
            "result",
            "reason",
            "grams",
            "seconds",
            "cost",
            "currency",
            "removed_at",
        ]


class CommitPrintsOutput(serializers.Serializer):
    commit_sha = serializers.CharField()
    made = serializers.IntegerField(help_text="Parts printed successfully from this commit.")
    failed = serializers.IntegerField(help_text="Prints that failed, were cancelled or interrupted.")
    labs = serializers.IntegerField(help_text="Labs where it was made.")


# -- lab agents (machines/printing/agent_admin_api.py) ----------------------------------------


class AgentPrinterOutput(serializers.Serializer):
    id = serializers.IntegerField(help_text="The printer's id: `id` of its `[[printer]]` in agent.toml.")
    machine = serializers.CharField(source="slug")
    name = serializers.CharField()


class LabAgentOutput(serializers.ModelSerializer):
    lab = serializers.CharField(source="lab.slug")
    hint = serializers.CharField(help_text="The token's first characters, to tell agents apart.")
    active = serializers.BooleanField(source="is_active")
    silent = serializers.SerializerMethodField()
    printers = AgentPrinterOutput(source="machines", many=True, read_only=True)

    class Meta:
        model = LabAgent
        fields = [
            "id",
            "lab",
            "name",
            "hint",
            "active",
            "created_at",
            "revoked_at",
            "last_seen_at",
            "silent",
            "last_address",
            "version",
            "printers",
        ]

    def get_silent(self, agent: LabAgent) -> bool:
        """Not heard from for FABHUB_AGENT_SILENT_S (or never): its printers count as unreachable."""
        contact = agent_contact(agent)
        return contact is None or contact.state != "recent"


class LabAgentCreatedOutput(LabAgentOutput):
    token = serializers.SerializerMethodField()

    class Meta(LabAgentOutput.Meta):
        fields = [*LabAgentOutput.Meta.fields, "token"]

    def get_token(self, agent: LabAgent) -> str:
        """The agent's token, in this answer only: the hub keeps its digest, never the token."""
        return str(self.context["token"])


class LabAgentInput(Input):
    # Not trimmed here: the schema's maxLength is of the name as sent, and agent_create
    # trims it and refuses a blank one itself.
    name = serializers.CharField(
        max_length=100, trim_whitespace=False, help_text="e.g. 'Pi by the printers'."
    )


class MachineAgentInput(Input):
    agent = serializers.IntegerField(
        allow_null=True,
        min_value=1,
        max_value=2**63 - 1,
        help_text="The id of one of the lab's active agents, or null: driven directly by the hub.",
    )


class MachineAgentOutput(serializers.Serializer):
    machine = serializers.CharField(source="slug")
    machine_id = serializers.IntegerField(source="pk")
    agent = serializers.IntegerField(source="agent_id", allow_null=True)
    agent_name = serializers.SerializerMethodField()

    def get_agent_name(self, machine: Machine) -> str | None:
        return machine.agent.name if machine.agent is not None else None
