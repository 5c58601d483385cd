"""Pages of a lab's prices, credits and monthly report: the material prices of the print
settings page, the credits page (a member's balance and ledger; managers: every balance
and top-ups) and the report download. Thin views over machines.credits, prices and
reports."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from hub.auth import signed_in_user
from hub.exceptions import HubError, NotFound
from hub.models import User
from hub.views import form_call, hub_page
from machines import credits, selectors
from machines.accounting import lab_currency
from machines.models import CreditAccount
from machines.printing import forms as print_forms
from machines.printing import prices, reports
from machines.views import lab_context

LEDGER_ROWS = 200


@login_required
@require_POST
@hub_page
def material_prices(request: HttpRequest, lab: str) -> HttpResponse:
    """The material price table of the print settings page posts here: set or delete a row."""
    user = signed_in_user(request)
    the_lab = selectors.lab_get(slug=lab)
    selectors.require_manager(the_lab, user)
    back = reverse("print-settings", args=[the_lab.slug]) + "#prices"
    if request.POST.get("action") == "delete":
        prices.material_price_delete(lab=the_lab, actor=user, material=request.POST.get("material", ""))
        messages.success(request, "Price removed.")
        return redirect(back)
    form = print_forms.MaterialPriceForm(request.POST)
    if form.is_valid():
        try:
            row = prices.material_price_set(lab=the_lab, actor=user, **form.cleaned_data)
        except HubError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"{row.material}: {row.price_per_gram} per gram saved.")
    else:
        messages.error(request, " ".join(str(e) for errs in form.errors.values() for e in errs))
    return redirect(back)


@login_required
@hub_page
def lab_credits(request: HttpRequest, lab: str) -> HttpResponse:
    """A member's balance and ledger at the lab; managers see every balance, any member's
    ledger (`?member=`) and record top-ups."""
    user = signed_in_user(request)
    the_lab = selectors.lab_get(slug=lab)
    role = selectors.lab_role(the_lab, user)
    if role not in ("member", "manager"):
        raise NotFound(f"You have no credit at {the_lab.name}: join the lab first.")
    members = (
        list(
            User.objects.filter(lab_memberships__lab=the_lab, lab_memberships__status="active").order_by(
                "username"
            )
        )
        if role == "manager"
        else []
    )
    form = print_forms.TopUpForm(request.POST or None, members=members)
    if request.method == "POST":
        selectors.require_manager(the_lab, user)
        if form.is_valid():
            person = User.objects.get(username=form.cleaned_data["member"])
            ok, entry = form_call(
                form,
                credits.credit_top_up,
                lab=the_lab,
                user=person,
                amount=form.cleaned_data["amount"],
                actor=user,
                note=form.cleaned_data["note"],
            )
            if ok:
                messages.success(request, f"{person.username}'s balance is now {entry.balance_after}.")
                return redirect(reverse("lab-credits", args=[the_lab.slug]) + f"?member={person.username}")
    person = user
    if role == "manager" and request.GET.get("member"):
        person = User.objects.filter(username=request.GET["member"]).first() or user
    account = credits.credit_account(lab=the_lab, user=person) or CreditAccount(lab=the_lab, user=person)
    return render(
        request,
        "machines/lab_credits.html",
        lab_context(
            request,
            the_lab,
            "credits",
            person=person,
            account=account,
            available=account.balance - account.held,
            entries=credits.credit_entries(lab=the_lab, user=person)[:LEDGER_ROWS],
            accounts=credits.credit_accounts_of_lab(the_lab) if role == "manager" else None,
            currency=lab_currency(the_lab),
            enabled=credits.credits_enabled(the_lab),
            form=form if role == "manager" else None,
        ),
    )


@login_required
@hub_page
def lab_report(request: HttpRequest, lab: str) -> HttpResponse:
    """The month's report as CSV (`?month=YYYY-MM`; this month without one); managers."""
    user = signed_in_user(request)
    the_lab = selectors.lab_get(slug=lab)
    month = request.GET.get("month") or timezone.now().astimezone(the_lab.zone).strftime("%Y-%m")
    text = reports.lab_month_report(lab=the_lab, month=month, actor=user)
    response = HttpResponse(text, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{the_lab.slug}-{month}.csv"'
    return response
