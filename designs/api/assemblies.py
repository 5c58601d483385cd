"""The REST API of assemblies (docs/assemblies.md): what the assembly page shows, as JSON;
the upgrade proposal; and the assemblies that use a design."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from designs import rollup, selectors
from designs.api.base import DesignContextMixin
from designs.serializers import ProposalOutput
from designs.services import assemblies, upgrades
from hub.auth import signed_in_user
from hub.inputs import Input
from hub.permissions import AUTHENTICATED
from hub.schema import errors


class ModuleOutput(serializers.Serializer):
    path = serializers.CharField(help_text="Its folder; nested modules as 'parent › child'.")
    depth = serializers.IntegerField()
    design = serializers.SerializerMethodField()
    url = serializers.CharField(help_text="As .gitmodules writes it.")
    pin = serializers.CharField()
    release = serializers.CharField(help_text="The release (tag) at the pin, if any.")
    latest_release = serializers.CharField()
    upgrade_available = serializers.BooleanField()
    licence = serializers.CharField()
    quantity = serializers.IntegerField(help_text="How many the whole assembly holds.")
    own_quantity = serializers.IntegerField()
    nested = serializers.BooleanField(help_text="The module is an assembly itself.")
    remote = serializers.BooleanField(help_text="On another hub, with no mirror here: pinned, not read.")
    attaches = serializers.ListField(child=serializers.CharField())
    provides = serializers.ListField(child=serializers.DictField())
    needs = serializers.ListField(child=serializers.DictField())
    matrix = serializers.ListField(child=serializers.FloatField(), help_text="4×4, column-major, mm.")

    def get_design(self, row: rollup.ModuleRow) -> str | None:
        return row.design.full_name if row.design else None


class BomRowOutput(serializers.Serializer):
    key = serializers.CharField()
    description = serializers.CharField()
    quantity = serializers.FloatField()
    by_module = serializers.DictField(child=serializers.FloatField())


class BomChangeOutput(serializers.Serializer):
    key = serializers.CharField()
    kind = serializers.ChoiceField(choices=["added", "removed", "changed"])
    old = serializers.FloatField()
    new = serializers.FloatField()
    delta = serializers.FloatField()


class AssemblyOutput(serializers.Serializer):
    commit = serializers.CharField()
    is_assembly = serializers.BooleanField()
    problems = serializers.ListField(child=serializers.CharField())
    hidden_problems = serializers.IntegerField(help_text="Problems of modules you cannot see.")
    private_modules = serializers.IntegerField(help_text="Modules you cannot see.")
    modules = ModuleOutput(many=True, source="rows")
    bom = BomRowOutput(many=True)
    mass_g = serializers.FloatField(allow_null=True)
    mass_estimated = serializers.BooleanField()
    bbox_min = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    bbox_max = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    licence_warnings = serializers.ListField(child=serializers.CharField())
    bom_changes = BomChangeOutput(many=True, required=False, allow_null=True)


class PendingOutput(serializers.Serializer):
    commit = serializers.CharField()
    status = serializers.ChoiceField(choices=["pending"])


class UpgradeInput(Input):
    path = serializers.CharField(max_length=4096, help_text="The module's folder in the assembly.")
    release = serializers.CharField(max_length=255, help_text="The module's release (tag) to pin.")


class ModuleUseOutput(serializers.Serializer):
    assembly = serializers.CharField(source="assembly.full_name")
    path = serializers.CharField()
    commit = serializers.CharField(source="commit_sha")
    release = serializers.CharField()


class AssemblyApi(DesignContextMixin, APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("ref", str, description="Branch, tag or commit; the default branch if absent."),
            OpenApiParameter("base", str, description="Another revision to compare the rolled-up BOM with."),
        ],
        responses={
            200: AssemblyOutput,
            202: OpenApiResponse(PendingOutput, description="Being read; ask again in a moment."),
        },
    )
    def get(self, request: Request, owner: str, slug: str) -> Response:
        design = self.get_design()
        commit = selectors.design_resolve(design, request.query_params.get("ref"))
        check = assemblies.assembly_check_stored(design, commit=commit)
        if check is None:
            return Response({"commit": commit, "status": "pending"}, status=202)
        view = rollup.assembly_view(design, check=check, viewer=request.user)
        data = AssemblyOutput(view).data
        base = request.query_params.get("base")
        if base:
            base_check = assemblies.assembly_check_stored(
                design, commit=selectors.design_resolve(design, base)
            )
            if base_check is None:
                return Response({"commit": commit, "status": "pending"}, status=202)
            base_view = rollup.assembly_view(design, check=base_check, viewer=request.user)
            data["bom_changes"] = BomChangeOutput(rollup.bom_difference(base_view, view), many=True).data
        return Response(data)


class AssemblyUpgradeApi(DesignContextMixin, APIView):
    permission_classes = AUTHENTICATED
    parser_classes = [JSONParser]

    @extend_schema(request=UpgradeInput, responses={201: ProposalOutput, **errors(409)})
    def post(self, request: Request, owner: str, slug: str) -> Response:
        data = UpgradeInput(data=request.data)
        data.is_valid(raise_exception=True)
        proposal = upgrades.assembly_upgrade_propose(
            design=self.get_design(), user=signed_in_user(request), **data.validated_data
        )
        return Response(ProposalOutput(proposal, context={"request": request}).data, status=201)


class UsedByApi(DesignContextMixin, APIView):
    @extend_schema(responses=ModuleUseOutput(many=True))
    def get(self, request: Request, owner: str, slug: str) -> Response:
        uses = rollup.used_by(self.get_design(), viewer=request.user)
        return Response(ModuleUseOutput(uses, many=True).data)
