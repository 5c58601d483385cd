"""The inbox page and the e-mail preferences form (hub.notifications); the unread count of
the navigation is hub.context_processors."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from hub import notifications
from hub.auth import signed_in_user
from hub.models import NotificationKind
from hub.params import optional_id
from hub.views import hub_page

PER_PAGE = 30


@login_required
@hub_page
def inbox(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    unread_only = request.GET.get("unread") == "true"
    page = Paginator(notifications.notifications_of(user, unread=unread_only), PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(request, "hub/notifications.html", {"page": page, "unread_only": unread_only})


@login_required
@require_POST
@hub_page
def inbox_mark_read(request: HttpRequest) -> HttpResponse:
    """Mark one (`id` in the form) or every notification read; back to the inbox."""
    user = signed_in_user(request)
    notification_id = optional_id(request.POST, name="id")
    marked = notifications.notification_mark_read(user=user, notification_id=notification_id)
    if notification_id is None:
        messages.success(request, f"{marked} notification{'s' if marked != 1 else ''} marked read.")
    return redirect(reverse("notifications") + ("?unread=true" if request.POST.get("unread") else ""))


@login_required
@require_POST
@hub_page
def preferences(request: HttpRequest) -> HttpResponse:
    """The account page's form: a ticked box is a kind e-mailed, every kind is in the form."""
    notifications.notification_preferences_set(
        user=signed_in_user(request),
        email={kind: request.POST.get(f"email_{kind}") == "on" for kind in NotificationKind.values},
    )
    messages.success(request, "Notification e-mails saved.")
    return redirect(reverse("account-settings") + "#notifications")


def preference_rows(user) -> list[tuple[str, str, bool]]:
    """(kind, label, e-mailed) for the account page."""
    chosen = notifications.notification_preferences(user)
    return [(kind, label, chosen[kind]) for kind, label in NotificationKind.choices]
