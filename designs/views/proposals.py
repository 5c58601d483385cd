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
from designs.models import ChangeProposal, Design
from designs.selectors import REVISION_PLACEHOLDER
from designs.services import conflicts, proposals
from designs.views.pages import (
    DESIGNS_PER_PAGE,
    WRITERS,
    detail_url,
    diff_context,
    load_design,
    render_design_page,
)
from hub.auth import signed_in_user
from hub.exceptions import HubError, NotFound, PermissionDenied
from hub.markdown import shown_html
from hub.views import form_call, hub_page

# -- proposals ------------------------------------------------------------------------------

PROPOSAL_FILTERS = ("open", "merged", "closed", "all")
MAX_HUNKS = 10_000


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


def _targets(request: HttpRequest, design: Design) -> dict[str, Design]:
    """Where a proposal opened from `design`'s page may go: its upstream first (when this
    person sees it), then the design itself; never a pull mirror."""
    found: list[Design] = []
    if design.forked_from_id is not None:
        found += list(selectors.designs_visible_to(request.user).filter(pk=design.forked_from_id))
    found.append(design)
    return {d.full_name: d for d in found if selectors.design_mirror(d) is None}


def _branch_names(design: Design) -> list[str]:
    names = [name for name, _ in design.repo.branches()]
    # The default branch first: it is the usual choice.
    return sorted(names, key=lambda name: name != design.default_branch)


def _pick(wanted: str | None, offered: list[str], fallback: str | None) -> str:
    if wanted in offered:
        return str(wanted)
    if fallback in offered:
        return str(fallback)
    return offered[0] if offered else ""


@login_required
@hub_page
def design_proposal_new(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    """Pick the branches (GET: the page shows the commits and the diff they would propose),
    then open the proposal (POST, with the picks that were previewed)."""
    design, role = load_design(request, owner, slug)
    chosen = request.POST if request.method == "POST" else request.GET
    targets = _targets(request, design)
    if not targets:
        raise PermissionDenied(
            f"{design.full_name} is a read-only mirror: propose the change where it comes from."
        )
    target = targets[_pick(chosen.get("target"), list(targets), None)]
    sources = {d.full_name: d for d in selectors.proposal_sources_for(request.user, target)}
    if not sources:
        raise PermissionDenied(
            f"You can write to no design of {design.full_name}'s fork network: fork it first."
        )
    other = (
        design.full_name
        if design.pk != target.pk
        else next((n for n, d in sources.items() if d.pk != target.pk), None)
    )
    source = sources[_pick(chosen.get("source"), list(sources), other)]
    target_branches = _branch_names(target)
    target_branch = _pick(chosen.get("target_branch"), target_branches, target.default_branch)
    source_branches = _branch_names(source)
    usual = source.default_branch
    if source.pk == target.pk:
        usual = next((b for b in source_branches if b != target_branch), usual)
    source_branch = _pick(chosen.get("source_branch") or chosen.get("branch"), source_branches, usual)
    choices = {
        "sources": list(sources),
        "source_branches": source_branches,
        "targets": list(targets),
        "target_branches": target_branches,
    }
    picks = {
        "source": source.full_name,
        "source_branch": source_branch,
        "target": target.full_name,
        "target_branch": target_branch,
    }
    pick_form = forms.ProposalPickForm(initial=picks, **choices)
    form = forms.ProposalForm(request.POST or None, initial=picks, **choices)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        ok, proposal = form_call(
            form,
            proposals.proposal_create,
            target=target,
            user=request.user,
            source=source,
            source_branch=data["source_branch"],
            target_branch=data["target_branch"],
            title=data["title"],
            description=data["description"],
        )
        if ok:
            messages.success(request, f"Opened proposal #{proposal.number}.")
            return redirect(
                "design-proposal", owner=target.owner.username, slug=target.slug, number=proposal.number
            )
    preview = proposals.proposal_preview(
        source=source, source_branch=source_branch, target=target, target_branch=target_branch
    )
    diff: dict[str, Any] = {}
    if preview.head and not preview.problem:
        # The diff pages' machinery: cached rows now, the rest filled in from the background.
        diff = diff_context(request, source, base=preview.base, head=preview.head, only_path=None)
    return render_design_page(
        request,
        "designs/proposal_new.html",
        design,
        role,
        "proposals",
        form=form,
        pick_form=pick_form,
        preview=preview,
        **diff,
    )


def _pinned(html: str, head: str) -> str:
    """Stored proposal HTML with its links pointing into the proposal's current head."""
    return html.replace(REVISION_PLACEHOLDER, head)


@hub_page
def design_proposal(request: HttpRequest, owner: str, slug: str, number: int) -> HttpResponse:
    design, role = load_design(request, owner, slug)
    proposal = selectors.proposal_get(design, number)
    action = request.POST.get("action")
    resolve_error = ""
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
        elif action == "resolve":
            try:
                done = conflicts.proposal_resolve(
                    proposal=proposal,
                    user=signed_in_user(request),
                    resolutions=_posted_resolutions(request),
                    expected_head=request.POST.get("expected_head", ""),
                    expected_target=request.POST.get("expected_target", ""),
                )
            except PermissionDenied:
                raise
            except HubError as exc:
                # Shown above the form, which keeps what was chosen and typed.
                resolve_error = exc.message
            else:
                if done.where == "target":
                    messages.success(request, f"Resolved and merged into {done.branch} ({done.sha[:7]}).")
                else:
                    messages.success(
                        request,
                        f"Committed the resolution to {done.branch} ({done.sha[:7]}); it can be merged now.",
                    )
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
        resolver_side=conflicts.resolver_side(proposal, request.user),
        conflict_rows=_conflict_rows(request, proposal)
        if proposal.merge_state == "conflict" and proposal.is_open
        else [],
        resolve_error=resolve_error,
        clone_url=selectors.clone_url(design, request),
        source_clone_url=selectors.clone_url(proposal.source, request) if proposal.source else "",
    )


