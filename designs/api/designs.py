"""The designs REST API: validate input → call one service or selector → describe output.

Designs, their files, history, branches, tags, forks, collaborators and meshes.
"""

from __future__ import annotations

import django_filters
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
from designs.api.base import DesignContextMixin
from designs.diffs import compare
from designs.models import Design, Licence
from designs.rawfiles import serve_blob
from designs.search import design_search
from designs.serializers import (
    BranchCreateInput,
    BranchOutput,
    CollaboratorInput,
    CollaboratorOutput,
    CommitCreated,
    CommitOutput,
    CommitPageOutput,
    DeleteInput,
    DesignCreateInput,
    DesignListOutput,
    DesignOutput,
    DesignUpdateInput,
    DiffOutput,
    ForkInput,
    MeshListOutput,
    ReadmeOutput,
    RenameInput,
    TagCreateInput,
    TagOutput,
    TreeOutput,
    UploadInput,
    commits_output,
)
from designs.services.history import history_page
from hub.auth import signed_in_user
from hub.exceptions import PermissionDenied
from hub.models import User
from hub.pagination import MAX_PER_PAGE
from hub.params import positive_int
from hub.permissions import AUTHENTICATED
from hub.schema import errors


class DesignFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        method="filter_text",
        label="Words of the title, name, summary, README or file paths, best matches first "
        "(designs/search/); the last word may be the start of one",
    )
    tag = django_filters.CharFilter(field_name="tags__name")
    licence = django_filters.ChoiceFilter(choices=Licence.choices)
    owner = django_filters.CharFilter(field_name="owner__username")
    sort = django_filters.ChoiceFilter(
        choices=[(name, name) for name in selectors.DESIGN_SORTS],
        method="filter_sort",
        label="Without `q`: the most recently updated first (updated, the default), or the most "
        "starred, forked or made first",
    )

    class Meta:
        model = Design
        fields = ["q", "tag", "licence", "owner", "visibility", "sort"]

    def is_valid(self) -> bool:
        # django-filter reads an empty choice as "no filter"; the schema's enums have no "".
        for name in ("licence", "visibility", "sort"):
            if self.data.get(name) == "":
                self.form.add_error(name, "Give one of the values, or leave the parameter out.")
        return super().is_valid()

    def filter_sort(self, queryset, name, value):
        if self.data.get("q", "").strip():
            return queryset  # a text search is ranked by how well each design matches
        return selectors.designs_sorted(queryset, sort=value, viewer=self.request.user)

    def filter_text(self, queryset, name, value):
        # The words are searched by DesignListApi.list, among what the other filters keep.
        return queryset


class DesignListApi(generics.ListAPIView):
    # JSON only: a form cannot tell a list of one tag (`tags=x`) from a lone value.
    parser_classes = [JSONParser]
    serializer_class = DesignListOutput
    filterset_class = DesignFilter

    def get_queryset(self):
        return selectors.designs_visible_to(self.request.user).distinct()

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        return None if page is None else selectors.with_social_counts(list(page), viewer=self.request.user)

    def list(self, request: Request, *args, **kwargs) -> Response:
        text = request.query_params.get("q", "")
        if not text.strip():
            return super().list(request, *args, **kwargs)
        within = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(design_search(viewer=request.user, text=text, within=within))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(request=DesignCreateInput, responses={201: DesignOutput, **errors(409)})
    def post(self, request: Request) -> Response:
        if not request.user.is_authenticated:
            raise PermissionDenied("Log in or use a token to create a design.")
        data = DesignCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        design = services.design_create(owner=request.user, **data.validated_data)
        return Response(DesignOutput(design, context={"request": request}).data, status=201)


class DesignDetailApi(DesignContextMixin, APIView):
    parser_classes = [JSONParser]  # as DesignListApi: `tags` is a list

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
    OpenApiParameter("page", {"type": "integer", "minimum": 1}, description="Page number, from 1."),
    OpenApiParameter(
        "per_page",
        {"type": "integer", "minimum": 1},
        description=f"Commits per page, from 1 (more than {MAX_PER_PAGE} gives {MAX_PER_PAGE}).",
    ),
]


