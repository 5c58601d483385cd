"""No template carries inline script or style: the Content-Security-Policy (hub/settings.py)
allows neither, so such code would silently not run. Behaviour goes in a static file
(hub/static/hub/pages.js reads data attributes), looks in fabhub.css."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted(
    path for app in ("hub", "designs", "machines") for path in (ROOT / app).rglob("templates/**/*.html")
)

INLINE = {
    "inline <script> (give it a src)": re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I),
    "event-handler attribute": re.compile(r"<[^>]+\son[a-z]+\s*=", re.I),
    "style attribute": re.compile(r"<[^>]+\sstyle\s*=", re.I),
    "<style> element": re.compile(r"<style\b", re.I),
    "javascript: URL": re.compile(r"javascript:", re.I),
}


def test_there_are_templates_to_check():
    assert len(TEMPLATES) > 20


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_template_has_no_inline_code(template):
    text = template.read_text()
    found = [what for what, pattern in INLINE.items() if pattern.search(text)]
    assert not found, f"{template.relative_to(ROOT)}: {', '.join(found)}"
