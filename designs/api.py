"""The designs REST API: validate input → call one service or selector → describe output."""

from __future__ import annotations

import django_filters
from django.db.models import Q
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from designs import paths, selectors, services
from designs.diffs import compare
from designs.models import ChangeProposal, Design, Licence
from designs.rawfiles import serve_blob
from designs.serializers import (
    BranchCreateInput,
    BranchOutput,
    CollaboratorInput,
    CollaboratorOutput,
    CommentInput,
    CommentOutput,
    CommitCreated,
    CommitOutput,
    DeleteInput,
    DesignCreateInput,
    DesignOutput,
    DesignUpdateInput,
    DiffOutput,
    ForkInput,
    MeshListOutput,
    MirrorCreatedOutput,
    MirrorCreateInput,
    ProposalCreateInput,
    ProposalMergedOutput,
    ProposalMergeInput,
    ProposalOutput,
    ProposalUpdateInput,
    PullMirrorOutput,
    PullMirrorUpdateInput,
    PushMirrorInput,
    PushMirrorOutput,
    PushMirrorUpdateInput,
    ReadmeOutput,
    RenameInput,
    SyncInput,
    SyncOutput,
    TagCreateInput,
    TagOutput,
    TreeOutput,
    UploadInput,
    UpstreamOutput,
)
from designs.services import mirrors, proposals
from hub.auth import signed_in_user
from hub.exceptions import NotFound, PermissionDenied, ValidationError
from hub.models import User
from hub.permissions import AUTHENTICATED


class DesignFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="filter_text", label="Text in title, name or summary")
    tag = django_filters.CharFilter(field_name="tags__name")
    licence = django_filters.ChoiceFilter(choices=Licence.choices)
    owner = django_filters.CharFilter(field_name="owner__username")

    class Meta:
        model = Design
        fields = ["q", "tag", "licence", "owner", "visibility"]

    def filter_text(self, queryset, name, value):
        return queryset.filter(
            Q(title__icontains=value) | Q(slug__icontains=value) | Q(summary__icontains=value)
        )


class DesignContextMixin(APIView):
    """Loads the design named in the URL, as the requester may see it (else 404)."""

    def get_design(self) -> Design:
        if not hasattr(self, "_design"):
            self._design = selectors.design_get(
                user=self.request.user, owner=self.kwargs["owner"], slug=self.kwargs["slug"]
            )
        return self._design

    def require_writer(self, design: Design) -> None:
        if not selectors.design_can_write(design, self.request.user):
            raise PermissionDenied(f"You cannot write to {design.full_name}.")

    def require_owner(self, design: Design) -> None:
        if design.owner_id != self.request.user.pk:
            raise PermissionDenied(f"Only {design.owner.username} can do this.")


class DesignListApi(generics.ListAPIView):
    serializer_class = DesignOutput
    filterset_class = DesignFilter

    def get_queryset(self):
        return selectors.designs_visible_to(self.request.user).distinct()

    @extend_schema(request=DesignCreateInput, responses={201: DesignOutput})
    def post(self, request: Request) -> Response:
        if not request.user.is_authenticated:
            raise PermissionDenied("Log in or use a token to create a design.")
        data = DesignCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        design = services.design_create(owner=request.user, **data.validated_data)
        return Response(DesignOutput(design, context={"request": request}).data, status=201)


class DesignDetailApi(DesignContextMixin, APIView):
    @extend_schema(responses=DesignOutput)
    def get(self, request: Request, owner: str, slug: str) -> Response:
        return Response(DesignOutput(self.get_design(), context={"request": request}).data)

    @extend_schema(request=DesignUpdateInput, responses=DesignOutput)
    def patch(self, request: Request, owner: str, slug: str) -> Response:
        design = self.get_design()
        self.require_owner(design)
        data = DesignUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        design = services.design_update(design=design, **data.validated_data)
        return Response(DesignOutput(design, context={"request": request}).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, owner: str, slug: str) -> Response:
        design = self.get_design()
        self.require_owner(design)
        services.design_delete(design=design)
        return Response(status=204)


