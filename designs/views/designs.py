"""Server-rendered pages of designs: thin views over designs.selectors and designs.services.

Every view is wrapped in `hub_page`, which turns NotFound into a 404 and PermissionDenied
into a 403; refusals that belong to a form are shown in it through `form_call`.
"""

from __future__ import annotations

import html
import re
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse

from designs import forms, okh, paths, presenters, rollup, selectors, services
from designs.git import Commit
from designs.meshes import is_mesh_path
from designs.models import Design, Licence
from designs.panels import design_panels
from designs.rawfiles import serve_blob, serve_zip
from designs.search import design_search
from designs.services import cad as cad_files
from designs.services import diff_pages, mirrors
from designs.services.history import history_page
from designs.views.pages import (
    DESIGNS_PER_PAGE,
    WRITERS,
    detail_url,
    diff_context,
    load_design,
    render_design_page,
    with_query,
)
from hub.auth import BadCredentials, Viewer, resolve, signed_in_user, viewer
from hub.exceptions import NotFound, PermissionDenied
from hub.models import User
from hub.redirects import redirect_back
from hub.views import form_call, hub_page

COMMITS_PER_PAGE = 30
MAX_SHOWN_TEXT_BYTES = 512 * 1024
PICTURE_NAMES = frozenset({"cover", "main", "photo", "hero"})
# In the README's sanitised HTML (hub.markdown): its first image, and that image's address
# (rewritten to the design's raw files for a relative one) and text.
_FIRST_IMAGE = re.compile(r"<img\b[^>]*>")
_IMAGE_SOURCE = re.compile(r'\bsrc="([^"]+)"')
_IMAGE_ALT = re.compile(r'\balt="([^"]*)"')


def _requester(request: HttpRequest) -> Viewer:
    """Session user, or a token's owner (raw files are fetched by scripts too).

    These pages only read, so any active token will do; a wrong one is a 404 like any
    design the requester may not see.
    """
    try:
        found = resolve(request)
    except BadCredentials:
        raise Http404 from None
    return found[0] if found is not None else viewer(request)


def design_raw(request: HttpRequest, owner: str, slug: str, path: str) -> HttpResponseBase:
    try:
        design = selectors.design_get(user=_requester(request), owner=owner, slug=slug)
        _, entry = selectors.design_file(design, rev=request.GET.get("ref"), path=path)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    return serve_blob(request, design, entry, download="download" in request.GET)


def design_picture(request: HttpRequest, owner: str, slug: str, blob_sha: str, name: str) -> HttpResponseBase:
    """A picture blob of the design by its sha (a diff page's before or after), typed by
    `name`, served as raw files are (sandboxed, LFS content for a pointer)."""
    try:
        design = selectors.design_get(user=_requester(request), owner=owner, slug=slug)
        entry = selectors.design_image_blob(design, blob_sha=blob_sha, name=name)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    return serve_blob(request, design, entry)


def design_archive(request: HttpRequest, owner: str, slug: str, rev: str) -> HttpResponseBase:
    """The whole design at a branch, tag or commit as a ZIP (GitHub's "Source code (zip)"),
    LFS files as their content, streamed."""
    try:
        design = selectors.design_get(user=_requester(request), owner=owner, slug=slug)
        sha = selectors.design_resolve(design, rev)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    name = rev if rev not in (sha, "") and "/" not in rev else sha[:10]
    return serve_zip(design, sha, name=name.replace("/", "-"))


