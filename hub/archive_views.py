"""Account archive pages: the "Your archive" and import sections of the account page, an
import's own page (its report and the claim of its records), the imported history, the
source hub's authorise page, and the "Brought from other hubs" profile panel.

Thin: each submission goes to hub.portability, which the API uses too.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string

from hub import portability, records
from hub.auth import signed_in_user
from hub.exceptions import ValidationError
from hub.models import AccountArchive, ArchiveImport, User
from hub.views import form_call, hub_page

HISTORY_PAGE_SIZE = 100
# The newest exports and imports on the account page (the API lists them all).
ROWS_SHOWN = 20
PROFILE_RECORDS_SHOWN = 100
# How often a page following an archive job reloads itself.
RELOAD_SECONDS = 3


class ArchiveUploadForm(forms.Form):
    archive = forms.FileField(label="Archive (.zip)")


class ProofForm(forms.Form):
    proof = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
        max_length=portability.MAX_PROOF_BYTES,
        help_text="The signed proof the other hub showed you, pasted whole.",
    )


class AuthoriseForm(forms.Form):
    challenge = forms.CharField(min_length=16, max_length=128)
    audience = forms.CharField(max_length=500)


def settings_sections(user: User) -> dict[str, Any]:
    """What the account page shows of archives: the person's exports and imports, the
    upload form, and whether the page must follow a job in progress."""
    archive_rows = list(portability.archives_of(user)[:ROWS_SHOWN])
    import_rows = list(portability.imports_of(user)[:ROWS_SHOWN])
    busy = any(a.status in portability.ARCHIVE_IN_FLIGHT for a in archive_rows) or any(
        i.status in portability.IMPORT_IN_FLIGHT for i in import_rows
    )
    return {
        "archives": [(archive, portability.archive_expired(archive)) for archive in archive_rows],
        "imports": import_rows,
        "upload_form": ArchiveUploadForm(),
        "max_archive_bytes": settings.FABHUB_MAX_ARCHIVE_BYTES,
        "archive_days": settings.FABHUB_ARCHIVE_DAYS,
        "reload_after": RELOAD_SECONDS if busy else 0,
        "history_count": portability.imported_records_of(user).count(),
    }


# The two forms below post to addresses of their own; a refusal (hub_page) sends the
# browser back there with a message, and a GET there goes on to the account page.


@login_required
@hub_page
def archive_request(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return redirect("account-settings")
    portability.archive_request(owner=signed_in_user(request))
    messages.success(request, "Your archive is being built: this page follows it.")
    return redirect("account-settings")


@login_required
@hub_page
def archive_download(request: HttpRequest, archive_id: str) -> FileResponse:
    archive = portability.archive_get(owner=signed_in_user(request), archive_id=archive_id)
    return archive_response(archive)


def archive_response(archive: AccountArchive) -> FileResponse:
    response = FileResponse(
        portability.archive_file(archive).open("rb"),
        content_type="application/zip",
        as_attachment=True,
        filename=portability.archive_filename(archive),
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@hub_page
def archive_import_upload(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return redirect("account-settings")
    # request.FILES reads the body: an archive over the limit stops there (TooLarge), and
    # hub_page turns that into a message on the account page.
    form = ArchiveUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        raise ValidationError("Choose the archive (.zip) to import.")
    job = portability.archive_import_start(
        account=signed_in_user(request), upload=form.cleaned_data["archive"]
    )
    messages.success(request, "The archive is being checked and imported: this page follows it.")
    return redirect("archive-import", import_id=job.pk)


@login_required
@hub_page
def archive_import(request: HttpRequest, import_id: str) -> HttpResponse:
    """An import's progress and result, and the claim of its records: a challenge (POST
    action=challenge), then the proof the source hub signed (POST action=claim)."""
    user = signed_in_user(request)
    job = portability.import_get(account=user, import_id=import_id)
    proof_form = ProofForm(request.POST if request.POST.get("action") == "claim" else None)
    if request.method == "POST" and request.POST.get("action") == "challenge":
        portability.claim_start(archive_import=job)
        return redirect("archive-import", import_id=job.pk)
    if request.method == "POST" and proof_form.is_valid():
        done, claimed = form_call(
            proof_form, _claim_from_text, archive_import=job, text=proof_form.cleaned_data["proof"]
        )
        if done:
            messages.success(
                request,
                f"{claimed} record{'s' if claimed != 1 else ''} claimed: "
                "they show on your profile as brought from another hub.",
            )
            return redirect("archive-import", import_id=job.pk)
    records_here = [portability.history_entry(row) for row in job.records.all()[:HISTORY_PAGE_SIZE]]
    pending = portability.claim_pending(job)
    return render(
        request,
        "hub/archive_import.html",
        {
            "job": job,
            "report": job.report if isinstance(job.report, dict) else {},
            "entries": records_here,
            "claim_open": portability.claim_open(job),
            "claim_pending": pending,
            "authorise_url": portability.authorise_url(job) if pending else "",
            "proof_form": proof_form,
            "reload_after": RELOAD_SECONDS if job.status in portability.IMPORT_IN_FLIGHT else 0,
        },
    )


def _claim_from_text(*, archive_import: ArchiveImport, text: str) -> int:
    return portability.records_claim(archive_import=archive_import, proof=portability.proof_parse(text))


@login_required
@hub_page
def imported_history(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    rows = portability.imported_records_of(user)
    page = Paginator(rows, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "hub/imported_history.html",
        {"page": page, "entries": [portability.history_entry(row) for row in page.object_list]},
    )


@login_required
@hub_page
def credentials_authorise(request: HttpRequest) -> HttpResponse:
    """On the source hub: the signed-in person lets an account on another hub claim their
    records. The proof is shown to copy; the page never sends anyone to the other hub on
    its own (it only offers a plain link), so it cannot be used as an open redirect."""
    user = signed_in_user(request)
    form = AuthoriseForm(request.POST if request.method == "POST" else request.GET)
    if not form.is_valid():
        raise ValidationError(
            "This link is incomplete: open it again from the other hub's import page "
            "(it gives a challenge and the address of your account there)."
        )
    challenge, audience = form.cleaned_data["challenge"], form.cleaned_data["audience"]
    home = portability.audience_home(audience)
    proof = None
    if request.method == "POST":
        proof = portability.account_control_proof(user=user, challenge=challenge, audience=audience)
    return render(
        request,
        "hub/credentials_authorise.html",
        {
            "challenge": challenge,
            "audience": audience,
            "audience_home": home,
            "account": records.account_url(user.username),
            "proof": json.dumps(proof, indent=1, ensure_ascii=False) if proof else "",
        },
    )


def brought_profile_panel(request: HttpRequest, person: User) -> str:
    """'Brought from other hubs' on a profile: claimed, verified records only."""
    rows = list(portability.records_brought(person)[:PROFILE_RECORDS_SHOWN])
    if not rows:
        return ""
    return render_to_string(
        "hub/_brought_profile.html",
        {"person": person, "entries": [portability.history_entry(row) for row in rows]},
        request=request,
    )
