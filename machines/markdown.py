"""A lab's description: Markdown rendered to HTML and sanitised by nh3 (the only boundary)."""

from __future__ import annotations

import markdown as markdown_lib
import nh3

URL_SCHEMES = {"http", "https", "mailto"}


def render_markdown(text: str) -> str:
    if not text.strip():
        return ""
    html = markdown_lib.markdown(text, extensions=["sane_lists", "tables"])
    return nh3.clean(html, url_schemes=URL_SCHEMES, link_rel="noopener noreferrer nofollow")
