"""The REST API of change proposals, and of keeping a fork up to date with its upstream."""

from __future__ import annotations

import json
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from designs import selectors
from designs.api.base import DesignContextMixin
from designs.models import ChangeProposal, Design
from designs.serializers import (
    CommentInput,
    CommentOutput,
    CommitOutput,
    DiffOutput,
    ProposalCreateInput,
    ProposalMergedOutput,
    ProposalMergeInput,
    ProposalOutput,
    ProposalUpdateInput,
    SyncInput,
    SyncOutput,
    UpstreamOutput,
)
from designs.services import conflicts, proposals
from hub.auth import signed_in_user
from hub.exceptions import NotFound, PermissionDenied, ValidationError
from hub.inputs import Input
from hub.params import choice as param_choice
from hub.schema import errors

# -- proposals ------------------------------------------------------------------------------


def _source_design(request: Request, target: Design, name: str | None) -> Design:
    if not name:
        return target
    owner, _, slug = name.partition("/")
    if not owner or not slug:
        raise ValidationError("Name the source design as owner/slug.")
    return selectors.design_get(user=request.user, owner=owner, slug=slug)


class ProposalListApi(DesignContextMixin, generics.ListAPIView):
    serializer_class = ProposalOutput

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=["open", "merged", "closed"])],
        responses=ProposalOutput(many=True),
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ChangeProposal.objects.none()
        status = param_choice(self.request.query_params, name="status", choices=ChangeProposal.Status.values)
        return selectors.proposals_of(self.get_design(), status=status)

    @extend_schema(request=ProposalCreateInput, responses={201: ProposalOutput, **errors(409)})
    def post(self, request: Request, owner: str, slug: str) -> Response:
        if not request.user.is_authenticated:
            raise PermissionDenied("Log in or use a token to propose changes.")
        target = self.get_design()
        data = ProposalCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        proposal = proposals.proposal_create(
            target=target,
            user=request.user,
            source=_source_design(request, target, values.get("source")),
            title=values["title"],
            description=values["description"],
            source_branch=values["source_branch"],
            target_branch=values.get("target_branch"),
        )
        return Response(ProposalOutput(proposal).data, status=201)


class ProposalContextMixin(DesignContextMixin):
    def get_proposal(self):
        proposal = selectors.proposal_get(self.get_design(), self.kwargs["number"])
        return proposals.proposal_fresh(proposal)


class ProposalDetailApi(ProposalContextMixin, APIView):
    @extend_schema(responses=ProposalOutput)
    def get(self, request: Request, owner: str, slug: str, number: int) -> Response:
        return Response(ProposalOutput(self.get_proposal()).data)

    @extend_schema(request=ProposalUpdateInput, responses={200: ProposalOutput, **errors(409)})
    def patch(self, request: Request, owner: str, slug: str, number: int) -> Response:
        data = ProposalUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        proposal = selectors.proposal_get(self.get_design(), number)
        if "title" in values or "description" in values:
            proposal = proposals.proposal_update(
                proposal=proposal,
                user=signed_in_user(request),
                title=values.get("title"),
                description=values.get("description"),
            )
        if values.get("status") == "closed" and proposal.status != "closed":
            proposal = proposals.proposal_close(proposal=proposal, user=signed_in_user(request))
        elif values.get("status") == "open" and proposal.status != "open":
            proposal = proposals.proposal_reopen(proposal=proposal, user=signed_in_user(request))
        return Response(ProposalOutput(proposal).data)


class ProposalDiffApi(ProposalContextMixin, APIView):
    @extend_schema(responses=DiffOutput)
    def get(self, request: Request, owner: str, slug: str, number: int) -> Response:
        base, head, files = selectors.proposal_diff(self.get_proposal())
        return Response(DiffOutput({"base": base, "head": head, "files": files}).data)


class ProposalCommitsApi(ProposalContextMixin, APIView):
    @extend_schema(responses=CommitOutput(many=True))
    def get(self, request: Request, owner: str, slug: str, number: int) -> Response:
        return Response(CommitOutput(selectors.proposal_commits(self.get_proposal()), many=True).data)


class ProposalMergeApi(ProposalContextMixin, APIView):
    @extend_schema(request=ProposalMergeInput, responses={200: ProposalMergedOutput, **errors(409)})
    def post(self, request: Request, owner: str, slug: str, number: int) -> Response:
        data = ProposalMergeInput(data=request.data)
        data.is_valid(raise_exception=True)
        proposal = selectors.proposal_get(self.get_design(), number)
        sha = proposals.proposal_merge(proposal=proposal, user=signed_in_user(request), **data.validated_data)
        return Response(ProposalMergedOutput({"sha": sha, "proposal": proposal}).data)


class ResolutionInput(Input):
    path = serializers.CharField(max_length=4096)
    keep = serializers.ChoiceField(
        choices=conflicts.KEEPS,
        help_text="target or source: keep that side's version; upload: the file sent in the part "
        "named upload:<path>; hunks: one choice per conflict hunk; text: the whole resolved file.",
    )
    hunks = serializers.ListField(
        child=serializers.ChoiceField(choices=conflicts.HUNK_CHOICES), required=False, default=list
    )
    text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, default=None)