def design_okh(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    """The Open Know-How manifest of the design's default branch."""
    return _okh_response(request, owner, slug, tag=None)


def design_release_okh(request: HttpRequest, owner: str, slug: str, tag: str) -> HttpResponse:
    """The Open Know-How manifest of one release (tag): its `version` is the tag."""
    return _okh_response(request, owner, slug, tag=tag)


def _okh_response(request: HttpRequest, owner: str, slug: str, *, tag: str | None) -> HttpResponse:
    try:
        design = selectors.design_get(user=_requester(request), owner=owner, slug=slug)
        manifest = okh.okh_manifest(design, root=okh.hub_root(request), tag=tag)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    return HttpResponse(okh.okh_render(manifest), content_type="application/toml; charset=utf-8")


def okh_manifests(request: HttpRequest) -> HttpResponse:
    """Every public design's manifest address, one per line: what OKH crawlers read."""
    urls = okh.okh_manifest_urls(root=okh.hub_root(request))
    return HttpResponse("".join(f"{url}\n" for url in urls), content_type="text/plain; charset=utf-8")


def design_thumbnail(request: HttpRequest, owner: str, slug: str, blob_sha: str) -> HttpResponseBase:
    """The PNG rendered for a mesh blob, if the blob is in a design the requester can see."""
    try:
        design = selectors.design_get(user=_requester(request), owner=owner, slug=slug)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    path = selectors.thumbnail_path(blob_sha)
    if len(blob_sha) != 40 or not path.exists() or not design.repo.has_object(blob_sha):
        raise Http404("No thumbnail for this file (yet).")
    response = FileResponse(path.open("rb"), content_type="image/png")
    response["Cache-Control"] = "private, max-age=86400"  # a blob's picture never changes
    response["ETag"] = f'"{blob_sha}-png"'
    return response


def design_mesh_data(request: HttpRequest, owner: str, slug: str, blob_sha: str) -> HttpResponseBase:
    """The triangles of a mesh blob for the 3D viewer (float32 LE, 9 per triangle, mm)."""
    return _viewer_file(request, owner, slug, blob_sha, suffix=".bin")


def design_mesh_extra(request: HttpRequest, owner: str, slug: str, blob_sha: str) -> HttpResponseBase:
    """What the 3D viewer draws besides the triangles: colour groups and open edges
    (designs.meshes.mesh_viewer_extra). Analyses older than it have none: a 404."""
    return _viewer_file(request, owner, slug, blob_sha, suffix=".extra")


def _viewer_file(
    request: HttpRequest, owner: str, slug: str, blob_sha: str, *, suffix: str
) -> HttpResponseBase:
    try:
        design = selectors.design_get(user=_requester(request), owner=owner, slug=slug)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    path = selectors.viewer_path(blob_sha).with_suffix(suffix)
    if len(blob_sha) != 40 or not path.exists() or not design.repo.has_object(blob_sha):
        raise Http404("No 3D data for this file (yet).")
    response = FileResponse(path.open("rb"), content_type="application/octet-stream")
    response["Cache-Control"] = "private, max-age=86400"  # a blob's analysis never changes
    response["ETag"] = f'"{blob_sha}-{suffix[1:]}"'
    return response


# -- helpers ------------------------------------------------------------------------------


def _ref(request: HttpRequest, design: Design) -> str:
    return request.GET.get("ref") or design.default_branch


def _refs(design: Design, ref: str) -> dict[str, Any]:
    """What the branch/tag selector needs, and the branch writes would go to (or None)."""
    branches = [name for name, _ in design.repo.branches()]
    tags = [tag.name for tag in design.repo.tags()]
    return {
        "ref": ref,
        "branches": branches,
        "tag_names": tags,
        "ref_is_other": ref not in branches and ref not in tags,
        "write_branch": ref if ref in branches or not branches else None,
    }


def _crumbs(path: str) -> list[tuple[str, str]]:
    """(name, path) of each folder on the way to `path`, for a breadcrumb trail."""
    parts = path.split("/") if path else []
    return [(part, "/".join(parts[: i + 1])) for i, part in enumerate(parts)]


def _page_number(request: HttpRequest) -> int:
    try:
        number = int(request.GET.get("page") or 1)
    except ValueError:
        raise Http404("No such page.") from None
    if number < 1:
        raise Http404("No such page.")
    return number


# -- listing and creating -----------------------------------------------------------------


@hub_page
def design_list(request: HttpRequest) -> HttpResponse:
    form = forms.SearchForm(request.GET)
    designs = selectors.designs_visible_to(request.user)
    text = ""
    if form.is_valid():
        query = form.cleaned_data
        text = query["q"].strip()
        if query["tag"]:
            designs = designs.filter(tags__name=query["tag"].strip().lower())
        if query["licence"]:
            designs = designs.filter(licence=query["licence"])
        if query["owner"]:
            designs = designs.filter(owner__username=query["owner"].strip())
    sort = request.GET.get("sort", "updated")
    found = (
        design_search(viewer=request.user, text=text, within=designs)
        if text
        else selectors.designs_sorted(designs, sort=sort, viewer=request.user)
    )
    page = Paginator(found, DESIGNS_PER_PAGE).get_page(request.GET.get("page"))
    filtered = any(request.GET.get(name) for name in ("q", "tag", "licence", "owner"))
    return render(
        request,
        "designs/list.html",
        {
            "form": form,
            "page": page,
            "designs": presenters.with_covers(
                selectors.with_social_counts(list(page.object_list), viewer=request.user)
            ),
            "filtered": filtered,
            "sort": sort if sort in selectors.DESIGN_SORTS else "updated",
            "sorts": [
                ("updated", "recently updated"),
                ("stars", "stars"),
                ("forks", "forks"),
                ("makes", "makes"),
            ],
        },
    )


@login_required
@hub_page
def design_new(request: HttpRequest) -> HttpResponse:
    form = forms.DesignCreateForm(request.POST or None, initial={"licence": Licence.CERN_OHL_S})
    if request.method == "POST" and form.is_valid():
        ok, design = form_call(form, services.design_create, owner=request.user, **form.cleaned_data)
        if ok:
            messages.success(request, f"Created {design.full_name}. Upload its first files.")
            return redirect(detail_url(design))
    return render(request, "designs/new.html", {"form": form})


# -- browsing -----------------------------------------------------------------------------


@hub_page
def design_detail(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = load_design(request, owner, slug)
    ref = _ref(request, design)
    fork_count = selectors.designs_visible_to(request.user).filter(forked_from=design).count()
    context: dict[str, Any] = {
        **_refs(design, ref),
        "fork_count": fork_count,
        "clone_url": selectors.clone_url(design, request),
        "upstream_status": selectors.design_upstream_status(design, request.user),
        "panels": design_panels(design),
        "makes": selectors.makes_of_design(design),
        "used_by": rollup.used_by(design, viewer=request.user),
        "latest_release": selectors.latest_release(design),
    }
    mirrors.mirror_refresh_if_due(design)
    if design.repo.is_empty():
        return render_design_page(
            request, "designs/detail.html", design, role, "files", empty=True, **context
        )
    if ref == design.default_branch and design.repo.branch_head(ref) is None:
        # Its default branch was deleted (or never pushed): say so and how to fix it.
        return render_design_page(
            request, "designs/detail.html", design, role, "files", empty=True, missing_default=True, **context
        )
    sha, entries = selectors.design_tree(design, rev=ref)
    readme_path, readme_html = selectors.design_readme(design, sha=sha)
    return render_design_page(
        request,
        "designs/detail.html",
        design,
        role,
        "files",
        sha=sha,
        picture=_top_picture(design, sha=sha, entries=entries, readme_html=readme_html),
        entry_rows=presenters.entry_rows(design, entries),
        last_commit=design.repo.commit(sha),
        readme_path=readme_path,
        readme_html=readme_html,
        **context,
    )


def _top_picture(design: Design, *, sha: str, entries: list, readme_html: str) -> dict[str, str] | None:
    """The picture at the top of the design page: the README's first image (one of the
    design's own files: the page loads nothing from elsewhere), else an image at the root
    named cover, main, photo or hero, else the cover thumbnail of the main part."""
    first = _FIRST_IMAGE.search(readme_html or "")
    if first:
        source = _IMAGE_SOURCE.search(first.group(0))
        if source and source.group(1).startswith("/") and not source.group(1).startswith("//"):
            alt = _IMAGE_ALT.search(first.group(0))
            # Unescaped here: the template escapes them again.
            return {
                "url": html.unescape(source.group(1)),
                "alt": html.unescape(alt.group(1)) if alt else design.title,
            }
    for entry in entries:
        stem = entry.name.lower().rpartition(".")[0]
        if entry.kind == "blob" and stem in PICTURE_NAMES and paths.is_image_path(entry.name):
            url = reverse("design-raw", args=[design.owner.username, design.slug, entry.path])
            return {"url": with_query(url, ref=sha), "alt": design.title}
    cover = presenters.with_covers([design])[0].cover_url
    return {"url": cover, "alt": f"Rendering of {design.title}"} if cover else None


@hub_page
def design_tree(request: HttpRequest, owner: str, slug: str, path: str) -> HttpResponse:
    design, role = load_design(request, owner, slug)
    ref = _ref(request, design)
    path = path.strip("/")
    sha, entries = selectors.design_tree(design, rev=ref, path=path)
    return render_design_page(
        request,
        "designs/tree.html",
        design,
        role,
        "files",
        sha=sha,
        entry_rows=presenters.entry_rows(design, entries),
        path=path,
        parent_path=path.rpartition("/")[0],
        crumbs=_crumbs(path),
        **_refs(design, ref),
    )


@hub_page
def design_blob(request: HttpRequest, owner: str, slug: str, path: str) -> HttpResponse:
    design, role = load_design(request, owner, slug)
    ref = _ref(request, design)
    sha, entry = selectors.design_file(design, rev=ref, path=path)
    raw_url = with_query(
        reverse("design-raw", args=[design.owner.username, design.slug, entry.path]), ref=sha
    )
    text = None
    is_image = paths.is_image_path(entry.name)
    mesh = (
        presenters.mesh_page(design, sha=sha, entry=entry, build_volume=request.GET.get("build_volume") or "")
        if is_mesh_path(entry.path)
        else None
    )
    lfs = selectors.design_lfs_pointer(design, entry)
    size = lfs.size if lfs else entry.size
    cad = None if mesh or is_image else presenters.cad_file(entry.name)
    if cad and cad["freecad"]:
        cad["thumbnail_reason"] = cad_files.fcstd_thumbnail_prepare(
            design=design, entry=entry, size=size or 0
        )
        if not cad["thumbnail_reason"]:
            cad["thumbnail_url"] = reverse(
                "design-thumbnail", args=[design.owner.username, design.slug, entry.sha]
            )
    too_large = (size or 0) > MAX_SHOWN_TEXT_BYTES
    if not is_image and not mesh and not too_large and not lfs:
        data = design.repo.read_blob(entry.sha)
        if presenters.looks_like_text(data):
            text = data.decode("utf-8", "replace")
    refs = _refs(design, ref)
    context: dict[str, Any] = {}
    if role in WRITERS and refs["write_branch"]:
        branch = refs["write_branch"]
        context["delete_form"] = forms.DeleteFileForm(
            initial={"path": entry.path, "branch": branch, "message": f"Delete {entry.path}"}
        )
        context["rename_form"] = forms.RenameFileForm(
            initial={
                "path": entry.path,
                "branch": branch,
                "new_path": entry.path,
                "message": f"Rename {entry.path}",
            }
        )
    folder, _, _ = entry.path.rpartition("/")
    return render_design_page(
        request,
        "designs/blob.html",
        design,
        role,
        "files",
        sha=sha,
        entry=entry,
        size=size,
        lfs=lfs,
        raw_url=raw_url,
        text=text,
        is_image=is_image,
        mesh=mesh,
        cad=cad,
        too_large=too_large,
        crumbs=_crumbs(folder),
        **refs,
        **context,
    )


@hub_page
def design_history(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = load_design(request, owner, slug)
    ref = _ref(request, design)
    path = (request.GET.get("path") or "").strip("/")
    number = _page_number(request)
    history = history_page(
        design=design,
        rev=ref,
        path=path or None,
        offset=(number - 1) * COMMITS_PER_PAGE,
        limit=COMMITS_PER_PAGE,
    )
    if not history.commits and number > 1:
        raise Http404("No such page.")
    # git already read just this page; the paginator only numbers the pages. A long
    # history not counted yet has newer/older links without a page count.
    page = (
        Paginator(range(history.total), COMMITS_PER_PAGE).page(number) if history.total is not None else None
    )
    return render_design_page(
        request,
        "designs/history.html",
        design,
        role,
        "history",
        commits=history.commits,
        page=page,
        number=number,
        has_next=history.has_next,
        total=history.total,
        path=path,
        **_refs(design, ref),
    )


@hub_page
def design_commit_page(request: HttpRequest, owner: str, slug: str, sha: str) -> HttpResponse:
    design, role = load_design(request, owner, slug)
    sha = selectors.design_resolve(design, sha)
    commit: Commit = design.repo.commit(sha)
    parent = commit.parents[0] if commit.parents else None
    return render_design_page(
        request,
        "designs/commit.html",
        design,
        role,
        "history",
        commit=commit,
        body=commit.message.partition("\n")[2].strip(),
        **diff_context(request, design, base=parent, head=sha, only_path=request.GET.get("file")),
    )


@hub_page
def design_compare(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = load_design(request, owner, slug)
    form = forms.CompareForm(request.GET)
    context: dict[str, Any] = {"form": form, **_refs(design, design.default_branch)}
    if form.is_valid():
        head_rev = form.cleaned_data["head"] or design.default_branch
        ok, head = form_call(form, selectors.design_resolve, design=design, rev=head_rev)
        base = None
        if ok and form.cleaned_data["base"]:
            ok, base = form_call(form, selectors.design_resolve, design=design, rev=form.cleaned_data["base"])
        elif ok:
            # No base given: show what the head commit itself changed.
            parents = design.repo.commit(head).parents
            base = parents[0] if parents else None
        if ok:
            context.update(
                base=base,
                head=head,
                **diff_context(request, design, base=base, head=head, only_path=request.GET.get("file")),
            )
    return render_design_page(request, "designs/compare.html", design, role, "compare", **context)


@hub_page
def design_diff_state(request: HttpRequest, owner: str, slug: str) -> HttpResponseBase:
    """The diff pages' fill-in: progress, and the rendered pieces of the files (`pending`:
    their numbers on the page) whose comparison is now in. POST `retry`: queue failed
    comparisons of this diff again, for a signed-in person (it spends a worker's time).
    Access is the pages' own: a private design is a 404."""
    design, _ = load_design(request, owner, slug)
    if request.method == "POST" and not request.user.is_authenticated:
        raise PermissionDenied("Log in to retry a comparison.")
    head = selectors.design_resolve(design, request.GET.get("head"))
    base_rev = request.GET.get("base")
    base = selectors.design_resolve(design, base_rev) if base_rev else None
    page = diff_pages.diff_page(design=design, base=base, head=head, only_path=request.GET.get("file"))
    if request.method == "POST":
        asked = [int(x) for x in request.POST.getlist("retry") if x.isdigit()]
        retried = diff_pages.diff_page_retry(design=design, page=page, diff_ids=asked)
        if "application/json" in request.headers.get("Accept", ""):
            return JsonResponse({"retried": retried})
        return redirect_back(request, detail_url(design))
    wanted = {int(x) for x in request.GET.get("pending", "").split(",") if x.isdigit()}
    state_url = with_query(request.path, base=base, head=head, file=request.GET.get("file"))
    rows = presenters.diff_rows(design, page.files, pending=page.pending_files)
    pieces = {
        f"file-{row['n']}": render_to_string(
            "designs/_file_diff.html",
            {"row": row, "design": design, "head": head, "diff_state_url": state_url},
            request=request,
        )
        for row in rows
        if row["n"] in wanted and not row["pending"]
    }
    return JsonResponse(
        {"pending": page.pending, "total": page.total, "progress": page.progress, "files": pieces}
    )


# -- changing files -----------------------------------------------------------------------


def _commit_uploads(
    *,
    design: Design,
    author: User,
    files: list,
    folder: str,
    message: str,
    branch: str,
    relative_paths: list[str],
) -> str:
    """`relative_paths`: a dropped folder's files' paths inside it, in the files' order
    (sent by upload.js); each is checked like any path (`paths.join` refuses `..`)."""
    folder = paths.clean_dir(folder)
    names = relative_paths if len(relative_paths) == len(files) else [f.name for f in files]
    uploads = [
        services.Upload(path=paths.join(folder, name), content=f)
        for f, name in zip(files, names, strict=True)
    ]
    return services.design_commit(
        design=design, author=author, message=message, branch=branch, uploads=uploads
    )


@login_required
@hub_page
def design_upload(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = load_design(request, owner, slug, need="write")
    branches = [name for name, _ in design.repo.branches()]
    wanted = request.GET.get("ref") or design.default_branch
    form = forms.UploadForm(
        request.POST if request.method == "POST" else None,
        request.FILES if request.method == "POST" else None,
        branches=branches,
        default=design.default_branch,
        initial={
            "branch": wanted if wanted in branches else design.default_branch,
            "folder": request.GET.get("folder", ""),
        },
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        ok, sha = form_call(
            form,
            _commit_uploads,
            design=design,
            author=request.user,
            relative_paths=request.POST.getlist("relative_path"),
            **data,
        )
        if ok:
            count = len(data["files"])
            files = "1 file" if count == 1 else f"{count} files"
            messages.success(request, f"Committed {files} to {data['branch']} ({sha[:7]}).")
            return redirect(detail_url(design, data["branch"]))
    return render_design_page(
        request, "designs/upload.html", design, role, "files", form=form, branches=branches
    )


@login_required
@hub_page
def design_delete_file(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = load_design(request, owner, slug, need="write")
    path = request.GET.get("path", "")
    form = forms.DeleteFileForm(
        request.POST or None,
        initial={"path": path, "branch": _ref(request, design), "message": f"Delete {path}"},
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        ok, sha = form_call(
            form,
            services.design_commit,
            design=design,
            author=request.user,
            message=data["message"],
            branch=data["branch"],
            deletes=[data["path"]],
        )
        if ok:
            messages.success(request, f"Deleted {data['path']} in {sha[:7]}.")
            return redirect(detail_url(design, data["branch"]))
    return render_design_page(
        request, "designs/file_change.html", design, role, "files", form=form, action="delete"
    )


@login_required
@hub_page
def design_rename_file(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = load_design(request, owner, slug, need="write")
    path = request.GET.get("path", "")
    form = forms.RenameFileForm(
        request.POST or None,
        initial={
            "path": path,
            "new_path": path,
            "branch": _ref(request, design),
            "message": f"Rename {path}",
        },
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        ok, sha = form_call(
            form,
            services.design_commit,
            design=design,
            author=request.user,
            message=data["message"],
            branch=data["branch"],
            renames=[services.Rename(data["path"], data["new_path"])],
        )
        if ok:
            messages.success(request, f"Renamed {data['path']} to {data['new_path']} in {sha[:7]}.")
            url = reverse(
                "design-blob",
                args=[design.owner.username, design.slug, paths.clean_path(data["new_path"])],
            )
            return redirect(with_query(url, ref=data["branch"]))
    return render_design_page(
        request, "designs/file_change.html", design, role, "files", form=form, action="rename"
    )


# -- branches (tags are releases: designs/views/releases.py) ------------------------------


def _create_or_delete(request: HttpRequest, design: Design, form_class, *, create, delete, created, deleted):
    """The create/delete actions of the branches page.

    Returns (form, redirect or None); `created`/`deleted` format the success message.
    """
    action = request.POST.get("action")
    form = form_class(request.POST if action == "create" else None)
    if action == "delete":
        name = request.POST.get("name", "")
        delete(design=design, user=request.user, name=name)
        messages.success(request, deleted.format(name=name))
        return form, redirect(request.path)
    if action == "create" and form.is_valid():
        ok, _ = form_call(form, create, design=design, user=request.user, **form.cleaned_data)
        if ok:
            messages.success(request, created.format(name=form.cleaned_data["name"]))
            return form, redirect(request.path)
    return form, None


@hub_page
def design_branches(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = load_design(request, owner, slug, need="write" if request.method == "POST" else None)
    form, done = _create_or_delete(
        request,
        design,
        forms.BranchCreateForm,
        create=services.branch_create,
        delete=services.branch_delete,
        created="Created branch {name}.",
        deleted="Deleted branch {name}.",
    )
    if done:
        return done
    return render_design_page(
        request,
        "designs/branches.html",
        design,
        role,
        "branches",
        form=form,
        branch_list=selectors.design_branches(design),
    )


# -- forks and settings -------------------------------------------------------------------


@login_required
@hub_page
def design_fork(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = load_design(request, owner, slug)
    form = forms.ForkForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        ok, fork = form_call(
            form,
            services.design_fork,
            design=design,
            user=request.user,
            slug=form.cleaned_data["slug"] or None,
        )
        if ok:
            messages.success(request, f"Forked {design.full_name} to {fork.full_name}.")
            return redirect(detail_url(fork))
    return render_design_page(request, "designs/fork.html", design, role, "forks", form=form)


@hub_page
def design_forks(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = load_design(request, owner, slug)
    forks = selectors.designs_visible_to(request.user).filter(forked_from=design)
    page = Paginator(forks, DESIGNS_PER_PAGE).get_page(request.GET.get("page"))
    return render_design_page(request, "designs/forks.html", design, role, "forks", page=page)


@login_required
@hub_page
def design_settings(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    design, role = load_design(request, owner, slug, need="owner")
    action = request.POST.get("action")
    branches = [name for name, _ in design.repo.branches()]
    form = forms.DesignSettingsForm(
        request.POST if action == "update" else None, design=design, branches=branches
    )
    collaborator_form = forms.CollaboratorForm(request.POST if action == "add-collaborator" else None)
    if action == "update" and form.is_valid():
        ok, _ = form_call(form, services.design_update, design=design, **form.cleaned_data)
        if ok:
            messages.success(request, "Settings saved.")
            return redirect(request.path)
    elif action == "add-collaborator" and collaborator_form.is_valid():
        username = collaborator_form.cleaned_data["username"].strip()
        user = User.objects.filter(username=username).first()
        if user is None:
            collaborator_form.add_error("username", f"There is no user named {username!r}.")
        else:
            ok, _ = form_call(
                collaborator_form,
                services.collaborator_set,
                design=design,
                actor=request.user,
                user=user,
                role=collaborator_form.cleaned_data["role"],
            )
            if ok:
                messages.success(
                    request, f"{user.username} can now {collaborator_form.cleaned_data['role']}."
                )
                return redirect(request.path)
    elif action == "remove-collaborator":
        user = User.objects.filter(username=request.POST.get("username", "")).first()
        if user is None:
            raise NotFound("No such collaborator.")
        services.collaborator_remove(design=design, actor=signed_in_user(request), user=user)
        messages.success(request, f"{user.username} is no longer a collaborator.")
        return redirect(request.path)
    collaborators = design.collaborators.select_related("user").order_by("user__username")
    return render_design_page(
        request,
        "designs/settings.html",
        design,
        role,
        "settings",
        form=form,
        collaborator_form=collaborator_form,
        collaborators=collaborators,
        okh_problems=okh.okh_problems(design),
    )
