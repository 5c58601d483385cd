"""The "Where can I make this?" page: /labs/where/?design=owner/slug&path=…&rev=…

Thin: the design file is resolved (a design the viewer may not see is a 404), the choices
read by a form, and machines.where answers; a refusal (a place not found, a bad nozzle)
shows on the form."""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from designs.selectors import design_get, design_meshes, design_resolve
from hub.auth import viewer
from hub.exceptions import ValidationError
from hub.views import form_call, hub_page
from machines import where


class WhereForm(forms.Form):
    material = forms.CharField(initial="PLA", max_length=40, required=False)
    colour = forms.CharField(max_length=40, required=False, help_text="Empty: any colour.")
    nozzle = forms.CharField(max_length=10, required=False, label="Nozzle (mm)", help_text="Empty: any.")
    copies = forms.IntegerField(initial=1, min_value=1, max_value=where.MAX_COPIES, required=False)
    place = forms.CharField(
        max_length=200, required=False, label="Near", help_text="A city, e.g. Lyon or 'Lyon, FR'."
    )
    lat = forms.FloatField(required=False, widget=forms.HiddenInput)
    lon = forms.FloatField(required=False, widget=forms.HiddenInput)
    sort = forms.ChoiceField(choices=[(s, s) for s in where.SORTS], required=False, widget=forms.HiddenInput)


def _answer(person, part: where.Part, data: dict) -> where.WhereAnswer:
    place = where.place_from(
        latitude=data.get("lat"), longitude=data.get("lon"), name=data.get("place") or ""
    )
    return where.where_to_make(
        viewer=person,
        part=part,
        material=data.get("material") or "PLA",
        colour=data.get("colour") or "",
        nozzle_mm=data.get("nozzle") or None,
        copies=data.get("copies") or 1,
        sort=data.get("sort") or "soonest",
        place=place,
    )


@hub_page
def where_page(request: HttpRequest) -> HttpResponse:
    person = viewer(request)
    design = request.GET.get("design", "")
    if not design:
        raise ValidationError("Open this page from a design's file: “Where can I make this?”.")
    if not request.GET.get("path"):
        return _pick_a_part(request, person, design, request.GET.get("rev", ""))
    part = where.part_of_design(
        viewer=person, design=design, path=request.GET.get("path", ""), rev=request.GET.get("rev", "")
    )
    form = WhereForm(request.GET)
    answer = None
    if form.is_valid():
        _, answer = form_call(form, _answer, person=person, part=part, data=form.cleaned_data)
    keep = {k: v for k, v in request.GET.items() if k != "sort" and v}
    sorts = [(s, "?" + urlencode({**keep, "sort": s})) for s in where.SORTS]
    current = (form.cleaned_data.get("sort") if form.is_valid() else "") or "soonest"
    has_place = bool(answer and answer.place)
    owner, _, slug = part.design_name.partition("/")
    return render(
        request,
        "machines/where.html",
        {
            "part": part,
            "form": form,
            "answer": answer,
            "message": where.nothing_found(answer) if answer else "",
            "sorts": [(s, url) for s, url in sorts if s != "nearest" or has_place],
            "can_sort_by_distance": has_place,
            "sort": current,
            "owner": owner,
            "slug": slug,
            "tables": [("", answer.options), ("Priced in other currencies", answer.other_currencies)]
            if answer
            else [],
            "send_query": urlencode(
                {"design": part.design_name, "path": part.path, "rev": part.commit_sha}, safe="/"
            ),
        },
    )


def _pick_a_part(request: HttpRequest, person, design: str, rev: str) -> HttpResponse:
    """A design (an assembly's module, pinned at a commit) without a file: its meshes at
    that commit, each a link to where it can be made."""
    owner, _, slug = design.strip().partition("/")
    if not owner or not slug:
        raise ValidationError("Give the design as owner/slug, e.g. ada/bracket.")
    found = design_get(user=person, owner=owner, slug=slug)
    sha = design_resolve(found, rev or None)
    meshes = design_meshes(found, sha=sha)
    return render(
        request,
        "machines/where_pick.html",
        {
            "design": found,
            "sha": sha,
            "parts": [
                (
                    mesh,
                    "?"
                    + urlencode({"design": f"{owner}/{slug}", "path": mesh["path"], "rev": sha}, safe="/"),
                )
                for mesh in meshes
            ],
        },
    )
