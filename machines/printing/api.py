"""The print queue REST API: validate input → call one service or selector → describe output."""

from __future__ import annotations

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from designs.selectors import design_get
from hub.auth import signed_in_user, viewer
from hub.exceptions import NotFound, ValidationError
from hub.params import choice as param_choice
from hub.params import flag as param_flag
from hub.permissions import AUTHENTICATED
from hub.schema import errors
from machines.api import LabContextMixin
from machines.models import PrintJob, PrintRecord
from machines.printing import selectors as ps
from machines.printing import services as printing
from machines.printing.files import gcode_path
from machines.printing.serializers import (
    CommitPrintsOutput,
    JobBriefOutput,
    PrinterInput,
    PrinterOutput,
    PrintJobOutput,
    PrintJobRecordInput,
    PrintJobSubmitInput,
    PrintRecordOutput,
    PrintSettingsInput,
    PrintSettingsOutput,
)
from machines.selectors import lab_get, lab_role, require_member

STATUS_PARAM = OpenApiParameter(
    "status", str, enum=PrintJob.Status.values, description="Only jobs in this state."
)


class PrintSettingsApi(LabContextMixin, APIView):
    @extend_schema(responses=PrintSettingsOutput)
    def get(self, request: Request, lab: str) -> Response:
        return Response(PrintSettingsOutput(ps.print_settings_of(self.get_lab())).data)

    @extend_schema(request=PrintSettingsInput, responses=PrintSettingsOutput)
    def patch(self, request: Request, lab: str) -> Response:
        user = signed_in_user(request)
        data = PrintSettingsInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        row = printing.print_settings_update(lab=self.get_lab(), actor=user, **data.validated_data)
        return Response(PrintSettingsOutput(row).data)


def _current_jobs(printers) -> dict:
    ids = [p.pk for p in printers]
    jobs = PrintJob.objects.filter(machine_id__in=ids, status__in=PrintJob.ON_PRINTER).select_related(
        "owner", "gcode"
    )
    return {job.machine_id: job for job in jobs}


class PrinterListApi(LabContextMixin, APIView):
    @extend_schema(
        responses=PrinterOutput(many=True), description="The lab's printers: state, temperatures, job."
    )
    def get(self, request: Request, lab: str) -> Response:
        the_lab = self.get_lab()
        printers = list(ps.printers_of_lab(the_lab))
        context = {"current_jobs": _current_jobs(printers), "show_remote_text": _manages(the_lab, request)}
        return Response(PrinterOutput(printers, many=True, context=context).data)


class PrinterDetailApi(LabContextMixin, APIView):
    def _printer(self):
        printer = ps.printer_of(self.get_machine())
        if printer is None:
            raise NotFound(f"{self.get_machine().name} is not in the print queue.")
        return printer

    @extend_schema(responses=PrinterOutput)
    def get(self, request: Request, lab: str, machine: str) -> Response:
        context = {"show_remote_text": _manages(self.get_lab(), request)}
        return Response(PrinterOutput(self._printer(), context=context).data)

    @extend_schema(
        request=PrinterInput,
        responses=PrinterOutput,
        description="Put the machine in the print queue, or change what is loaded and its profile.",
    )
    def put(self, request: Request, lab: str, machine: str) -> Response:
        user = signed_in_user(request)
        data = PrinterInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        printer = printing.printer_configure(machine=self.get_machine(), actor=user, **data.validated_data)
        # printer_configure admits managers only.
        return Response(PrinterOutput(printer, context={"show_remote_text": True}).data)


