"""`{% unread_notifications as n %}`: the signed-in person's unread count, for the
navigation of base.html. One COUNT query per request, and only on pages that show it."""

from __future__ import annotations

from typing import Any

from django import template

from hub import notifications

register = template.Library()


@register.simple_tag(takes_context=True)
def unread_notifications(context: dict[str, Any]) -> int:
    request = context.get("request")
    user = getattr(request, "user", None)
    if request is None or user is None or not user.is_authenticated:
        return 0
    # Kept on the request: a page that includes the navigation twice asks once.
    if not hasattr(request, "_unread_notifications"):
        request._unread_notifications = notifications.notifications_unread_count(user)
    return request._unread_notifications
