"""The lab's Spools page: the stock and what is loaded where (members); add, edit, load,
unload and archive (managers). Thin over machines.spools and machines.selectors."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from hub.auth import signed_in_user
from hub.exceptions import NotFound, ValidationError
from hub.views import form_call, hub_page
from machines import selectors, spools
from machines.models import Lab, Spool
from machines.printing import selectors as ps
from machines.views import lab_context


def _grams(label: str, *, required: bool = True, initial: Decimal | None = None) -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        required=required,
        initial=initial,
        max_digits=8,
        decimal_places=1,
        min_value=Decimal(0),
        max_value=spools.MAX_SPOOL_G,
    )


class SpoolForm(forms.Form):
    material = forms.CharField(max_length=spools.MATERIAL_MAX, help_text="e.g. PLA, PETG.")
    colour = forms.CharField(max_length=spools.MATERIAL_MAX, required=False)
    initial_g = _grams("Full weight (g)")
    remaining_g = _grams("Remaining (g)", required=False)
    low_stock_g = _grams("Warn below (g)", initial=Decimal(100))


def _int(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError:
        raise NotFound("No such spool.") from None


def _edit_form(spool: Spool) -> SpoolForm:
    fields = ("material", "colour", "initial_g", "remaining_g", "low_stock_g")
    return SpoolForm(initial={f: getattr(spool, f) for f in fields}, prefix=f"s{spool.pk}")


def _page(request: HttpRequest, lab: Lab, *, form: SpoolForm) -> HttpResponse:
    manager = selectors.lab_role(lab, request.user) == "manager"
    stock = list(selectors.spools_of_lab(lab))
    context = lab_context(
        request,
        lab,
        "spools",
        form=form,
        rows=[(spool, _edit_form(spool) if manager else None) for spool in stock],
        printers=list(ps.printers_of_lab(lab)) if manager else [],
        archived=selectors.spools_of_lab(lab, archived=True).order_by("-archived_at")[:20],
    )
    return render(request, "machines/spools.html", context)


@login_required
@hub_page
def lab_spools(request: HttpRequest, lab: str) -> HttpResponse:
    user = signed_in_user(request)
    the_lab = selectors.lab_get(slug=lab)
    selectors.require_member(the_lab, user)
    if request.method != "POST":
        return _page(request, the_lab, form=SpoolForm(prefix="new"))
    selectors.require_manager(the_lab, user)
    action = request.POST.get("action")
    if action == "add":
        form = SpoolForm(request.POST, prefix="new")
        if form.is_valid():
            ok, spool = form_call(form, spools.spool_create, lab=the_lab, actor=user, **form.cleaned_data)
            if ok:
                messages.success(request, f"Added a {spool.material} spool.")
                return redirect("lab-spools", lab=the_lab.slug)
        return _page(request, the_lab, form=form)
    spool = selectors.spool_get(lab=the_lab, spool_id=_int(request.POST.get("spool_id")))
    if action == "edit":
        form = SpoolForm(request.POST, prefix=f"s{spool.pk}")
        if form.is_valid():
            ok, _ = form_call(form, spools.spool_update, spool=spool, actor=user, **form.cleaned_data)
            if ok:
                messages.success(request, "Spool saved.")
                return redirect("lab-spools", lab=the_lab.slug)
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
        return redirect("lab-spools", lab=the_lab.slug)
    if action == "load":
        machine = selectors.machine_get(lab=the_lab, slug=request.POST.get("machine") or "")
        printer = ps.printer_of(machine)
        if printer is None:
            raise ValidationError(f"{machine.name} is not in the print queue.")
        spools.spool_load(spool=spool, printer=printer, actor=user)
        messages.success(
            request, f"{machine.name} now has {spool.material} {spool.colour} loaded.".replace("  ", " ")
        )
    elif action == "unload":
        spools.spool_unload(spool=spool, actor=user)
        messages.success(request, "Spool back on the shelf.")
    elif action == "archive":
        spools.spool_archive(spool=spool, actor=user)
        messages.success(request, "Spool archived.")
    else:
        raise ValidationError("Unknown action.")
    return redirect("lab-spools", lab=the_lab.slug)
