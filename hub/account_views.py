"""Account pages: settings, password change and reset, e-mail change, deleting the account.

Thin: each form's submission goes to a service in hub.accounts through `form_call`, so
the pages and the API refuse the same things with the same words. Password reset is
Django's one-time tokens and its confirm view; the hub sends the message itself
(hub.accounts, through hub.mail) so that a mail server that is down is a logged line.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy

from hub import accounts
from hub.archive_views import settings_sections
from hub.auth import signed_in_user
from hub.notification_views import preference_rows
from hub.views import form_call, hub_page


class PasswordChangeForm(forms.Form):
    current_password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))
    new_password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 8 characters, not only digits, not a common password, not like your name.",
    )


class EmailChangeForm(forms.Form):
    new_email = forms.EmailField(label="New e-mail address")
    current_password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class AccountDeleteForm(forms.Form):
    confirm_username = forms.CharField(label="Type your username to confirm")
    current_password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


def _request_root(request: HttpRequest) -> str:
    return request.build_absolute_uri("/")


@login_required
@hub_page
def account_settings(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    password_form = PasswordChangeForm(request.POST if request.POST.get("action") == "password" else None)
    email_form = EmailChangeForm(request.POST if request.POST.get("action") == "email" else None)
    if request.method == "POST" and password_form.is_valid():
        done, _ = form_call(
            password_form, accounts.password_change, user=user, request=request, **password_form.cleaned_data
        )
        if done:
            update_session_auth_hash(request, user)  # this session stays signed in; others end
            messages.success(request, "Password changed. Other browsers signed in as you are signed out.")
            return redirect("account-settings")
    if request.method == "POST" and email_form.is_valid():
        done, _ = form_call(
            email_form,
            accounts.email_change_request,
            user=user,
            request=request,
            request_root=_request_root(request),
            **email_form.cleaned_data,
        )
        if done:
            messages.success(
                request,
                f"We sent a link to {email_form.cleaned_data['new_email']}: "
                "your address changes when you open it.",
            )
            return redirect("account-settings")
    return render(
        request,
        "hub/account.html",
        {
            "password_form": password_form,
            "email_form": email_form,
            "notification_preferences": preference_rows(user),
            **settings_sections(user),
        },
    )


@login_required
@hub_page
def email_change_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """The link from the e-mail: shows the change, and makes it on POST.

    A GET changes nothing, so a mail scanner that follows links cannot confirm for you.
    """
    user = signed_in_user(request)
    change = accounts.email_change_read(token=token)
    if request.method == "POST":
        accounts.email_change_confirm(user=user, token=token)
        messages.success(request, f"Your e-mail address is now {change.new_email}.")
        return redirect("account-settings")
    return render(request, "hub/email_change_confirm.html", {"change": change})


@login_required
@hub_page
def account_delete(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    form = AccountDeleteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        done, _ = form_call(form, accounts.account_delete, user=user, request=request, **form.cleaned_data)
        if done:
            logout(request)
            messages.success(request, "Your account is deleted.")
            return redirect("design-list")
    return render(request, "hub/account_delete.html", {"form": form})


class PasswordResetRequestForm(forms.Form):
    email = forms.EmailField(label="E-mail address", max_length=254)


def password_reset(request: HttpRequest) -> HttpResponse:
    """Ask for a reset link. The answer is the same whether or not the address is known."""
    form = PasswordResetRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        accounts.password_reset_send(email=form.cleaned_data["email"], request_root=_request_root(request))
        return redirect("password-reset-sent")
    return render(request, "hub/password_reset.html", {"form": form})


password_reset_sent = auth_views.PasswordResetDoneView.as_view(
    template_name="hub/password_reset_sent.html",
    extra_context={"timeout_days": settings.PASSWORD_RESET_TIMEOUT // (24 * 3600)},
)
password_reset_confirm = auth_views.PasswordResetConfirmView.as_view(
    template_name="hub/password_reset_confirm.html",
    success_url=reverse_lazy("password-reset-complete"),
)
password_reset_complete = auth_views.PasswordResetCompleteView.as_view(
    template_name="hub/password_reset_complete.html"
)
