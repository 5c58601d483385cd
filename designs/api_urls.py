from django.urls import path

from designs import api

D = "<str:owner>/<str:slug>"

urlpatterns = [
    path("designs/", api.DesignListApi.as_view(), name="api-design-list"),
    path("mirrors/", api.MirrorCreateApi.as_view(), name="api-mirror-create"),
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
    path(f"designs/{D}/proposals/", api.ProposalListApi.as_view(), name="api-design-proposals"),
    path(f"designs/{D}/proposals/<int:number>/", api.ProposalDetailApi.as_view(), name="api-design-proposal"),
    path(
        f"designs/{D}/proposals/<int:number>/diff/",
        api.ProposalDiffApi.as_view(),
        name="api-design-proposal-diff",
    ),
    path(
        f"designs/{D}/proposals/<int:number>/commits/",
        api.ProposalCommitsApi.as_view(),
        name="api-design-proposal-commits",
    ),
    path(
        f"designs/{D}/proposals/<int:number>/merge/",
        api.ProposalMergeApi.as_view(),
        name="api-design-proposal-merge",
    ),
    path(
        f"designs/{D}/proposals/<int:number>/comments/",
        api.ProposalCommentsApi.as_view(),
        name="api-design-proposal-comments",
    ),
    path(f"designs/{D}/upstream/", api.UpstreamApi.as_view(), name="api-design-upstream"),
    path(f"designs/{D}/sync/", api.SyncApi.as_view(), name="api-design-sync"),
    path(f"designs/{D}/mirror/", api.PullMirrorApi.as_view(), name="api-design-mirror"),
    path(
        f"designs/{D}/mirror/refresh/", api.PullMirrorRefreshApi.as_view(), name="api-design-mirror-refresh"
    ),
    path(f"designs/{D}/push-mirrors/", api.PushMirrorListApi.as_view(), name="api-design-push-mirrors"),
    path(
        f"designs/{D}/push-mirrors/<int:mirror_id>/",
        api.PushMirrorDetailApi.as_view(),
        name="api-design-push-mirror",
    ),
    path(
        f"designs/{D}/push-mirrors/<int:mirror_id>/push/",
        api.PushMirrorPushApi.as_view(),
        name="api-design-push-mirror-push",
    ),
]
