from django.urls import path

from designs import api

D = "<str:owner>/<str:slug>"

urlpatterns = [
    path("designs/", api.DesignListApi.as_view(), name="api-design-list"),
    path(f"designs/{D}/", api.DesignDetailApi.as_view(), name="api-design-detail"),
    path(f"designs/{D}/commits/", api.HistoryApi.as_view(), name="api-design-history"),
    path(f"designs/{D}/commits/<str:sha>/", api.CommitDetailApi.as_view(), name="api-design-commit"),
    path(f"designs/{D}/upload/", api.UploadApi.as_view(), name="api-design-upload"),
    path(f"designs/{D}/delete/", api.DeleteFilesApi.as_view(), name="api-design-delete-files"),
    path(f"designs/{D}/rename/", api.RenameFileApi.as_view(), name="api-design-rename"),
    path(f"designs/{D}/tree/", api.TreeApi.as_view(), name="api-design-tree"),
    path(f"designs/{D}/raw/", api.RawFileApi.as_view(), name="api-design-raw"),
    path(f"designs/{D}/meshes/", api.MeshListApi.as_view(), name="api-design-meshes"),
    path(f"designs/{D}/readme/", api.ReadmeApi.as_view(), name="api-design-readme"),
    path(f"designs/{D}/diff/", api.DiffApi.as_view(), name="api-design-diff"),
    path(f"designs/{D}/branches/", api.BranchListApi.as_view(), name="api-design-branches"),
    path(f"designs/{D}/branches/<path:name>/", api.BranchDetailApi.as_view(), name="api-design-branch"),
    path(f"designs/{D}/tags/", api.TagListApi.as_view(), name="api-design-tags"),
    path(f"designs/{D}/tags/<path:name>/", api.TagDetailApi.as_view(), name="api-design-tag"),
    path(f"designs/{D}/fork/", api.ForkApi.as_view(), name="api-design-fork"),
    path(f"designs/{D}/forks/", api.ForkListApi.as_view(), name="api-design-forks"),
    path(f"designs/{D}/collaborators/", api.CollaboratorListApi.as_view(), name="api-design-collaborators"),
    path(
        f"designs/{D}/collaborators/<str:username>/",
        api.CollaboratorDetailApi.as_view(),
        name="api-design-collaborator",
    ),
]
