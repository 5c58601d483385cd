"""The one Markdown boundary: every text a person writes (READMEs, proposal descriptions
and comments, lab descriptions) becomes HTML that is safe to embed in a page here.

Markdown passes raw HTML straight through, so the nh3 (ammonia) sanitiser is the only
security boundary: whatever it does not explicitly allow is removed.

Text that lives in a repository (a README, a proposal at its head commit) passes
`raw_url` and `page_url`, and its links are rewritten so that it keeps working when it is
shown outside its repository:

* a relative image ``src`` becomes ``raw_url(path)`` and a relative link ``href``
  becomes ``page_url(path)``, where ``path`` is the target's path inside the
  repository: resolved against ``base_dir``, normalised, percent-decoded and without
  a leading slash (``""`` is the repository root). The callbacks must quote it when
  they build a URL from it; nothing they return is checked again;
* a leading ``/`` means the repository root, not the site root;
* a path that climbs out of the repository (``../x`` in the root) loses its attribute;
* a link keeps its ``#fragment`` so that it can point at a heading of the target page;
  queries are dropped, as are an image's query and fragment, because the hub's file
  URLs do not take the author's parameters;
* ``#section``, ``?query`` and empty links refer to the README's own page and stay as
  they are, as do ``http``, ``https`` and ``mailto`` URLs and ``//host/path``;
* every other scheme (``javascript:``, ``data:``, ``vbscript:``…) loses its attribute.

Text that does not live in a repository (a lab's description) passes no callbacks: its
relative links stay as written, and everything else above still holds.

Rendering is linear in the text's length: cmark-gfm (GitHub's C implementation of
CommonMark with its table, strikethrough, autolink and task-list extensions, through
`cmarkgfm`) parses, and nh3 (Rust) sanitises. Python-Markdown, used before, took
quadratic time on malformed input (tens of kilobytes of unclosed ``[`` took seconds),
and markdown-it-py, the other CommonMark candidate, took 0.4–0.6 s on 50,000 unclosed
brackets; cmark-gfm takes under 15 ms on every case of ``bench/markdown_render.py``. Still,
each text has a length limit (`check_length`, `MAX_MARKDOWN_CHARS`) and its HTML is
rendered when it is written, not when it is read; `RENDERER_VERSION` tags stored HTML
so that a change of renderer re-renders it.
"""

from __future__ import annotations

import html
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import cmarkgfm
import nh3
from cmarkgfm.cmark import Options
from django.db import models

from hub.exceptions import ValidationError

# Stored HTML carries the version it was rendered with; change it whenever the renderer,
# its options or the sanitiser's rules change, so that stored HTML is rendered again.
RENDERER_VERSION = "cmark-gfm-1"
GFM_EXTENSIONS = ["table", "strikethrough", "autolink", "tasklist"]
# Deeper than this (quotes in quotes, lists in lists, unclosed <div>s), a text is shown as
# its source: browsers and the sanitiser handle such depths slowly, and no document needs it.
MAX_NESTING = 100
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)[^>]*?(/?)>")
_VOID = frozenset({"area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})
# The longest Markdown a person may write into a field (a comment, a description).
MAX_MARKDOWN_CHARS = 65_536

ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "del", "details",
        "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img",
        "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp", "small", "span",
        "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead",
        "tr", "u", "ul",
    }
)  # fmt: skip

# "align" is how READMEs centre a logo (<p align="center">) and how the tables
# extension aligns columns; it cannot do more than that, unlike "style".
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "code": {"class"},
    "details": {"open"},
    "div": {"align"},
    "h1": {"align"},
    "h2": {"align"},
    "h3": {"align"},
    "h4": {"align"},
    "h5": {"align"},
    "h6": {"align"},
    "img": {"src", "alt", "title", "width", "height", "align"},
    "ol": {"start"},
    "p": {"align"},
    "td": {"align", "colspan", "rowspan"},
    "th": {"align", "colspan", "rowspan"},
}

# Removed together with their content: what these hold is code or a fallback,
# never text meant to be read as part of the document.
REMOVED_WITH_CONTENT = frozenset({"script", "style", "iframe", "object", "embed", "noscript", "template"})

