"""Where a page may send the browser after a form: a path on this site, never elsewhere.

Forms that return the person to the page they came from post a `next` field. It is
chosen by whoever made the form, so it is hostile input: `//evil.example`, `/\\evil`,
`https://evil.example/`, `javascript:…` and their whitespace-padded variants would each
make the hub an open redirect. `safe_next` accepts only a relative path on this hub
(Django's `url_has_allowed_host_and_scheme` with no host allowed); anything else is
replaced by the view's default.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import redirect, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme


def safe_next(request: HttpRequest, default: str) -> str:
    """The posted (or, for a GET, queried) `next` if it is a path on this site, else `default`
    (a URL name or path, as `redirect` takes)."""
    target = (request.POST if request.method == "POST" else request.GET).get("next") or ""
    if (
        target.startswith("/")
        and url_has_allowed_host_and_scheme(target, allowed_hosts=None, require_https=False)
        and not target.startswith(("//", "/\\"))
        # Browsers drop tabs and line breaks inside URLs: "/\t/evil" is "//evil" to them.
        and not any(ord(c) < 32 or ord(c) == 127 for c in target)
    ):
        return target
    return resolve_url(default)


def redirect_back(request: HttpRequest, default: str) -> HttpResponseRedirect:
    """Redirect to `safe_next(request, default)`."""
    return redirect(safe_next(request, default))
