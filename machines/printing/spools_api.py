"""A lab's spools over the REST API: members read the stock, managers add, change,
archive, load and unload spools (machines/spools.py). Another lab's spool or printer is
a 404; impossible weights are a 400."""

from __future__ import annotations

from decimal import Decimal

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hub.auth import signed_in_user
from hub.exceptions import NotFound
from hub.inputs import Input
from hub.permissions import AUTHENTICATED
from hub.schema import errors
from machines import spools
from machines.api import LabContextMixin
from machines.models import Spool
from machines.printing import selectors as ps
from machines.selectors import machine_get, require_member, spool_get, spools_of_lab


def _grams(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=8, decimal_places=1, min_value=Decimal(0), max_value=spools.MAX_SPOOL_G, **kwargs
    )


class SpoolOutput(serializers.ModelSerializer):
    lab = serializers.CharField(source="lab.slug")
    initial_g = serializers.DecimalField(max_digits=8, decimal_places=1)
    remaining_g = serializers.DecimalField(max_digits=8, decimal_places=1)
    low_stock_g = serializers.DecimalField(max_digits=8, decimal_places=1)
    machine = serializers.SerializerMethodField()
    low = serializers.SerializerMethodField()

    class Meta:
        model = Spool
        fields = [
            "id",
            "lab",
            "material",
            "colour",
            "initial_g",
            "remaining_g",
            "low_stock_g",
            "low",
            "machine",
            "created_at",
            "low_stock_notified_at",
            "archived_at",
        ]

    def get_machine(self, spool: Spool) -> str | None:
        """The slug of the printer's machine it is loaded on; null: on the shelf."""
        return spool.printer.machine.slug if spool.printer is not None else None

    def get_low(self, spool: Spool) -> bool:
        return spool.remaining_g < spool.low_stock_g


class SpoolCreateInput(Input):
    material = serializers.CharField(max_length=spools.MATERIAL_MAX)
    colour = serializers.CharField(
        max_length=spools.MATERIAL_MAX, required=False, allow_blank=True, default=""
    )
    initial_g = _grams(help_text="The filament on a full spool, in grams.")
    remaining_g = _grams(required=False, allow_null=True, default=None, help_text="Default: full.")
    low_stock_g = _grams(required=False, default=Decimal(100), help_text="Managers are told below this.")


class SpoolUpdateInput(Input):
    refuse_empty = True
    material = serializers.CharField(max_length=spools.MATERIAL_MAX, required=False)
    colour = serializers.CharField(max_length=spools.MATERIAL_MAX, required=False, allow_blank=True)
    initial_g = _grams(required=False)
    remaining_g = _grams(required=False, help_text="A refill: the new weight.")
    low_stock_g = _grams(required=False)


class SpoolLoadInput(Input):
    machine = serializers.CharField(max_length=60, help_text="The slug of a printer of the same lab.")


class SpoolListApi(LabContextMixin, APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(
        responses={200: SpoolOutput(many=True), **errors(403)},
        description="The lab's spools in stock (members of the lab).",
    )
    def get(self, request: Request, lab: str) -> Response:
        the_lab = self.get_lab()
        require_member(the_lab, signed_in_user(request))
        return Response(SpoolOutput(spools_of_lab(the_lab).select_related("lab"), many=True).data)

    @extend_schema(request=SpoolCreateInput, responses={201: SpoolOutput})
    def post(self, request: Request, lab: str) -> Response:
        data = SpoolCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        spool = spools.spool_create(lab=self.get_lab(), actor=signed_in_user(request), **data.validated_data)
        return Response(SpoolOutput(spool).data, status=201)


class SpoolContextMixin(LabContextMixin):
    """The spool named in the URL, of the lab named in it, for a member of that lab."""

    def get_spool(self, request: Request) -> Spool:
        the_lab = self.get_lab()
        require_member(the_lab, signed_in_user(request))
        return spool_get(lab=the_lab, spool_id=self.kwargs["spool_id"])


class SpoolDetailApi(SpoolContextMixin, APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(responses={200: SpoolOutput, **errors(403)})
    def get(self, request: Request, lab: str, spool_id: int) -> Response:
        return Response(SpoolOutput(self.get_spool(request)).data)

    @extend_schema(request=SpoolUpdateInput, responses={200: SpoolOutput, **errors(409)})
    def patch(self, request: Request, lab: str, spool_id: int) -> Response:
        spool = self.get_spool(request)
        data = SpoolUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        spool = spools.spool_update(spool=spool, actor=signed_in_user(request), **data.validated_data)
        return Response(SpoolOutput(spool).data)


class SpoolLoadApi(SpoolContextMixin, APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(
        request=SpoolLoadInput,
        responses={200: SpoolOutput, **errors(409)},
        description="Load the spool on a printer of the lab (the one there goes back to the shelf); "
        "the printer's material and colour become the spool's.",
    )
    def post(self, request: Request, lab: str, spool_id: int) -> Response:
        spool = self.get_spool(request)
        data = SpoolLoadInput(data=request.data)
        data.is_valid(raise_exception=True)
        machine = machine_get(lab=self.get_lab(), slug=data.validated_data["machine"])
        printer = ps.printer_of(machine)
        if printer is None:
            raise NotFound(f"{machine.name} is not in the print queue.")
        spools.spool_load(spool=spool, printer=printer, actor=signed_in_user(request))
        return Response(SpoolOutput(self.get_spool(request)).data)


class SpoolUnloadApi(SpoolContextMixin, APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(request=None, responses=SpoolOutput, description="Back on the shelf.")
    def post(self, request: Request, lab: str, spool_id: int) -> Response:
        spool = spools.spool_unload(spool=self.get_spool(request), actor=signed_in_user(request))
        return Response(SpoolOutput(spool).data)


class SpoolArchiveApi(SpoolContextMixin, APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(request=None, responses=SpoolOutput, description="Out of the stock for good (unloaded).")
    def post(self, request: Request, lab: str, spool_id: int) -> Response:
        spool = spools.spool_archive(spool=self.get_spool(request), actor=signed_in_user(request))
        return Response(SpoolOutput(spool).data)