class ProposalResolveInput(Input):
    expected_head = serializers.RegexField(
        r"^[0-9a-f]{40}$", help_text="The source head you resolved against."
    )
    expected_target = serializers.RegexField(
        r"^[0-9a-f]{40}$", help_text="The target head you resolved against."
    )
    message = serializers.CharField(max_length=10000, required=False, allow_blank=True)
    files = ResolutionInput(
        many=True, help_text="One entry per conflicting file (a JSON string in a multipart body)."
    )


class ConflictHunkOutput(serializers.Serializer):
    common = serializers.CharField(
        allow_null=True, help_text="Lines both sides agree on; null in a conflict."
    )
    target = serializers.CharField(help_text="The target branch's lines of a conflict.")
    source = serializers.CharField(help_text="The proposal's lines.")  # type: ignore[assignment]  # a declared field, not Field.source


class ConflictFileOutput(serializers.Serializer):
    path = serializers.CharField()
    kind = serializers.CharField()
    message = serializers.CharField()
    in_target = serializers.BooleanField()
    in_source = serializers.BooleanField()
    marked_text = serializers.CharField(allow_null=True)
    hunks = ConflictHunkOutput(many=True)


class ProposalResolvedOutput(serializers.Serializer):
    where = serializers.CharField(
        help_text="target: the proposal is merged; source: its source branch moved."
    )
    sha = serializers.CharField(help_text="The merge commit.")
    branch = serializers.CharField()
    proposal = ProposalOutput()


class ProposalConflictsApi(ProposalContextMixin, APIView):
    @extend_schema(responses=ConflictFileOutput(many=True))
    def get(self, request: Request, owner: str, slug: str, number: int) -> Response:
        files = conflicts.proposal_conflict_files(self.get_proposal())
        return Response(ConflictFileOutput(files, many=True).data)

    @extend_schema(request=ProposalResolveInput, responses={200: ProposalResolvedOutput, **errors(409)})
    def post(self, request: Request, owner: str, slug: str, number: int) -> Response:
        raw: Any = request.data
        if hasattr(raw, "getlist"):
            # A multipart body (files to upload): the resolutions come as one JSON string.
            fields = ("expected_head", "expected_target", "message")
            try:
                raw = {
                    **{k: raw.get(k) for k in fields if k in raw},
                    "files": json.loads(raw.get("files") or "[]"),
                }
            except ValueError:
                raise ValidationError("files must be a JSON list of resolutions.") from None
        data = ProposalResolveInput(data=raw)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        proposal = selectors.proposal_get(self.get_design(), number)
        resolutions = [
            conflicts.Resolution(
                path=item["path"],
                keep=item["keep"],
                hunks=item.get("hunks") or [],
                text=item.get("text"),
                upload=request.FILES.get(f"upload:{item['path']}"),
            )
            for item in values["files"]
        ]
        done = conflicts.proposal_resolve(
            proposal=proposal,
            user=signed_in_user(request),
            resolutions=resolutions,
            expected_head=values["expected_head"],
            expected_target=values["expected_target"],
            message=values.get("message"),
        )
        return Response(ProposalResolvedOutput({**done.__dict__, "proposal": proposal}).data)


class ProposalCommentsApi(ProposalContextMixin, APIView):
    @extend_schema(responses=CommentOutput(many=True))
    def get(self, request: Request, owner: str, slug: str, number: int) -> Response:
        proposal = selectors.proposal_get(self.get_design(), number)
        return Response(CommentOutput(proposal.comments.select_related("author"), many=True).data)

    @extend_schema(request=CommentInput, responses={201: CommentOutput})
    def post(self, request: Request, owner: str, slug: str, number: int) -> Response:
        data = CommentInput(data=request.data)
        data.is_valid(raise_exception=True)
        proposal = selectors.proposal_get(self.get_design(), number)
        comment = proposals.proposal_comment(
            proposal=proposal, user=signed_in_user(request), **data.validated_data
        )
        return Response(CommentOutput(comment).data, status=201)


# -- keeping a fork up to date ------------------------------------------------------------


class UpstreamApi(DesignContextMixin, APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("branch", str, description="The fork's branch; default branch if absent.")
        ],
        responses=UpstreamOutput,
    )
    def get(self, request: Request, owner: str, slug: str) -> Response:
        design = self.get_design()
        status = selectors.design_upstream_status(
            design, request.user, branch=request.query_params.get("branch")
        )
        if status is None:
            raise NotFound(f"{design.full_name} is not a fork of a design you can see.")
        return Response(UpstreamOutput(status).data)


class SyncApi(DesignContextMixin, APIView):
    @extend_schema(request=SyncInput, responses={200: SyncOutput, **errors(409)})
    def post(self, request: Request, owner: str, slug: str) -> Response:
        data = SyncInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = proposals.design_sync_upstream(
            design=self.get_design(), user=signed_in_user(request), **data.validated_data
        )
        return Response(SyncOutput(result).data)
