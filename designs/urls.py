"""Pages of designs, under /<owner>/<design>/. Included last by hub.urls."""

from django.urls import path

from designs import views

D = "<str:owner>/<str:slug>"

urlpatterns = [
    path("", views.design_list, name="design-list"),
    path("new/", views.design_new, name="design-new"),
    path("new/mirror/", views.mirror_new, name="mirror-new"),
    path(f"{D}/", views.design_detail, name="design-detail"),
    path(f"{D}/tree/<path:path>", views.design_tree, name="design-tree"),
    path(f"{D}/blob/<path:path>", views.design_blob, name="design-blob"),
    path(f"{D}/raw/<path:path>", views.design_raw, name="design-raw"),
    path(f"{D}/thumbnail/<str:blob_sha>.png", views.design_thumbnail, name="design-thumbnail"),
    path(f"{D}/mesh/<str:blob_sha>.bin", views.design_mesh_data, name="design-mesh-data"),
    path(f"{D}/commits/", views.design_history, name="design-history"),
    path(f"{D}/commit/<str:sha>/", views.design_commit_page, name="design-commit"),
    path(f"{D}/compare/", views.design_compare, name="design-compare"),
    path(f"{D}/upload/", views.design_upload, name="design-upload"),
    path(f"{D}/delete-file/", views.design_delete_file, name="design-delete-file"),
    path(f"{D}/rename-file/", views.design_rename_file, name="design-rename-file"),
    path(f"{D}/branches/", views.design_branches, name="design-branches"),
    path(f"{D}/tags/", views.design_tags, name="design-tags"),
    path(f"{D}/fork/", views.design_fork, name="design-fork"),
    path(f"{D}/forks/", views.design_forks, name="design-forks"),
    path(f"{D}/settings/", views.design_settings, name="design-settings"),
    path(f"{D}/settings/mirrors/", views.design_mirrors, name="design-mirrors"),
    path(f"{D}/proposals/", views.design_proposals, name="design-proposals"),
    path(f"{D}/proposals/new/", views.design_proposal_new, name="design-proposal-new"),
    path(f"{D}/proposals/<int:number>/", views.design_proposal, name="design-proposal"),
    path(f"{D}/sync/", views.design_sync, name="design-sync"),
    path(f"{D}/mirror/refresh/", views.design_mirror_refresh, name="design-mirror-refresh"),
]