def _posted_resolutions(request: HttpRequest) -> list[conflicts.Resolution]:
    """The resolution form's choices: per file i, `path-i`, `keep-i`, and its `hunk-i-n`
    choices, `text-i` or `upload-i`."""
    found = []
    for key in request.POST:
        if not key.startswith("path-"):
            continue
        i = key.removeprefix("path-")
        count = request.POST.get(f"hunks-{i}", "")
        # The page says how many stretches it showed; the service checks the number.
        shown = min(int(count), MAX_HUNKS) if count.isdigit() else 0
        hunks = [request.POST.get(f"hunk-{i}-{n}", "") for n in range(shown)]
        found.append(
            conflicts.Resolution(
                path=request.POST[key],
                keep=request.POST.get(f"keep-{i}", ""),
                hunks=hunks,
                text=request.POST.get(f"text-{i}"),
                upload=request.FILES.get(f"upload-{i}"),
            )
        )
    return found


def _conflict_rows(request: HttpRequest, proposal: ChangeProposal) -> list[dict[str, Any]]:
    """The conflicting files as the resolution form shows them, with what was posted (a
    refused resolution comes back as it was sent)."""
    posted = request.POST if request.POST.get("action") == "resolve" else None
    rows = []
    for i, file in enumerate(conflicts.proposal_conflict_files(proposal)):
        keep = (posted.get(f"keep-{i}") if posted else None) or ("hunks" if file.is_text else "")
        hunks, n = [], 0
        for hunk in file.hunks:
            if not hunk.is_conflict:
                continue
            chosen = posted.get(f"hunk-{i}-{n}") if posted else None
            hunks.append({"hunk": hunk, "n": n, "chosen": chosen or ""})
            n += 1
        text = posted.get(f"text-{i}") if posted and posted.get(f"text-{i}") is not None else file.marked_text
        rows.append({"i": i, "file": file, "keep": keep, "hunks": hunks, "text": text})
    return rows


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