class HistoryApi(DesignContextMixin, APIView):
    @extend_schema(
        operation_id="designs_commits_list",
        parameters=[
            OpenApiParameter("ref", str, description="Branch, tag or sha (default branch if absent)."),
            OpenApiParameter("path", str, description="Only commits that touched this path."),
            *PAGE_PARAMS,
        ],
        responses=CommitPageOutput,
    )
    def get(self, request: Request, owner: str, slug: str) -> Response:
        # The lean lookup: same access rule, one query (the page shows no tags or fork).
        design = selectors.design_get_for_history(user=request.user, owner=owner, slug=slug)
        page = positive_int(request.query_params, name="page", default=1)
        per_page = min(positive_int(request.query_params, name="per_page", default=30), MAX_PER_PAGE)
        history = history_page(
            design=design,
            rev=request.query_params.get("ref"),
            path=request.query_params.get("path") or None,
            offset=(page - 1) * per_page,
            limit=per_page,
        )
        base = request.build_absolute_uri(request.path)
        params = request.query_params.copy()

        def link(number: int, exists: bool) -> str | None:
            if number < 1 or not exists:
                return None
            params["page"] = str(number)
            return f"{base}?{params.urlencode()}"

        # An earlier page exists when this one has commits, or the total says it does.
        earlier = bool(history.commits) or (history.total or 0) > (page - 2) * per_page
        return Response(
            {
                "count": history.total,
                "next": link(page + 1, history.has_next),
                "previous": link(page - 1, earlier),
                "results": commits_output(history.commits),
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
    # Files travel in multipart only: a urlencoded body cannot carry one.
    parser_classes = [MultiPartParser]

    @extend_schema(request=UploadInput, responses={201: CommitCreated, **errors(409)})
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

    @extend_schema(request=DeleteInput, responses={201: CommitCreated, **errors(409)})
    def post(self, request: Request, owner: str, slug: str) -> Response:
        design = self.get_design()
        data = DeleteInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        return _commit(request, design, values, deletes=values["paths"])


class RenameFileApi(DesignContextMixin, APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(request=RenameInput, responses={201: CommitCreated, **errors(409)})
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

    @extend_schema(request=BranchCreateInput, responses={201: BranchOutput, **errors(409)})
    def post(self, request: Request, owner: str, slug: str) -> Response:
        design = self.get_design()
        data = BranchCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        head = services.branch_create(design=design, user=signed_in_user(request), **data.validated_data)
        return Response({"name": data.validated_data["name"], "head": head, "default": False}, status=201)


class BranchDetailApi(DesignContextMixin, APIView):
    # 400: the default branch, which cannot be deleted; 409: it moved meanwhile.
    @extend_schema(responses={204: None, **errors(400, 409)})
    def delete(self, request: Request, owner: str, slug: str, name: str) -> Response:
        services.branch_delete(design=self.get_design(), user=signed_in_user(request), name=name)
        return Response(status=204)


class TagListApi(DesignContextMixin, APIView):
    @extend_schema(responses=TagOutput(many=True))
    def get(self, request: Request, owner: str, slug: str) -> Response:
        design = self.get_design()
        return Response(TagOutput(design.repo.tags(), many=True, context={"design": design}).data)

    @extend_schema(request=TagCreateInput, responses={201: TagOutput, **errors(409)})
    def post(self, request: Request, owner: str, slug: str) -> Response:
        design = self.get_design()
        data = TagCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.tag_create(design=design, user=signed_in_user(request), **data.validated_data)
        tag = selectors.design_tag(design, data.validated_data["name"])
        return Response(TagOutput(tag, context={"design": self.get_design()}).data, status=201)


class TagDetailApi(DesignContextMixin, APIView):
    @extend_schema(responses=TagOutput)
    def get(self, request: Request, owner: str, slug: str, name: str) -> Response:
        design = self.get_design()
        return Response(TagOutput(selectors.design_tag(design, name), context={"design": design}).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, owner: str, slug: str, name: str) -> Response:
        services.tag_delete(design=self.get_design(), user=signed_in_user(request), name=name)
        return Response(status=204)


class ForkApi(DesignContextMixin, APIView):
    permission_classes = AUTHENTICATED

    @extend_schema(request=ForkInput, responses={201: DesignOutput, **errors(409)})
    def post(self, request: Request, owner: str, slug: str) -> Response:
        data = ForkInput(data=request.data)
        data.is_valid(raise_exception=True)
        fork = services.design_fork(
            design=self.get_design(), user=signed_in_user(request), slug=data.validated_data.get("slug")
        )
        return Response(DesignOutput(fork, context={"request": request}).data, status=201)


class ForkListApi(DesignContextMixin, generics.ListAPIView):
    # Only for the schema generator, which reads the model from it; get_queryset decides.
    queryset = Design.objects.none()
    serializer_class = DesignOutput

    def get_queryset(self):
        return (
            selectors.designs_visible_to(self.request.user).filter(forked_from=self.get_design()).distinct()
        )


class CollaboratorListApi(DesignContextMixin, APIView):
    @extend_schema(responses={200: CollaboratorOutput(many=True), **errors(403)})
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
        # Served with the type its name suggests (image/png, model/stl…), or octet-stream.
        responses={(200, "*/*"): OpenApiTypes.BINARY},
    )
    def get(self, request: Request, owner: str, slug: str):
        design = self.get_design()
        path = (request.query_params.get("path") or "").strip("/")
        _, entry = selectors.design_file(design, rev=request.query_params.get("ref"), path=path)
        return serve_blob(request, design, entry)
