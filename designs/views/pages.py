"""What every design page shares: loading the design for the requester, the page frame
(role, upstream, mirror, open proposals) and links back to the design."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from designs import presenters, selectors
from designs.models import Design
from designs.services import diff_pages, proposals
from hub.exceptions import PermissionDenied

DESIGNS_PER_PAGE = 20
WRITERS = ("owner", "write")


def load_design(
    request: HttpRequest, owner: str, slug: str, *, need: str | None = None
) -> tuple[Design, str | None]:
    """The design as the requester may see it, and their role; `need` 'write' or 'owner'."""
    design = selectors.design_get(user=request.user, owner=owner, slug=slug)
    role = selectors.design_role(design, request.user)
    if need == "write" and role not in WRITERS:
        raise PermissionDenied(f"You cannot change {design.full_name}.")
    if need == "owner" and role != "owner":
        raise PermissionDenied(f"Only {design.owner.username} can change the settings of {design.full_name}.")
    return design, role


def render_design_page(
    request: HttpRequest, template: str, design: Design, role: str | None, tab: str, **context: Any
) -> HttpResponse:
    upstream = None
    if design.forked_from_id is not None:
        # The upstream may have turned private since: link to it only if this person sees it.
        visible = selectors.designs_visible_to(request.user).filter(pk=design.forked_from_id)
        upstream = design.forked_from if visible.exists() else None
    # A pull mirror changes only by its refresh: no page offers to write to it.
    mirror = selectors.design_mirror(design)
    return render(
        request,
        template,
        {
            "design": design,
            "role": role,
            "can_write": role in WRITERS and mirror is None,
            "is_owner": role == "owner",
            "upstream": upstream,
            "mirror": mirror,
            "open_proposals": selectors.proposals_of(design, status="open").count(),
            "propose_prompt": propose_prompt(request, design, upstream) if template == DESIGN_PAGE else None,
            "tab": tab,
            **context,
        },
    )


DESIGN_PAGE = "designs/detail.html"


def propose_prompt(request: HttpRequest, design: Design, upstream: Design | None) -> dict[str, Any] | None:
    """The design page's "compare & propose" prompt, for a writer looking at a branch with
    commits to propose: a branch other than the default one, or a fork's default branch
    ahead of its upstream (after a commit or a push). None when there is nothing to offer."""
    user = request.user
    if not user.is_authenticated or selectors.design_mirror(design) is not None:
        return None
    if not selectors.design_can_write(design, user):
        return None
    branch = request.GET.get("ref") or design.default_branch
    head = design.repo.branch_head(branch)
    if head is None:
        return None
    if branch == design.default_branch:
        status = selectors.design_upstream_status(design, user) if upstream is not None else None
        if status is None or status.ahead == 0:
            return None
        into = f"{upstream.full_name}:{status.upstream_branch}" if upstream else ""
    else:
        if upstream is None:
            default_head = design.repo.branch_head(design.default_branch)
            if default_head and design.repo.is_ancestor(head, default_head):
                return None
            into = design.default_branch
        else:
            into = f"{upstream.full_name}:{upstream.default_branch}"
    already = proposals.proposal_open_from(source=design, source_branch=branch)
    return {
        "branch": branch,
        "into": into,
        "open": already,
        "url": with_query(
            reverse("design-proposal-new", args=[design.owner.username, design.slug]),
            source=design.full_name,
            source_branch=branch,
        ),
    }


def with_query(url: str, **params: str | None) -> str:
    query = urlencode({k: v for k, v in params.items() if v})
    return f"{url}?{query}" if query else url


def detail_url(design: Design, ref: str | None = None) -> str:
    url = reverse("design-detail", args=[design.owner.username, design.slug])
    return with_query(url, ref=ref if ref != design.default_branch else None)


def diff_context(
    request: HttpRequest, design: Design, *, base: str | None, head: str, only_path: str | None
) -> dict[str, Any]:
    """What a commit, compare or proposal page shows of its diff: the rows the cache has,
    progress for those still being computed, and the JSON endpoint that fills them in."""
    page = diff_pages.diff_page(design=design, base=base, head=head, only_path=only_path)
    files = presenters.diff_rows(design, page.files, query=request.GET, pending=page.pending_files)
    state_url = with_query(
        reverse("design-diff-state", args=[design.owner.username, design.slug]),
        base=base,
        head=head,
        file=only_path,
    )
    return {
        "files": files,
        "diff": page,
        "diff_state_url": state_url,
        "has_meshes": any(row["mesh"] for row in files),
    }