URL_SCHEMES = frozenset({"http", "https", "mailto"})

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_TAB_OR_NEWLINE = re.compile(r"[\t\n\r]")
_C0_CONTROL_OR_SPACE = "".join(chr(code) for code in range(0x21))
_LANGUAGE_CLASS = re.compile(r"language-[A-Za-z0-9_+#.\-]+")
_SURROGATE = re.compile("[\ud800-\udfff]")


def render_markdown(
    markdown_text: str,
    *,
    raw_url: Callable[[str], str] | None = None,
    page_url: Callable[[str], str] | None = None,
    base_dir: str = "",
) -> str:
    """Return sanitised HTML; see the module docstring for link handling."""
    if not markdown_text.strip():
        return ""
    # nh3 cannot encode lone surrogates (left by some ways of decoding bytes) and fails.
    text = _SURROGATE.sub("\ufffd", markdown_text)
    # UNSAFE keeps raw HTML (READMEs centre logos with <p align>): nh3 below is what
    # decides what survives, and it drops <script> and the like with their content (so
    # GFM's tagfilter, which would show them as text, is left out).
    rendered = cmarkgfm.markdown_to_html_with_extensions(
        text, options=Options.CMARK_OPT_UNSAFE, extensions=GFM_EXTENSIONS
    )
    if _nesting_depth(rendered) > MAX_NESTING:
        # The sanitiser's HTML parser slows down badly on documents tens of thousands of
        # elements deep (50,000 '>' take it 4 s); nothing that deep is meant to be read.
        return f"<pre>{html.escape(text)}</pre>"
    return _clean(rendered, attribute_filter=_attribute_filter(base_dir, raw_url=raw_url, page_url=page_url))


def _clean(rendered: str, *, attribute_filter: Callable[[str, str, str], str | None]) -> str:
    return nh3.clean(
        rendered,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(REMOVED_WITH_CONTENT),
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=attribute_filter,
        url_schemes=set(URL_SCHEMES),
        # Anyone can write a README: its links must not lend the hub's ranking to spam.
        link_rel="noopener noreferrer nofollow",
    ).strip()


def _attribute_filter(
    base_dir: str, *, raw_url: Callable[[str], str] | None, page_url: Callable[[str], str] | None
) -> Callable[[str, str, str], str | None]:
    # nh3 has already removed attributes with a forbidden scheme when it calls the
    # filter, but it does not check what the filter returns.
    def filter_attribute(tag: str, attribute: str, value: str) -> str | None:
        if tag == "img" and attribute == "src":
            return _rewrite_url(value, base_dir, to_url=raw_url, is_link=False)
        if tag == "a" and attribute == "href":
            return _rewrite_url(value, base_dir, to_url=page_url, is_link=True)
        if tag == "code" and attribute == "class":
            return _language_classes(value)
        return value

    return filter_attribute


def _rewrite_url(
    value: str, base_dir: str, *, to_url: Callable[[str], str] | None, is_link: bool
) -> str | None:
    url = _as_browser_reads(value)
    scheme = _SCHEME.match(url)
    if scheme:
        return value if scheme.group(1).lower() in URL_SCHEMES else None
    try:
        parts = urlsplit(url)
    except ValueError:
        # An unparsable host such as "//[x" leads nowhere.
        return None
    if parts.netloc:
        # "//host/path" takes the page's scheme, so it is as absolute as an https URL.
        return value
    if not parts.path:
        return value if is_link else None
    if to_url is None:
        return value
    path = resolve_repo_path(parts.path, base_dir)
    if path is None:
        return None
    target = to_url(path)
    if is_link and parts.fragment:
        target = f"{target}#{parts.fragment}"
    return target


def _as_browser_reads(value: str) -> str:
    # Browsers ignore surrounding controls and spaces, and tabs and newlines anywhere,
    # so " java\tscript:" is read as "javascript:"; classify URLs the same way.
    return _TAB_OR_NEWLINE.sub("", value.strip(_C0_CONTROL_OR_SPACE))


