from csp.decorators import csp_update
from django.contrib import admin
from django.templatetags.static import static
from django.urls import URLPattern, URLResolver, include, path
from django.utils.functional import lazy
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from hub import account_api, api, archive_api, notification_api, record_api, views

# The API reference pages show only the schema the hub generates, with scripts from this
# origin only: inline style there cannot run code, and Swagger UI and Redoc need it.
API_REFERENCE_CSP = csp_update({"style-src": ["'unsafe-inline'"]})

api_urlpatterns: list[URLPattern | URLResolver] = [
    path("me/", api.MeApi.as_view(), name="api-me"),
    path("me/password/", account_api.PasswordChangeApi.as_view(), name="api-password-change"),
    path("me/email/", account_api.EmailChangeApi.as_view(), name="api-email-change"),
    path("me/email/confirm/", account_api.EmailConfirmApi.as_view(), name="api-email-confirm"),
    path("me/delete/", account_api.AccountDeleteApi.as_view(), name="api-account-delete"),
    # Account archives (hub/portability.py). The imports' address is in hub.uploads too:
    # it takes uploads up to FABHUB_MAX_ARCHIVE_BYTES.
    path("me/archives/", archive_api.ArchiveListApi.as_view(), name="api-archives"),
    path("me/archives/<uuid:archive_id>/", archive_api.ArchiveDetailApi.as_view(), name="api-archive"),
    path(
        "me/archives/<uuid:archive_id>/download/",
        archive_api.ArchiveDownloadApi.as_view(),
        name="api-archive-download",
    ),
    path("me/imports/", archive_api.ImportListApi.as_view(), name="api-imports"),
    path("me/imports/<uuid:import_id>/", archive_api.ImportDetailApi.as_view(), name="api-import"),
    path(
        "me/imports/<uuid:import_id>/challenge/",
        archive_api.ImportChallengeApi.as_view(),
        name="api-import-challenge",
    ),
    path("me/imports/<uuid:import_id>/claim/", archive_api.ImportClaimApi.as_view(), name="api-import-claim"),
    path("password-reset/", account_api.PasswordResetApi.as_view(), name="api-password-reset"),
    path(
        "password-reset/confirm/",
        account_api.PasswordResetConfirmApi.as_view(),
        name="api-password-reset-confirm",
    ),
    # The inbox (hub/notifications.py): every kind, the lab notices' addresses kept.
    path("notifications/", notification_api.NotificationListApi.as_view(), name="api-notifications"),
    path(
        "notifications/read/", notification_api.NotificationReadApi.as_view(), name="api-notifications-read"
    ),
    path(
        "notifications/unread-count/",
        notification_api.NotificationCountApi.as_view(),
        name="api-notifications-unread-count",
    ),
    path(
        "notifications/preferences/",
        notification_api.NotificationPreferencesApi.as_view(),
        name="api-notification-preferences",
    ),
    path("tokens/", api.TokenListApi.as_view(), name="api-tokens"),
    path("tokens/<int:token_id>/", api.TokenDetailApi.as_view(), name="api-token"),
    path("credentials/verify/", record_api.VerifyApi.as_view(), name="api-records-verify"),
    path("credentials/authorise/", archive_api.AuthoriseApi.as_view(), name="api-records-authorise"),
    path("", include("designs.api_urls")),
    path("", include("machines.api_urls")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The "split" Swagger view serves its script as a file, and the Redoc page is the
    # hub's own template: neither runs inline script. Both style themselves inline, so
    # these two pages (and only they) allow inline style; see docs/deploy.md.
    path(
        "docs/",
        API_REFERENCE_CSP(SpectacularSwaggerSplitView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
    path(
        "redoc/",
        API_REFERENCE_CSP(
            SpectacularRedocView.as_view(url_name="api-schema", template_name="hub/redoc.html")
        ),
        name="api-redoc",
    ),
]

urlpatterns = [
    # Browsers ask every site for /favicon.ico: the hub's icon is an SVG (base.html links it).
    path(
        "favicon.ico",
        RedirectView.as_view(url=lazy(static, str)("hub/favicon.svg"), permanent=True),
        name="favicon",
    ),
    path("admin/", admin.site.urls),
    # The lab agent protocol (docs/agent.md): outside the REST API and its schema.
    path("api/agent/v1/", include("machines.agent_urls")),
    path("api/", include(api_urlpatterns)),
    path("", include("hub.page_urls")),
    path("", include("machines.urls")),
    path("", include("designs.git_urls")),
    # /<owner>/<design>/… catches what nothing above matched.
    path("", include("designs.urls")),
    # Last of all: a person's page. Every one-segment page above wins over it, and the
    # names of those pages are reserved usernames (hub.models.RESERVED_USERNAMES).
    path("<str:username>/", views.profile, name="profile"),
]

handler404 = "hub.views.page_not_found"