class PrinterClearedApi(LabContextMixin, APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(
        request=None,
        responses={200: PrinterOutput, **errors(409)},
        description="Confirm the bed is clear: the finished job is done and the printer takes the next one.",
    )
    def post(self, request: Request, lab: str, machine: str) -> Response:
        user = signed_in_user(request)
        printer = printing.printer_confirm_cleared(machine=self.get_machine(), actor=user)
        context = {"show_remote_text": _manages(self.get_lab(), request)}
        return Response(PrinterOutput(printer, context=context).data)


class LabPrintJobListApi(LabContextMixin, generics.ListAPIView):
    # Only for the schema generator, which reads the model from it; get_queryset decides.
    queryset = PrintJob.objects.none()
    """The lab's queue. Managers see every detail; members see who prints what, where, and how far."""

    permission_classes = AUTHENTICATED

    def get_serializer_class(self):
        user = signed_in_user(self.request)
        if getattr(self, "swagger_fake_view", False):
            return JobBriefOutput
        return PrintJobOutput if lab_role(self.get_lab(), user) == "manager" else JobBriefOutput

    def get_queryset(self):
        user = signed_in_user(self.request)
        if getattr(self, "swagger_fake_view", False):
            return PrintJob.objects.none()
        the_lab = self.get_lab()
        require_member(the_lab, user)
        rows = ps.jobs_of_lab(the_lab)
        status = param_choice(self.request.query_params, name="status", choices=PrintJob.Status.values)
        if status:
            rows = rows.filter(status=status)
        elif param_flag(self.request.query_params, name="open"):
            rows = rows.filter(status__in=PrintJob.OPEN)
        return rows.order_by("-submitted_at", "-pk")

    @extend_schema(
        parameters=[STATUS_PARAM, OpenApiParameter("open", bool, description="Only jobs not finished yet.")],
        responses={200: PrintJobOutput(many=True), **errors(403)},
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


class PrintJobListApi(generics.ListAPIView):
    # Only for the schema generator, which reads the model from it; get_queryset decides.
    queryset = PrintJob.objects.none()
    """Your print jobs, newest first; POST sends a part to a lab's queue."""

    serializer_class = PrintJobOutput
    permission_classes = AUTHENTICATED
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def get_queryset(self):
        user = signed_in_user(self.request)
        if getattr(self, "swagger_fake_view", False):
            return PrintJob.objects.none()
        rows = ps.jobs_of_member(user).order_by("-submitted_at", "-pk")
        status = param_choice(self.request.query_params, name="status", choices=PrintJob.Status.values)
        return rows.filter(status=status) if status else rows

    @extend_schema(parameters=[STATUS_PARAM])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request={"application/json": PrintJobSubmitInput, "multipart/form-data": PrintJobSubmitInput},
        responses={201: PrintJobOutput, **errors(404, 409)},
        description="A design file pinned at a commit (design, path, rev), or an uploaded G-code (multipart `file`).",
    )
    def post(self, request: Request) -> Response:
        user = signed_in_user(request)
        data = PrintJobSubmitInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        the_lab = lab_get(slug=values.pop("lab"))
        design_name = values.pop("design", None)
        design = None
        if design_name:
            owner, _, slug = design_name.partition("/")
            if not owner or not slug:
                raise ValidationError("'design' must be owner/slug.")
            design = design_get(user=user, owner=owner, slug=slug)
        job = printing.print_job_submit(
            lab=the_lab, owner=user, design=design, upload=values.pop("file", None), **values
        )
        job = ps.job_get(job_id=job.pk, user=user)
        return Response(PrintJobOutput(job, context={"request": request}).data, status=201)


class PrintJobDetailApi(APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(responses=PrintJobOutput)
    def get(self, request: Request, job_id: int) -> Response:
        user = signed_in_user(request)
        job = ps.job_get(job_id=job_id, user=user)
        return Response(PrintJobOutput(job, context={"request": request}).data)


class PrintJobActionApi(APIView):
    """POST print-jobs/{id}/{action}/: approve, refuse, cancel, pause, resume, or an
    operator's started / finished / failed (printers without network control)."""

    permission_classes = AUTHENTICATED
    action: str = ""

    @extend_schema(request=PrintJobRecordInput, responses={200: PrintJobOutput, **errors(409)})
    def post(self, request: Request, job_id: int) -> Response:
        actor = signed_in_user(request)
        job = ps.job_get(job_id=job_id, user=actor)
        data = PrintJobRecordInput(data=request.data)
        data.is_valid(raise_exception=True)
        reason = data.validated_data["reason"]
        user = actor
        if self.action == "approve":
            job = printing.print_job_approve(job=job, actor=user)
        elif self.action == "refuse":
            job = printing.print_job_refuse(job=job, actor=user, reason=reason)
        elif self.action == "cancel":
            job = printing.print_job_cancel(job=job, actor=user, reason=reason)
        elif self.action in ("pause", "resume"):
            job = printing.print_job_pause(job=job, actor=user, resume=self.action == "resume")
        else:
            job = printing.print_job_record(job=job, actor=user, outcome=self.action, reason=reason)
        job = ps.job_get(job_id=job.pk, user=user)
        return Response(PrintJobOutput(job, context={"request": request}).data)


class PrintJobGcodeApi(APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(
        responses={
            (200, "text/x-gcode"): OpenApiTypes.BINARY,
            404: OpenApiResponse(description="No G-code yet"),
        },
        description="The G-code the job prints (to carry to a printer without network control).",
    )
    def get(self, request: Request, job_id: int):
        user = signed_in_user(request)
        job = ps.job_get(job_id=job_id, user=user)
        gcode = job.gcode or job.gcodes.order_by("pk").first()
        if gcode is None:
            raise NotFound("This job has no G-code yet.")
        response = FileResponse(
            gcode_path(gcode.sha256).open("rb"),
            content_type="text/x-gcode",
            as_attachment=True,
            filename=f"{job.pk}-{job.filename.rsplit('.', 1)[0]}.gcode",
        )
        response["X-Content-Type-Options"] = "nosniff"
        return response


class PrintRecordListApi(generics.ListAPIView):
    """What was made from which commit: provenance records you may see."""

    serializer_class = PrintRecordOutput

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return PrintRecord.objects.none()
        rows = ps.records_visible_to(viewer(self.request))
        params = self.request.query_params
        if params.get("design"):
            owner, _, slug = params["design"].partition("/")
            rows = rows.filter(design__owner__username=owner, design__slug__iexact=slug)
        if params.get("commit"):
            rows = rows.filter(commit_sha__startswith=params["commit"].lower())
        if params.get("lab"):
            rows = rows.filter(lab__slug=params["lab"])
        return rows.order_by("-ended_at", "-pk")

    @extend_schema(
        parameters=[
            OpenApiParameter("design", str, description="owner/slug"),
            OpenApiParameter("commit", str, description="A commit sha or its prefix."),
            OpenApiParameter("lab", str, description="Lab slug."),
        ]
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


class DesignPrintsApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "design",
                {"type": "string", "pattern": "^[^/]+/[^/]+$"},
                required=True,
                description="owner/slug",
            )
        ],
        responses={200: CommitPrintsOutput(many=True), **errors(404)},
        description="Per commit of a design: parts made and failed, and in how many labs.",
    )
    def get(self, request: Request) -> Response:
        owner, _, slug = (request.query_params.get("design") or "").partition("/")
        if not owner or not slug:
            raise ValidationError("Give design=owner/slug.")
        design = design_get(user=request.user, owner=owner, slug=slug)
        return Response(CommitPrintsOutput(ps.prints_per_commit(design), many=True).data)


def _manages(the_lab, request: Request) -> bool:
    return lab_role(the_lab, viewer(request)) == "manager"