PAGE_PARAMS = [
    OpenApiParameter("page", int, description="Page number, from 1."),
    OpenApiParameter("per_page", int, description="Commits per page (max 100)."),
]


def _positive_int(value: str | None, default: int) -> int:
    if value in (None, ""):
        return default
    if not value.isdigit() or int(value) < 1:
        raise ValidationError(f"Expected a positive whole number, got {value!r}.")
    return int(value)


class HistoryApi(DesignContextMixin, APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("ref", str, description="Branch, tag or sha (default branch if absent)."),
            OpenApiParameter("path", str, description="Only commits that touched this path."),
            *PAGE_PARAMS,
        ],
        responses=CommitOutput(many=True),
    )
    def get(self, request: Request, owner: str, slug: str) -> Response:
        design = self.get_design()
        page = _positive_int(request.query_params.get("page"), 1)
        per_page = min(_positive_int(request.query_params.get("per_page"), 30), 100)
        total, commits = selectors.design_history(
            design,
            rev=request.query_params.get("ref"),
            path=request.query_params.get("path") or None,
            offset=(page - 1) * per_page,
            limit=per_page,
        )
        base = request.build_absolute_uri(request.path)
        params = request.query_params.copy()

        def link(number: int) -> str | None:
            if number < 1 or (number - 1) * per_page >= total:
                return None
            params["page"] = str(number)
            return f"{base}?{params.urlencode()}"

        return Response(
            {
                "count": total,
                "next": link(page + 1),
                "previous": link(page - 1),
                "results": CommitOutput(commits, many=True).data,
            }
        )


class CommitDetailApi(DesignContextMixin, APIView):
    @extend_schema(responses=CommitOutput)
    def get(self, request: Request, owner: str, slug: str, sha: str) -> Response:
        design = self.get_design()
        commit = design.repo.commit(selectors.design_resolve(design, sha))
        return Response(CommitOutput(commit).data)


def _commit(request: Request, design: Design, values: dict, **changes) -> Response:
    """One commit from a write endpoint's validated input (message, branch, parent)."""
    sha = services.design_commit(
        design=design,
        author=signed_in_user(request),
        message=values["message"],
        branch=values.get("branch"),
        expected_head=values.get("parent"),
        **changes,
    )
    return Response(
        CommitCreated({"sha": sha, "branch": values.get("branch") or design.default_branch}).data, status=201
    )


class UploadApi(DesignContextMixin, APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request=UploadInput, responses={201: CommitCreated})
    def post(self, request: Request, owner: str, slug: str) -> Response:
        design = self.get_design()
        data = UploadInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        names = values.get("paths") or [f.name for f in values["files"]]
        uploads = [
            services.Upload(path=paths.join(values["folder"].strip("/"), name), content=f)
            for name, f in zip(names, values["files"], strict=True)
        ]
        return _commit(request, design, values, uploads=uploads)


