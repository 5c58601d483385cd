"""Pages of change proposals, and of keeping a fork up to date with its upstream."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from designs import forms, rollup, selectors, services
from designs.selectors import REVISION_PLACEHOLDER
from designs.services import proposals
from designs.views.pages import (
    DESIGNS_PER_PAGE,
    WRITERS,
    detail_url,
    diff_context,
    load_design,
    render_design_page,
)
from hub.auth import signed_in_user
from hub.exceptions import NotFound, PermissionDenied
from hub.markdown import shown_html
from hub.views import form_call, hub_page

# -- proposals ------------------------------------------------------------------------------

PROPOSAL_FILTERS = ("open", "merged", "closed", "all")


@hub_page
def design_proposals(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = load_design(request, owner, slug)
    status = request.GET.get("status") or "open"
    if status not in PROPOSAL_FILTERS:
        raise Http404("No such list.")
    found = selectors.proposals_of(design, status=None if status == "all" else status)
    page = Paginator(found, DESIGNS_PER_PAGE).get_page(request.GET.get("page"))
    can_propose = request.user.is_authenticated and bool(selectors.proposal_sources_for(request.user, design))
    return render_design_page(
        request,
        "designs/proposals.html",
        design,
        role,
        "proposals",
        page=page,
        status=status,
        filters=PROPOSAL_FILTERS,
        can_propose=can_propose,
    )


@login_required
@hub_page
def design_proposal_new(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = load_design(request, owner, slug)
    sources = {d.full_name: d for d in selectors.proposal_sources_for(request.user, design)}
    if not sources:
        raise PermissionDenied(
            f"You can write to no design of {design.full_name}'s fork network: fork it first."
        )
    branches = [name for name, _ in design.repo.branches()]
    wanted = request.GET.get("source") or next(
        (name for name, d in sources.items() if d.pk != design.pk), design.full_name
    )
    form = forms.ProposalForm(
        request.POST or None,
        sources=list(sources),
        branches=branches,
        initial={
            "source": wanted,
            "source_branch": request.GET.get("branch") or design.default_branch,
            "target_branch": design.default_branch,
        },
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        ok, proposal = form_call(
            form,
            proposals.proposal_create,
            target=design,
            user=request.user,
            source=sources[data["source"]],
            source_branch=data["source_branch"],
            target_branch=data["target_branch"],
            title=data["title"],
            description=data["description"],
        )
        if ok:
            messages.success(request, f"Opened proposal #{proposal.number}.")
            return redirect("design-proposal", owner=owner, slug=slug, number=proposal.number)
    return render_design_page(request, "designs/proposal_new.html", design, role, "proposals", form=form)


def _pinned(html: str, head: str) -> str:
    """Stored proposal HTML with its links pointing into the proposal's current head."""
    return html.replace(REVISION_PLACEHOLDER, head)


@hub_page
def design_proposal(request: HttpRequest, owner: str, slug: str, number: int) -> HttpResponse:
    design, role = load_design(request, owner, slug)
    proposal = selectors.proposal_get(design, number)
    action = request.POST.get("action")
    comment_form = forms.CommentForm(request.POST if action == "comment" else None)
    if request.method == "POST":
        if not request.user.is_authenticated:
            raise PermissionDenied("Log in to take part.")
        here = reverse("design-proposal", args=[owner, slug, proposal.number])
        if action == "comment" and comment_form.is_valid():
            ok, _ = form_call(
                comment_form,
                proposals.proposal_comment,
                proposal=proposal,
                user=request.user,
                body=comment_form.cleaned_data["body"],
            )
            if ok:
                return redirect(here + "#comments")
        elif action == "merge":
            sha = proposals.proposal_merge(
                proposal=proposal,
                user=request.user,
                expected_head=request.POST.get("expected_head") or None,
                expected_target=request.POST.get("expected_target") or None,
            )
            messages.success(request, f"Merged into {proposal.target_branch} ({sha[:7]}).")
            return redirect(here)
        elif action == "close":
            proposals.proposal_close(proposal=proposal, user=request.user)
            messages.success(request, f"Closed proposal #{proposal.number}.")
            return redirect(here)
        elif action == "reopen":
            proposals.proposal_reopen(proposal=proposal, user=request.user)
            messages.success(request, f"Reopened proposal #{proposal.number}.")
            return redirect(here)
    proposal = proposals.proposal_fresh(proposal)
    diff: dict[str, Any] = {"files": [], "has_meshes": False}
    if proposal.head_sha and design.repo.has_object(proposal.head_sha):
        diff = diff_context(
            request,
            design,
            base=proposal.merge_base or None,
            head=proposal.head_sha,
            only_path=request.GET.get("file"),
        )
    assembly_bom, assembly_pending = None, False
    if proposal.head_sha and proposal.target_sha and design.repo.has_object(proposal.head_sha):
        assembly_bom, unread = rollup.assembly_bom_changes(
            design, base=proposal.target_sha, head=proposal.head_sha, viewer=request.user
        )
        for commit in unread:  # read in the background; the page shows it when done
            services.assemblies.assembly_check_stored(design, commit=commit)
        assembly_pending = bool(unread)
    comments = [
        {"comment": comment, "html": _pinned(shown_html(comment, "body"), proposal.head_sha)}
        for comment in proposal.comments.select_related("author", "proposal__target__owner")
    ]
    return render_design_page(
        request,
        "designs/proposal.html",
        design,
        role,
        "proposals",
        proposal=proposal,
        description_html=_pinned(shown_html(proposal, "description"), proposal.head_sha),
        commits=selectors.proposal_commits(proposal),
        head=proposal.head_sha,
        **diff,
        assembly_bom=assembly_bom,
        assembly_pending=assembly_pending,
        comments=comments,
        comment_form=comment_form,
        can_change=selectors.proposal_can_change(proposal, request.user),
        can_merge=role in WRITERS and proposal.is_open,
    )


# -- keeping a fork up to date ------------------------------------------------------------


@login_required
@hub_page
def design_sync(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = load_design(request, owner, slug, need="write")
    if request.method == "POST":
        result = proposals.design_sync_upstream(
            design=design, user=signed_in_user(request), merge=request.POST.get("action") == "merge"
        )
        words = {
            "up-to-date": "Already up to date with the upstream.",
            "fast-forward": f"Fast-forwarded {design.default_branch} to the upstream ({(result.head or '')[:7]}).",
            "merged": f"Merged the upstream into {design.default_branch} ({(result.head or '')[:7]}).",
        }
        messages.success(request, words[result.outcome])
        return redirect(detail_url(design))
    status = selectors.design_upstream_status(design, request.user)
    if status is None:
        raise NotFound(f"{design.full_name} is not a fork of a design you can see.")
    return render_design_page(request, "designs/sync.html", design, role, "files", status=status)
