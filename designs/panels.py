"""Panels other apps add to a design's page, without designs knowing those apps.

An app registers a panel once, from its `AppConfig.ready()`:
`register_design_panel(lambda design: render_to_string("app/_panel.html", {...}))`.
A panel returns HTML rendered from a template (escaped by the template engine), or ""
when it has nothing to show for this design; the design page shows the panels in the
order they were registered, in its side column.
"""

from __future__ import annotations

from collections.abc import Callable

from django.utils.safestring import SafeString, mark_safe

from designs.models import Design

DesignPanel = Callable[[Design], str]

_panels: list[DesignPanel] = []


def register_design_panel(panel: DesignPanel) -> None:
    """Show `panel(design)` on every design page; registering the same panel twice is a no-op
    (`ready()` may run more than once in tests)."""
    if panel not in _panels:
        _panels.append(panel)


def design_panels(design: Design) -> list[SafeString]:
    """The non-empty panels for `design`, as HTML ready for the page."""
    rendered = (panel(design) for panel in _panels)
    # Panels render their HTML from templates, which escape what they interpolate.
    return [mark_safe(html) for html in rendered if html]
