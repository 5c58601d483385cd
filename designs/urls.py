"""Pages of designs, under /<owner>/<design>/. Included last by hub.urls."""

from django.urls import path

from designs.views import assemblies as assembly_views
from designs.views import designs as design_views
from designs.views import files as file_views
from designs.views import makes as make_views
from designs.views import mirrors as mirror_views
from designs.views import proposals as proposal_views
from designs.views import releases as release_views
from designs.views import watches as watch_views

D = "<str:owner>/<str:slug>"

urlpatterns = [
    # Before the design routes, which would read "okh" as an owner (a reserved username).
    path("okh/manifests.txt", design_views.okh_manifests, name="okh-manifests"),
    path("", design_views.design_list, name="design-list"),
    path("new/", design_views.design_new, name="design-new"),
    path("new/mirror/", mirror_views.mirror_new, name="mirror-new"),
    path(f"{D}/", design_views.design_detail, name="design-detail"),
    path(f"{D}/tree/<path:path>", design_views.design_tree, name="design-tree"),
    path(f"{D}/blob/<path:path>", design_views.design_blob, name="design-blob"),
    path(f"{D}/raw/<path:path>", design_views.design_raw, name="design-raw"),
    path(f"{D}/archive/<path:rev>.zip", design_views.design_archive, name="design-archive"),
    path(f"{D}/okh.toml", design_views.design_okh, name="design-okh"),
    # Downloads first: a file named okh.toml is a file of its release, not a manifest.
    path(
        f"{D}/releases/download/<path:tag>/<str:name>",
        release_views.design_release_asset,
        name="design-release-asset",
    ),
    path(f"{D}/releases/<path:tag>/okh.toml", design_views.design_release_okh, name="design-release-okh"),
    path(f"{D}/releases/", release_views.design_releases, name="design-releases"),
    path(f"{D}/releases/<path:tag>/", release_views.design_release, name="design-release"),
    path(f"{D}/thumbnail/<str:blob_sha>.png", design_views.design_thumbnail, name="design-thumbnail"),
    path(f"{D}/mesh/<str:blob_sha>.bin", design_views.design_mesh_data, name="design-mesh-data"),
    path(f"{D}/picture/<str:blob_sha>/<str:name>", design_views.design_picture, name="design-picture"),
    path(f"{D}/mesh/<str:blob_sha>.extra", design_views.design_mesh_extra, name="design-mesh-extra"),
    path(f"{D}/commits/", design_views.design_history, name="design-history"),
    path(f"{D}/commit/<str:sha>/", design_views.design_commit_page, name="design-commit"),
    path(f"{D}/compare/", design_views.design_compare, name="design-compare"),
    path(f"{D}/diff-state/", design_views.design_diff_state, name="design-diff-state"),
    path(f"{D}/upload/", design_views.design_upload, name="design-upload"),
    path(f"{D}/edit/<path:path>", file_views.design_file_edit, name="design-file-edit"),
    path(f"{D}/markdown-preview/", file_views.design_markdown_preview, name="design-markdown-preview"),
    path(f"{D}/delete-file/", design_views.design_delete_file, name="design-delete-file"),
    path(f"{D}/rename-file/", design_views.design_rename_file, name="design-rename-file"),
    path(f"{D}/branches/", design_views.design_branches, name="design-branches"),
    path(f"{D}/tags/", release_views.design_releases, name="design-tags"),
    path(f"{D}/fork/", design_views.design_fork, name="design-fork"),
    path(f"{D}/forks/", design_views.design_forks, name="design-forks"),
    path(f"{D}/assembly/", assembly_views.design_assembly, name="design-assembly"),
    path(f"{D}/assembly/bom.csv", assembly_views.design_assembly_bom, name="design-assembly-bom"),
    path(f"{D}/assembly/scene.json", assembly_views.design_assembly_scene, name="design-assembly-scene"),
    path(f"{D}/assembly/upgrade/", assembly_views.design_assembly_upgrade, name="design-assembly-upgrade"),
    path(f"{D}/makes/new/", make_views.design_make_new, name="design-make-new"),
    path(f"{D}/makes/<int:make_id>/photo", make_views.design_make_photo, name="design-make-photo"),
    path(f"{D}/makes/<int:make_id>/delete/", make_views.design_make_delete, name="design-make-delete"),
    path(f"{D}/settings/", design_views.design_settings, name="design-settings"),
    path(f"{D}/settings/mirrors/", mirror_views.design_mirrors, name="design-mirrors"),
    path(f"{D}/proposals/", proposal_views.design_proposals, name="design-proposals"),
    path(f"{D}/proposals/new/", proposal_views.design_proposal_new, name="design-proposal-new"),
    path(f"{D}/proposals/<int:number>/", proposal_views.design_proposal, name="design-proposal"),
    path(f"{D}/sync/", proposal_views.design_sync, name="design-sync"),
    path(f"{D}/watch/", watch_views.design_watch, name="design-watch"),
    path(f"{D}/star/", watch_views.design_star, name="design-star"),
    path(f"{D}/mirror/refresh/", mirror_views.design_mirror_refresh, name="design-mirror-refresh"),
]