class DeleteFilesApi(DesignContextMixin, APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(request=DeleteInput, responses={201: CommitCreated})
    def post(self, request: Request, owner: str, slug: str) -> Response:
        design = self.get_design()
        data = DeleteInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        return _commit(request, design, values, deletes=values["paths"])


class RenameFileApi(DesignContextMixin, APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(request=RenameInput, responses={201: CommitCreated})
    def post(self, request: Request, owner: str, slug: str) -> Response:
        design = self.get_design()
        data = RenameInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        return _commit(
            request, design, values, renames=[services.Rename(values["from_path"], values["to_path"])]
        )


class TreeApi(DesignContextMixin, APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("ref", str),
            OpenApiParameter("path", str, description="Folder; root if absent."),
        ],
        responses=TreeOutput,
    )
    def get(self, request: Request, owner: str, slug: str) -> Response:
        design = self.get_design()
        path = (request.query_params.get("path") or "").strip("/")
        sha, entries = selectors.design_tree(design, rev=request.query_params.get("ref"), path=path)
        return Response(TreeOutput({"commit": sha, "path": path, "entries": entries}).data)


class ReadmeApi(DesignContextMixin, APIView):
    @extend_schema(parameters=[OpenApiParameter("ref", str)], responses=ReadmeOutput)
    def get(self, request: Request, owner: str, slug: str) -> Response:
        design = self.get_design()
        sha = selectors.design_resolve(design, request.query_params.get("ref"))
        path, html = selectors.design_readme(design, sha=sha)
        return Response({"commit": sha, "path": path, "html": html})


class DiffApi(DesignContextMixin, APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("base", str, description="Older revision; the head's first parent if absent."),
            OpenApiParameter("head", str, description="Newer revision; default branch if absent."),
        ],
        responses=DiffOutput,
    )
    def get(self, request: Request, owner: str, slug: str) -> Response:
        design = self.get_design()
        head = selectors.design_resolve(design, request.query_params.get("head"))
        base_rev = request.query_params.get("base")
        base: str | None
        if base_rev:
            base = selectors.design_resolve(design, base_rev)
        else:
            parents = design.repo.commit(head).parents
            base = parents[0] if parents else None
        files = compare(design.repo, base, head)
        return Response(DiffOutput({"base": base, "head": head, "files": files}).data)


class BranchListApi(DesignContextMixin, APIView):
    @extend_schema(responses=BranchOutput(many=True))
    def get(self, request: Request, owner: str, slug: str) -> Response:
        design = self.get_design()
        return Response(BranchOutput(selectors.design_branches(design), many=True).data)

    @extend_schema(request=BranchCreateInput, responses={201: BranchOutput})
    def post(self, request: Request, owner: str, slug: str) -> Response:
        design = self.get_design()
        data = BranchCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        head = services.branch_create(design=design, user=signed_in_user(request), **data.validated_data)
        return Response({"name": data.validated_data["name"], "head": head, "default": False}, status=201)


class BranchDetailApi(DesignContextMixin, APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, owner: str, slug: str, name: str) -> Response:
        services.branch_delete(design=self.get_design(), user=signed_in_user(request), name=name)
        return Response(status=204)


class TagListApi(DesignContextMixin, APIView):
    @extend_schema(responses=TagOutput(many=True))
    def get(self, request: Request, owner: str, slug: str) -> Response:
        return Response(TagOutput(self.get_design().repo.tags(), many=True).data)

    @extend_schema(request=TagCreateInput, responses={201: TagOutput})
    def post(self, request: Request, owner: str, slug: str) -> Response:
        design = self.get_design()
        data = TagCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.tag_create(design=design, user=signed_in_user(request), **data.validated_data)
        tag = selectors.design_tag(design, data.validated_data["name"])
        return Response(TagOutput(tag).data, status=201)


