from django.contrib.auth import views as auth_views
from django.urls import path

from hub import account_views, archive_views, notification_views, record_views, views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    # Signed records (docs/portability.md): the hub's keys, its revocation lists, each record.
    path(".well-known/did.json", record_views.did_document, name="did-document"),
    path("credentials/status/<int:number>", record_views.status_list, name="credential-status-list"),
    path(
        "credentials/<uuid:credential_id>.json", record_views.credential_document, name="credential-document"
    ),
    # On the source hub of an archive: let an account on another hub claim your records.
    path("credentials/authorise/", archive_views.credentials_authorise, name="credentials-authorise"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("signup/", views.signup, name="signup"),
    path("settings/tokens/", views.tokens, name="tokens"),
    path("settings/account/", account_views.account_settings, name="account-settings"),
    path("settings/notifications/", notification_views.preferences, name="notification-preferences"),
    # The inbox of every kind of notification (hub/notifications.py).
    path("notifications/", notification_views.inbox, name="notifications"),
    path("notifications/read/", notification_views.inbox_mark_read, name="notifications-read"),
    path("settings/account/delete/", account_views.account_delete, name="account-delete"),
    # Account archives (hub/portability.py). The import's address is in hub.uploads too:
    # it takes uploads up to FABHUB_MAX_ARCHIVE_BYTES.
    path("settings/account/archives/", archive_views.archive_request, name="archive-request"),
    path(
        "settings/account/archives/<uuid:archive_id>/download/",
        archive_views.archive_download,
        name="archive-download",
    ),
    path("settings/account/imports/", archive_views.archive_import_upload, name="archive-import-upload"),
    path("settings/account/imports/<uuid:import_id>/", archive_views.archive_import, name="archive-import"),
    path("settings/account/history/", archive_views.imported_history, name="imported-history"),
    path("settings/email/<str:token>/", account_views.email_change_confirm, name="email-change-confirm"),
    path("password-reset/", account_views.password_reset, name="password-reset"),
    path("password-reset/sent/", account_views.password_reset_sent, name="password-reset-sent"),
    path(
        "password-reset/<uidb64>/<token>/",
        account_views.password_reset_confirm,
        name="password-reset-confirm",
    ),
    path("password-reset/done/", account_views.password_reset_complete, name="password-reset-complete"),
]
