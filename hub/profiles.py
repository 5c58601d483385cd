"""A person's page, /<username>/, filled by the feature apps without hub knowing them.

An app registers a panel once, from its `AppConfig.ready()`:
`register_profile_panel(panel)`, where `panel(request, person)` returns HTML rendered from
a template (escaped by the template engine), or "" when it has nothing to show. A panel
shows only what the requester may see (a make of a private design is as private as the
design). The page shows the panels in the order they were registered.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest
from django.utils.safestring import SafeString, mark_safe

from hub.models import User

ProfilePanel = Callable[[HttpRequest, User], str]

_panels: list[ProfilePanel] = []


def register_profile_panel(panel: ProfilePanel) -> None:
    """Show `panel(request, person)` on every profile; registering it twice is a no-op
    (`ready()` may run more than once in tests)."""
    if panel not in _panels:
        _panels.append(panel)


def profile_panels(request: HttpRequest, person: User) -> list[SafeString]:
    """The non-empty panels of `person`'s page, as HTML ready for it."""
    rendered = (panel(request, person) for panel in _panels)
    # Panels render their HTML from templates, which escape what they interpolate.
    return [mark_safe(html) for html in rendered if html]