class TagDetailApi(DesignContextMixin, APIView):
    @extend_schema(responses=TagOutput)
    def get(self, request: Request, owner: str, slug: str, name: str) -> Response:
        return Response(TagOutput(selectors.design_tag(self.get_design(), name)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, owner: str, slug: str, name: str) -> Response:
        services.tag_delete(design=self.get_design(), user=signed_in_user(request), name=name)
        return Response(status=204)


class ForkApi(DesignContextMixin, APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(request=ForkInput, responses={201: DesignOutput})
    def post(self, request: Request, owner: str, slug: str) -> Response:
        data = ForkInput(data=request.data)
        data.is_valid(raise_exception=True)
        fork = services.design_fork(
            design=self.get_design(), user=signed_in_user(request), slug=data.validated_data.get("slug")
        )
        return Response(DesignOutput(fork, context={"request": request}).data, status=201)


class ForkListApi(DesignContextMixin, generics.ListAPIView):
    serializer_class = DesignOutput

    def get_queryset(self):
        return (
            selectors.designs_visible_to(self.request.user).filter(forked_from=self.get_design()).distinct()
        )


class CollaboratorListApi(DesignContextMixin, APIView):
    @extend_schema(responses=CollaboratorOutput(many=True))
    def get(self, request: Request, owner: str, slug: str) -> Response:
        design = self.get_design()
        self.require_owner(design)
        return Response(CollaboratorOutput(design.collaborators.select_related("user"), many=True).data)

    @extend_schema(request=CollaboratorInput, responses={201: CollaboratorOutput})
    def post(self, request: Request, owner: str, slug: str) -> Response:
        design = self.get_design()
        data = CollaboratorInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = get_object_or_404(User, username=data.validated_data["username"])
        collaborator = services.collaborator_set(
            design=design, actor=signed_in_user(request), user=user, role=data.validated_data["role"]
        )
        return Response(CollaboratorOutput(collaborator).data, status=201)


class CollaboratorDetailApi(DesignContextMixin, APIView):
    @extend_schema(responses={204: None})
    def delete(self, request: Request, owner: str, slug: str, username: str) -> Response:
        user = get_object_or_404(User, username=username)
        services.collaborator_remove(design=self.get_design(), actor=signed_in_user(request), user=user)
        return Response(status=204)


class MeshListApi(DesignContextMixin, APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("ref", str),
            OpenApiParameter("build_volume", str, description="e.g. 250x210x210 (mm): adds `fits` per file."),
        ],
        responses=MeshListOutput,
    )
    def get(self, request: Request, owner: str, slug: str) -> Response:
        design = self.get_design()
        sha = selectors.design_resolve(design, request.query_params.get("ref"))
        volume = request.query_params.get("build_volume")
        files = selectors.design_meshes(
            design, sha=sha, build_volume=selectors.parse_build_volume(volume) if volume else None
        )
        for item in files:
            item["thumbnail_url"] = (
                request.build_absolute_uri(reverse("design-thumbnail", args=[owner, slug, item["blob_sha"]]))
                if item.pop("has_thumbnail")
                else None
            )
        return Response(MeshListOutput({"commit": sha, "files": files}).data)


class RawFileApi(DesignContextMixin, APIView):
    @extend_schema(
        parameters=[OpenApiParameter("path", str, required=True), OpenApiParameter("ref", str)],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
    )
    def get(self, request: Request, owner: str, slug: str):
        design = self.get_design()
        path = (request.query_params.get("path") or "").strip("/")
        _, entry = selectors.design_file(design, rev=request.query_params.get("ref"), path=path)
        return serve_blob(request, design, entry)


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
        status = self.request.query_params.get("status") or None
        return selectors.proposals_of(self.get_design(), status=status)

    @extend_schema(request=ProposalCreateInput, responses={201: ProposalOutput})
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

    @extend_schema(request=ProposalUpdateInput, responses=ProposalOutput)
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
    @extend_schema(request=ProposalMergeInput, responses={200: ProposalMergedOutput})
    def post(self, request: Request, owner: str, slug: str, number: int) -> Response:
        data = ProposalMergeInput(data=request.data)
        data.is_valid(raise_exception=True)
        proposal = selectors.proposal_get(self.get_design(), number)
        sha = proposals.proposal_merge(proposal=proposal, user=signed_in_user(request), **data.validated_data)
        return Response(ProposalMergedOutput({"sha": sha, "proposal": proposal}).data)


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
    @extend_schema(request=SyncInput, responses=SyncOutput)
    def post(self, request: Request, owner: str, slug: str) -> Response:
        data = SyncInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = proposals.design_sync_upstream(
            design=self.get_design(), user=signed_in_user(request), **data.validated_data
        )
        return Response(SyncOutput(result).data)


# -- mirrors ------------------------------------------------------------------------------


class MirrorCreateApi(APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(request=MirrorCreateInput, responses={201: MirrorCreatedOutput})
    def post(self, request: Request) -> Response:
        data = MirrorCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        design = mirrors.mirror_create(owner=signed_in_user(request), **data.validated_data)
        out = {"design": design, "mirror": selectors.design_mirror(design)}
        return Response(MirrorCreatedOutput(out, context={"request": request}).data, status=201)


class PullMirrorApi(DesignContextMixin, APIView):
    def _mirror(self):
        mirror = selectors.design_mirror(self.get_design())
        if mirror is None:
            raise NotFound(f"{self.get_design().full_name} is not a mirror.")
        return mirror

    @extend_schema(responses=PullMirrorOutput)
    def get(self, request: Request, owner: str, slug: str) -> Response:
        return Response(PullMirrorOutput(self._mirror()).data)

    @extend_schema(request=PullMirrorUpdateInput, responses=PullMirrorOutput)
    def patch(self, request: Request, owner: str, slug: str) -> Response:
        data = PullMirrorUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        mirror = mirrors.mirror_update(
            design=self.get_design(), user=signed_in_user(request), **data.validated_data
        )
        return Response(PullMirrorOutput(mirror).data)

    @extend_schema(
        responses={204: None}, description="Stop mirroring: the design keeps its content and accepts commits."
    )
    def delete(self, request: Request, owner: str, slug: str) -> Response:
        mirrors.mirror_stop(design=self.get_design(), user=signed_in_user(request))
        return Response(status=204)


class PullMirrorRefreshApi(DesignContextMixin, APIView):
    @extend_schema(
        request=None,
        responses=PullMirrorOutput,
        description="Refresh now and answer with the outcome (`last_error` says why it failed); 409 if one is running.",
    )
    def post(self, request: Request, owner: str, slug: str) -> Response:
        mirror = mirrors.mirror_refresh_now(design=self.get_design(), user=signed_in_user(request))
        return Response(PullMirrorOutput(mirror).data)


class PushMirrorListApi(DesignContextMixin, APIView):
    @extend_schema(responses=PushMirrorOutput(many=True))
    def get(self, request: Request, owner: str, slug: str) -> Response:
        design = self.get_design()
        self.require_owner(design)
        return Response(PushMirrorOutput(selectors.push_mirrors_of(design), many=True).data)

    @extend_schema(request=PushMirrorInput, responses={201: PushMirrorOutput})
    def post(self, request: Request, owner: str, slug: str) -> Response:
        data = PushMirrorInput(data=request.data)
        data.is_valid(raise_exception=True)
        mirror = mirrors.push_mirror_add(
            design=self.get_design(), user=signed_in_user(request), **data.validated_data
        )
        return Response(PushMirrorOutput(mirror).data, status=201)


class PushMirrorDetailApi(DesignContextMixin, APIView):
    @extend_schema(request=PushMirrorUpdateInput, responses=PushMirrorOutput)
    def patch(self, request: Request, owner: str, slug: str, mirror_id: int) -> Response:
        data = PushMirrorUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        mirror = mirrors.push_mirror_update(
            design=self.get_design(), user=signed_in_user(request), mirror_id=mirror_id, **data.validated_data
        )
        return Response(PushMirrorOutput(mirror).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, owner: str, slug: str, mirror_id: int) -> Response:
        mirrors.push_mirror_remove(
            design=self.get_design(), user=signed_in_user(request), mirror_id=mirror_id
        )
        return Response(status=204)


class PushMirrorPushApi(DesignContextMixin, APIView):
    @extend_schema(
        request=None, responses=PushMirrorOutput, description="Push now and answer with the outcome."
    )
    def post(self, request: Request, owner: str, slug: str, mirror_id: int) -> Response:
        mirror = mirrors.push_mirror_push_now(
            design=self.get_design(), user=signed_in_user(request), mirror_id=mirror_id
        )
        return Response(PushMirrorOutput(mirror).data)
