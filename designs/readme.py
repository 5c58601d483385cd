"""README rendering: Markdown to sanitised HTML with repository-relative links resolved."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from urllib.parse import urlsplit

import markdown
import nh3

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt",
    "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "ol", "p",
    "pre", "s", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "th",
    "thead", "tr", "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"align"},
    "th": {"align"},
    "code": {"class"},
    "*": {"id"},
}
SAFE_SCHEMES = {"http", "https", "mailto"}


def _resolve(url: str, base_dir: str) -> str | None:
    """The repository path a relative URL names, or None if it leaves the repository."""
    if url.startswith("/"):
        joined = url.lstrip("/")
    else:
        joined = posixpath.join(base_dir, url) if base_dir else url
    normal = posixpath.normpath(joined)
    if normal.startswith("..") or normal in (".", ""):
        return None
    return normal


def render_readme(
    markdown_text: str,
    *,
    raw_url: Callable[[str], str],
    page_url: Callable[[str], str],
    base_dir: str = "",
) -> str:
    """Markdown → HTML with no script, handlers or dangerous URLs.

    Relative image sources become raw-file URLs and relative links become file pages,
    both at the revision the caller's `raw_url`/`page_url` pin.
    """
    html = markdown.markdown(markdown_text, extensions=["tables", "fenced_code", "sane_lists"])

    def rewrite(tag: str, attribute: str, value: str) -> str | None:
        if attribute not in ("href", "src"):
            return value
        value = value.strip()
        if not value or value.startswith("#"):
            return value
        parts = urlsplit(value)
        if parts.scheme or parts.netloc:
            return value if parts.scheme.lower() in SAFE_SCHEMES else None
        path = _resolve(parts.path, base_dir)
        if path is None:
            return None
        if tag == "img":
            return raw_url(path)
        return page_url(path) + (f"#{parts.fragment}" if parts.fragment else "")

    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=SAFE_SCHEMES,
        attribute_filter=rewrite,
        link_rel="noopener noreferrer nofollow",
    )
