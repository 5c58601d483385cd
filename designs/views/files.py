"""Editing a text file in the browser, and the Markdown preview it uses.

The commit is `services.design_commit` with `expected_head`: the commit the page was opened
at. If the branch moved since, the edit is refused with the page as typed, never written over
someone else's commit.
"""

from __future__ import annotations

from django import forms as django_forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.base import ContentFile
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from designs import presenters, selectors, services
from designs.models import Design
from designs.views.pages import load_design, render_design_page, with_query
from hub.auth import signed_in_user
from hub.exceptions import Conflict, ValidationError
from hub.markdown import MAX_MARKDOWN_CHARS, check_length, render_markdown
from hub.views import hub_page

# Larger text files are left to git: a textarea of megabytes helps nobody.
MAX_EDIT_BYTES = 256 * 1024
MARKDOWN_SUFFIXES = (".md", ".markdown")


class FileEditForm(django_forms.Form):
    content = django_forms.CharField(
        required=False,
        strip=False,
        max_length=MAX_EDIT_BYTES,
        widget=django_forms.Textarea(attrs={"rows": 24}),
    )
    message = django_forms.CharField(max_length=500)
    base = django_forms.RegexField(regex=r"^[0-9a-f]{40,64}$", widget=django_forms.HiddenInput)


def _not_editable(design: Design, *, branch_head: str, path: str) -> tuple[str | None, str]:
    """Why the file cannot be edited here (or None), and its text."""
    _, entry = selectors.design_file(design, rev=branch_head, path=path)
    if selectors.design_lfs_pointer(design, entry):
        return "This file is stored with Git LFS: upload a new version instead.", ""
    if (entry.size or 0) > MAX_EDIT_BYTES:
        return (
            f"This file is over {MAX_EDIT_BYTES // 1024} KiB: edit it with git, or upload a new version.",
            "",
        )
    data = design.repo.read_blob(entry.sha)
    if not presenters.looks_like_text(data):
        return "This is a binary file: only text files can be edited in the browser.", ""
    try:
        return None, data.decode("utf-8")
    except UnicodeDecodeError:
        return "This file is not UTF-8 text: edit it with git.", ""


@login_required
@hub_page
def design_file_edit(request: HttpRequest, owner: str, slug: str, path: str) -> HttpResponse:
    design, role = load_design(request, owner, slug, need="write")
    branches = [name for name, _ in design.repo.branches()]
    branch = request.GET.get("ref") or design.default_branch
    if branch not in branches:
        raise ValidationError("Files are edited on a branch: open the file from a branch.")
    head = selectors.design_resolve(design, branch)
    refusal, text = _not_editable(design, branch_head=head, path=path)
    form = None
    if not refusal:
        form = FileEditForm(
            request.POST if request.method == "POST" else None,
            initial={"content": text, "message": f"Edit {path}", "base": head},
        )
    if form is not None and request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            sha = services.design_commit(
                design=design,
                author=signed_in_user(request),
                message=data["message"],
                branch=branch,
                uploads=[services.Upload(path=path, content=ContentFile(data["content"].encode("utf-8")))],
                expected_head=data["base"],
            )
        except Conflict:
            form.add_error(
                None,
                f"{branch} has changed since you opened this file: nothing was saved. "
                "Copy your text, reload the page to see the new version, and make your edit again.",
            )
        except ValidationError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Committed your edit of {path} to {branch} ({sha[:7]}).")
            blob = reverse("design-blob", args=[design.owner.username, design.slug, path])
            return redirect(with_query(blob, ref=branch))
    return render_design_page(
        request,
        "designs/file_edit.html",
        design,
        role,
        "files",
        form=form,
        refusal=refusal,
        path=path,
        branch=branch,
        markdown=path.lower().endswith(MARKDOWN_SUFFIXES),
    )


@require_POST
@login_required
@hub_page
def design_markdown_preview(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    """The hub's rendering of posted Markdown, bounded like every Markdown field."""
    design, _ = load_design(request, owner, slug, need="write")
    text = request.POST.get("text", "")
    try:
        check_length(text, field="text", limit=MAX_MARKDOWN_CHARS)
    except ValidationError as exc:
        return JsonResponse({"detail": exc.message}, status=400)
    return JsonResponse({"html": render_markdown(text)})