def resolve_repo_path(url_path: str, base_dir: str) -> str | None:
    """Return the repository path a relative URL path points at, or None if outside.

    ``base_dir`` is the folder holding the README ("" for the root). The result has no
    leading slash and is "" for the root itself.
    """
    # Decode before normalising, so that "%2e%2e/" cannot climb past the check below.
    path = unquote(url_path)
    if path.startswith("/"):
        joined = path.lstrip("/")
    else:
        joined = posixpath.join(base_dir.strip("/"), path)
    # Normalising a relative path keeps leading "..", which is what marks an escape;
    # an absolute one would silently clamp "/../x" to "/x".
    normalised = posixpath.normpath(joined)
    if normalised == ".." or normalised.startswith("../"):
        return None
    return "" if normalised == "." else normalised


def _language_classes(value: str) -> str | None:
    # fenced_code marks blocks with "language-x" for highlighters; any other class
    # could pick up the site's own CSS.
    kept = [name for name in value.split() if _LANGUAGE_CLASS.fullmatch(name)]
    return " ".join(kept) or None


def check_length(text: str, *, field: str, limit: int = MAX_MARKDOWN_CHARS) -> str:
    """`text` if it is within `limit` characters; a clear 400 naming `field` otherwise."""
    if len(text) > limit:
        raise ValidationError(
            f"{field} is {len(text):,} characters long; the limit is {limit:,}.", field=field
        )
    return text


# -- Markdown fields: rendered when written ------------------------------------------------
#
# A model with a Markdown field keeps its HTML beside it (`<field>_html`) with the
# renderer version that made it (`<field>_html_version`). Its services render on write
# (`render_field`); pages and the API read `shown_html`. Each app registers its fields
# (`register_markdown_field`) so that `manage.py rerender_markdown` (run after `migrate`
# by `make run` and the Compose web service) renders stale rows again after a renderer
# change. A row still stale when read is rendered for that answer only: linear time,
# bounded by the field's length limit.

Render = Callable[[Any, str], str]


@dataclass(frozen=True)
class MarkdownField:
    model: type[models.Model]
    field: str
    render: Render  # (instance, text) -> HTML, e.g. with the instance's link rewriting

    @property
    def html_field(self) -> str:
        return f"{self.field}_html"

    @property
    def version_field(self) -> str:
        return f"{self.field}_html_version"


_markdown_fields: dict[tuple[str, str], MarkdownField] = {}


def plain(instance: Any, text: str) -> str:
    """The default `render`: no repository to point links into."""
    return render_markdown(text)


def register_markdown_field(model: type[models.Model], field: str, render: Render = plain) -> None:
    _markdown_fields[(model._meta.label, field)] = MarkdownField(model, field, render)


def markdown_fields() -> list[MarkdownField]:
    return list(_markdown_fields.values())


def _registered(instance: models.Model, field: str) -> MarkdownField:
    return _markdown_fields[(instance._meta.label, field)]


def render_field(instance: models.Model, field: str) -> list[str]:
    """Render `instance.<field>` into its stored HTML; the names of the fields set (for
    `save(update_fields=…)`)."""
    spec = _registered(instance, field)
    setattr(instance, spec.html_field, spec.render(instance, getattr(instance, field)))
    setattr(instance, spec.version_field, RENDERER_VERSION)
    return [spec.html_field, spec.version_field]


def shown_html(instance: models.Model, field: str) -> str:
    """The HTML to show for `instance.<field>`: as stored when this renderer made it."""
    spec = _registered(instance, field)
    if getattr(instance, spec.version_field) == RENDERER_VERSION:
        return getattr(instance, spec.html_field)
    return spec.render(instance, getattr(instance, field))


def rerender_stale(batch_size: int = 500) -> int:
    """Render again every stored Markdown field made by another renderer version."""
    count = 0
    for spec in markdown_fields():
        stale = spec.model._default_manager.exclude(**{spec.version_field: RENDERER_VERSION})
        for instance in stale.iterator(chunk_size=batch_size):
            fields = render_field(instance, spec.field)
            instance.save(update_fields=fields)
            count += 1
    return count


def _nesting_depth(rendered: str) -> int:
    """How deep the elements of `rendered` nest (unclosed ones count as open): one pass."""
    depth = deepest = 0
    for closing, name, self_closing in _TAG.findall(rendered):
        if name.lower() in _VOID or self_closing:
            continue
        if closing:
            depth = max(depth - 1, 0)
        else:
            depth += 1
            deepest = max(deepest, depth)
    return deepest
