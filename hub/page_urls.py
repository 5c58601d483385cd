from django.contrib.auth import views as auth_views
from django.urls import path

from hub import account_views, record_views, views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    # Signed records (docs/portability.md): the hub's keys, its revocation lists, each record.
    path(".well-known/did.json", record_views.did_document, name="did-document"),
    path("credentials/status/<int:number>", record_views.status_list, name="credential-status-list"),
    path(
        "credentials/<uuid:credential_id>.json", record_views.credential_document, name="credential-document"
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("signup/", views.signup, name="signup"),
    path("settings/tokens/", views.tokens, name="tokens"),
    path("settings/account/", account_views.account_settings, name="account-settings"),
    path("settings/account/delete/", account_views.account_delete, name="account-delete"),
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
