from django.urls import path

from designs.api import assemblies as assembly_api
from designs.api import designs as design_api
from designs.api import makes as make_api
from designs.api import mirrors as mirror_api
from designs.api import proposals as proposal_api
from designs.api import releases as release_api
from designs.api import watches as watch_api

D = "<str:owner>/<str:slug>"

urlpatterns = [
    path("designs/", design_api.DesignListApi.as_view(), name="api-design-list"),
    path("mirrors/", mirror_api.MirrorCreateApi.as_view(), name="api-mirror-create"),
    path(f"designs/{D}/", design_api.DesignDetailApi.as_view(), name="api-design-detail"),
    path(f"designs/{D}/commits/", design_api.HistoryApi.as_view(), name="api-design-history"),
    path(f"designs/{D}/commits/<str:sha>/", design_api.CommitDetailApi.as_view(), name="api-design-commit"),
    path(f"designs/{D}/upload/", design_api.UploadApi.as_view(), name="api-design-upload"),
    path(f"designs/{D}/delete/", design_api.DeleteFilesApi.as_view(), name="api-design-delete-files"),
    path(f"designs/{D}/rename/", design_api.RenameFileApi.as_view(), name="api-design-rename"),
    path(f"designs/{D}/tree/", design_api.TreeApi.as_view(), name="api-design-tree"),
    path(f"designs/{D}/raw/", design_api.RawFileApi.as_view(), name="api-design-raw"),
    path(f"designs/{D}/meshes/", design_api.MeshListApi.as_view(), name="api-design-meshes"),
    path(f"designs/{D}/readme/", design_api.ReadmeApi.as_view(), name="api-design-readme"),
    path(f"designs/{D}/diff/", design_api.DiffApi.as_view(), name="api-design-diff"),
    path(f"designs/{D}/branches/", design_api.BranchListApi.as_view(), name="api-design-branches"),
    path(
        f"designs/{D}/branches/<path:name>/", design_api.BranchDetailApi.as_view(), name="api-design-branch"
    ),
    path(f"designs/{D}/tags/", design_api.TagListApi.as_view(), name="api-design-tags"),
    path(f"designs/{D}/tags/<path:name>/", design_api.TagDetailApi.as_view(), name="api-design-tag"),
    path(f"designs/{D}/releases/", release_api.ReleaseListApi.as_view(), name="api-design-releases"),
    # A file before its release's files, before the release: the tag is matched last.
    path(
        f"designs/{D}/releases/<path:tag>/assets/<str:name>/",
        release_api.ReleaseAssetDetailApi.as_view(),
        name="api-design-release-asset",
    ),
    path(
        f"designs/{D}/releases/<path:tag>/assets/",
        release_api.ReleaseAssetListApi.as_view(),
        name="api-design-release-assets",
    ),
    path(
        f"designs/{D}/releases/<path:tag>/", release_api.ReleaseDetailApi.as_view(), name="api-design-release"
    ),
    path(f"designs/{D}/fork/", design_api.ForkApi.as_view(), name="api-design-fork"),
    path(f"designs/{D}/watch/", watch_api.WatchApi.as_view(), name="api-design-watch"),
    path(f"designs/{D}/star/", watch_api.StarApi.as_view(), name="api-design-star"),
    path(f"designs/{D}/forks/", design_api.ForkListApi.as_view(), name="api-design-forks"),
    path(f"designs/{D}/assembly/", assembly_api.AssemblyApi.as_view(), name="api-design-assembly"),
    path(
        f"designs/{D}/assembly/upgrades/",
        assembly_api.AssemblyUpgradeApi.as_view(),
        name="api-design-assembly-upgrade",
    ),
    path(f"designs/{D}/used-by/", assembly_api.UsedByApi.as_view(), name="api-design-used-by"),
    path(f"designs/{D}/makes/", make_api.MakeListApi.as_view(), name="api-design-makes"),
    path(f"designs/{D}/makes/<int:make_id>/", make_api.MakeDetailApi.as_view(), name="api-design-make"),
    path("users/<str:username>/makes/", make_api.PersonMakeListApi.as_view(), name="api-user-makes"),
    path(
        f"designs/{D}/collaborators/",
        design_api.CollaboratorListApi.as_view(),
        name="api-design-collaborators",
    ),
    path(
        f"designs/{D}/collaborators/<str:username>/",
        design_api.CollaboratorDetailApi.as_view(),
        name="api-design-collaborator",
    ),
    path(f"designs/{D}/proposals/", proposal_api.ProposalListApi.as_view(), name="api-design-proposals"),
    path(
        f"designs/{D}/proposals/<int:number>/",
        proposal_api.ProposalDetailApi.as_view(),
        name="api-design-proposal",
    ),
    path(
        f"designs/{D}/proposals/<int:number>/diff/",
        proposal_api.ProposalDiffApi.as_view(),
        name="api-design-proposal-diff",
    ),
    path(
        f"designs/{D}/proposals/<int:number>/commits/",
        proposal_api.ProposalCommitsApi.as_view(),
        name="api-design-proposal-commits",
    ),
    path(
        f"designs/{D}/proposals/<int:number>/merge/",
        proposal_api.ProposalMergeApi.as_view(),
        name="api-design-proposal-merge",
    ),
    path(
        f"designs/{D}/proposals/<int:number>/conflicts/",
        proposal_api.ProposalConflictsApi.as_view(),
        name="api-design-proposal-conflicts",
    ),
    path(
        f"designs/{D}/proposals/<int:number>/comments/",
        proposal_api.ProposalCommentsApi.as_view(),
        name="api-design-proposal-comments",
    ),
    path(f"designs/{D}/upstream/", proposal_api.UpstreamApi.as_view(), name="api-design-upstream"),
    path(f"designs/{D}/sync/", proposal_api.SyncApi.as_view(), name="api-design-sync"),
    path(f"designs/{D}/mirror/", mirror_api.PullMirrorApi.as_view(), name="api-design-mirror"),
    path(
        f"designs/{D}/mirror/refresh/",
        mirror_api.PullMirrorRefreshApi.as_view(),
        name="api-design-mirror-refresh",
    ),
    path(
        f"designs/{D}/push-mirrors/", mirror_api.PushMirrorListApi.as_view(), name="api-design-push-mirrors"
    ),
    path(
        f"designs/{D}/push-mirrors/<int:mirror_id>/",
        mirror_api.PushMirrorDetailApi.as_view(),
        name="api-design-push-mirror",
    ),
    path(
        f"designs/{D}/push-mirrors/<int:mirror_id>/push/",
        mirror_api.PushMirrorPushApi.as_view(),
        name="api-design-push-mirror-push",
    ),
]
