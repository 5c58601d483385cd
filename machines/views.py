"""Server-rendered pages of labs: thin views over machines.selectors and machines.services.

Every view is wrapped in `hub_page` (NotFound → 404, PermissionDenied → 403); refusals
that belong to a form land in it through `form_call`. Times are shown, and typed, in the
lab's zone.
"""

from __future__ import annotations

from datetime import date, time, timedelta
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.views.decorators.http import require_POST

from hub.auth import Credential, signed_in_user
from hub.exceptions import NotFound, ValidationError
from hub.markdown import shown_html
from hub.models import User
from hub.redirects import redirect_back
from hub.views import form_call, hub_page
from machines import calendar_grid, forms, ical, labels, selectors, services, timeline
from machines.models import Booking, CalendarFeed, Lab, Machine

AVAILABILITY_DAYS = 7


def lab_context(request: HttpRequest, lab: Lab, tab: str, **context) -> dict:
    """What every page of a lab (bookings and the print queue alike) shows in its header:
    the lab, the viewer's role, the open tab and, for managers, how much waits for them."""
    role = selectors.lab_role(lab, request.user)
    decisions = selectors.lab_decisions(lab) if role == "manager" else None
    return {
        "lab": lab,
        "role": role,
        "tab": tab,
        "to_decide": decisions.total if decisions else 0,
        "decisions": decisions,
        **context,
    }


def _monday(request: HttpRequest, lab: Lab) -> date:
    day = parse_date(request.GET.get("week") or "") if request.GET.get("week") else None
    if day is None:
        return timeline.week_start(timezone.now(), lab.zone)
    return day - timedelta(days=day.weekday())


def _int(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError:
        raise NotFound("No such item.") from None


# -- labs --------------------------------------------------------------------------------------


@hub_page
def lab_list(request: HttpRequest) -> HttpResponse:
    mine = (
        set(selectors.labs_of(request.user).values_list("pk", flat=True))
        if request.user.is_authenticated
        else set()
    )
    return render(
        request, "machines/lab_list.html", {"labs": selectors.labs_list(request.user), "mine": mine}
    )


@login_required
@hub_page
def lab_new(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    form = forms.LabForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        ok, lab = form_call(form, services.lab_create, creator=user, **form.cleaned_data)
        if ok and lab.is_approved:
            messages.success(request, f"{lab.name} is open. Set its opening hours next.")
            return redirect("lab-manage", lab=lab.slug)
        if ok:
            messages.success(
                request,
                f"{lab.name} is requested: the hub's administrators approve it, then you can "
                "add its machines. Set its opening hours meanwhile.",
            )
            return redirect("lab-manage", lab=lab.slug)
    return render(request, "machines/lab_new.html", {"form": form})


@hub_page
def lab_detail(request: HttpRequest, lab: str) -> HttpResponse:
    """The lab's week as a grid (click free time to book), its machines and hours."""
    the_lab = selectors.lab_get(slug=lab)
    monday = _monday(request, the_lab)
    weekly = selectors.weekly_hours(the_lab)
    context = lab_context(
        request,
        the_lab,
        "calendar",
        grid=calendar_grid.week_grid(the_lab, monday, now=timezone.now()),
        monday=monday,
        sunday=monday + timedelta(days=6),
        previous_week=monday - timedelta(days=7),
        next_week=monday + timedelta(days=7),
        description_html=shown_html(the_lab, "description"),
        machines=[(m, labels.capabilities(m.capabilities)) for m in the_lab.machines.order_by("name")],
        # Each weekday as a date of the week shown, so the page names it in the lab's language.
        hours=[
            (monday + timedelta(days=n), labels.hours_text([(o, c) for d, o, c in weekly if d == n]))
            for n in range(7)
        ],
    )
    if context["role"] in ("member", "manager"):
        context["feed"] = services.calendar_feed_get(owner=signed_in_user(request), lab=the_lab)
    return render(request, "machines/lab_detail.html", context)


@login_required
@require_POST
@hub_page
def lab_join(request: HttpRequest, lab: str) -> HttpResponse:
    user = signed_in_user(request)
    the_lab = selectors.lab_get(slug=lab)
    if request.POST.get("action") == "leave":
        services.membership_remove(lab=the_lab, actor=user, user=user)
        messages.success(request, f"You left {the_lab.name}.")
    else:
        membership = services.membership_join(lab=the_lab, user=user)
        if membership.status == "active":
            messages.success(request, f"Welcome to {the_lab.name}!")
        else:
            messages.success(request, f"Asked to join {the_lab.name}: a manager will answer.")
    return redirect("lab-detail", lab=the_lab.slug)


@login_required
@hub_page
def lab_manage(request: HttpRequest, lab: str) -> HttpResponse:
    """Settings, opening hours, closures and members."""
    manager = signed_in_user(request)
    the_lab = selectors.lab_get(slug=lab)
    selectors.require_manager(the_lab, manager)
    action = request.POST.get("action")
    post = request.POST if request.method == "POST" else None
    lab_form = forms.LabForm(post if action == "settings" else None, instance=the_lab)
    hours_form = forms.HoursForm(post if action == "hours" else None, lab=the_lab)
    closure_form = forms.ClosureForm(post if action == "closure" else None, lab=the_lab)
    if request.method == "POST":
        if action == "settings" and lab_form.is_valid():
            ok, _ = form_call(
                lab_form, services.lab_update, lab=the_lab, actor=manager, **lab_form.cleaned_data
            )
            if ok:
                messages.success(request, "Saved.")
                return redirect("lab-manage", lab=lab)
        elif action == "hours" and hours_form.is_valid():
            ok, _ = form_call(
                hours_form,
                services.lab_set_hours,
                lab=the_lab,
                actor=manager,
                hours=hours_form.cleaned_data["hours"],
            )
            if ok:
                messages.success(request, "Opening hours saved.")
                return redirect("lab-manage", lab=lab)
        elif action == "closure" and closure_form.is_valid():
            data = closure_form.cleaned_data
            ok, result = form_call(
                closure_form,
                services.closure_create,
                lab=the_lab,
                actor=manager,
                start=data["start"],
                end=data["end"],
                reason=data["reason"],
            )
            if ok:
                flagged = result[1]
                messages.success(
                    request,
                    f"Closure added. {len(flagged)} booking(s) in it wait for your decision."
                    if flagged
                    else "Closure added.",
                )
                return redirect("lab-manage", lab=lab)
        elif action == "delete-closure":
            closure = the_lab.closures.filter(pk=_int(request.POST.get("closure_id"))).first()
            if closure is None:
                raise NotFound("No such closure.")
            services.closure_delete(closure=closure, actor=manager)
            messages.success(request, "Closure removed.")
            return redirect("lab-manage", lab=lab)
        elif action in ("approve-member", "decline-member", "make-manager", "make-member", "remove-member"):
            user = User.objects.filter(username=request.POST.get("username", "")).first()
            if user is None:
                raise NotFound("No such member.")
            if action in ("approve-member", "decline-member"):
                services.membership_decide(
                    lab=the_lab, actor=manager, user=user, approve=action == "approve-member"
                )
            elif action == "remove-member":
                services.membership_remove(lab=the_lab, actor=manager, user=user)
            else:
                services.membership_set_role(
                    lab=the_lab, actor=manager, user=user, role=action.removeprefix("make-")
                )
            messages.success(request, "Members updated.")
            return redirect("lab-manage", lab=lab)
    return lab_manage_page(
        request, the_lab, manager, lab_form=lab_form, hours_form=hours_form, closure_form=closure_form
    )


def lab_manage_page(request: HttpRequest, the_lab: Lab, manager: User, **context) -> HttpResponse:
    """The settings page, with the forms in `context` (bound ones, with their errors) and
    fresh ones for the rest. machines.printing.views.lab_agents renders it too: it runs the
    agents' services, which this module may not import (pyproject's layers contract)."""
    now = timezone.now()
    forms_ = {
        "lab_form": lambda: forms.LabForm(instance=the_lab),
        "hours_form": lambda: forms.HoursForm(lab=the_lab),
        "closure_form": lambda: forms.ClosureForm(lab=the_lab),
        "agent_form": forms.AgentForm,
    }
    for name, make in forms_.items():
        if name not in context:
            context[name] = make()
    page = lab_context(
        request,
        the_lab,
        "manage",
        closures=the_lab.closures.filter(end__gt=now),
        members=selectors.lab_members(the_lab),
        agents=[
            (agent, selectors.agent_contact(agent, now=now))
            for agent in selectors.agents_of_lab(the_lab, actor=manager)
        ],
        **context,
    )
    return render(request, "machines/lab_manage.html", page)


@login_required
@hub_page
def lab_approvals(request: HttpRequest, lab: str) -> HttpResponse:
    """Bookings waiting for approval, and bookings a breakdown or closure put in doubt."""
    user = signed_in_user(request)
    the_lab = selectors.lab_get(slug=lab)
    selectors.require_manager(the_lab, user)
    if request.method == "POST":
        booking = selectors.booking_get(booking_id=_int(request.POST.get("booking_id")), user=user)
        action, reason = request.POST.get("action"), request.POST.get("reason", "")
        if action == "approve":
            services.booking_approve(booking=booking, actor=user)
        elif action == "refuse":
            services.booking_refuse(booking=booking, actor=user, reason=reason)
        elif action == "keep":
            services.booking_keep(booking=booking, actor=user)
        elif action == "cancel":
            services.booking_cancel(booking=booking, actor=user, reason=reason)
        else:
            raise ValidationError("Unknown action.")
        messages.success(request, "Done: the member is told.")
        return redirect("lab-approvals", lab=lab)
    rows = selectors.bookings_of_lab(the_lab).filter(end__gt=timezone.now()).order_by("start")
    context = lab_context(
        request,
        the_lab,
        "approvals",
        pending=rows.filter(status=Booking.Status.PENDING),
        flagged=rows.filter(needs_decision=True, status__in=Booking.ACTIVE),
        upcoming=rows.filter(status__in=Booking.ACTIVE)[:50],
        approval_actions=[("approve", "Approve"), ("refuse", "Refuse")],
        decision_actions=[("keep", "Keep"), ("cancel", "Cancel")],
        cancel_actions=[("cancel", "Cancel")],
    )
    return render(request, "machines/lab_approvals.html", context)


@login_required
@hub_page
def lab_qualifications(request: HttpRequest, lab: str) -> HttpResponse:
    user = signed_in_user(request)
    the_lab = selectors.lab_get(slug=lab)
    selectors.require_manager(the_lab, user)
    form = forms.QualificationForm(
        request.POST if request.POST.get("action") == "record" else None,
        lab=the_lab,
        initial={"trained_on": timezone.now().astimezone(the_lab.zone).date()},
    )
    if request.method == "POST":
        if request.POST.get("action") == "revoke":
            qualification = the_lab.qualifications.filter(
                pk=_int(request.POST.get("qualification_id"))
            ).first()
            if qualification is None:
                raise NotFound("No such qualification.")
            services.qualification_revoke(qualification=qualification, actor=user)
            messages.success(request, "Qualification removed.")
            return redirect("lab-qualifications", lab=lab)
        if form.is_valid():
            data = form.cleaned_data
            ok, _ = form_call(
                form,
                services.qualification_record,
                lab=the_lab,
                actor=user,
                member=User.objects.get(username=data["member"]),
                machine=data["machine"],
                kind=data["kind"],
                trained_on=data["trained_on"],
                expires_on=data["expires_on"],
            )
            if ok:
                messages.success(request, "Qualification recorded.")
                return redirect("lab-qualifications", lab=lab)
    context = lab_context(
        request,
        the_lab,
        "qualifications",
        form=form,
        qualifications=selectors.qualifications_of_lab(the_lab),
        today=timezone.now().astimezone(the_lab.zone).date(),
    )
    return render(request, "machines/lab_qualifications.html", context)


@login_required
@hub_page
def lab_maintenance(request: HttpRequest, lab: str) -> HttpResponse:
    """Machine statuses and maintenance windows."""
    user = signed_in_user(request)
    the_lab = selectors.lab_get(slug=lab)
    selectors.require_manager(the_lab, user)
    action = request.POST.get("action")
    status_form = forms.MachineStatusForm(request.POST if action == "status" else None, lab=the_lab)
    window_form = forms.MaintenanceForm(request.POST if action == "window" else None, lab=the_lab)
    if request.method == "POST":
        if action == "status" and status_form.is_valid():
            data = status_form.cleaned_data
            ok, flagged = form_call(
                status_form,
                services.machine_set_status,
                machine=data["machine"],
                actor=user,
                status=data["status"],
                reason=data["reason"],
            )
            if ok:
                messages.success(
                    request, f"Status changed. {len(flagged)} booking(s) concerned: see Approvals."
                )
                return redirect("lab-maintenance", lab=lab)
        elif action == "window" and window_form.is_valid():
            data = window_form.cleaned_data
            ok, result = form_call(
                window_form,
                services.maintenance_block,
                machine=data["machine"],
                actor=user,
                start=data["start"],
                end=data["end"],
                reason=data["reason"],
                cancel_overlapping=data["cancel_overlapping"],
            )
            if ok:
                messages.success(
                    request, f"Maintenance window blocked; {len(result[1])} booking(s) cancelled."
                )
                return redirect("lab-maintenance", lab=lab)
    windows = (
        selectors.bookings_of_lab(the_lab)
        .filter(kind=Booking.Kind.MAINTENANCE, status__in=Booking.ACTIVE, end__gt=timezone.now())
        .order_by("start")
    )
    context = lab_context(
        request,
        the_lab,
        "maintenance",
        status_form=status_form,
        window_form=window_form,
        machines=the_lab.machines.order_by("name"),
        windows=windows,
    )
    return render(request, "machines/lab_maintenance.html", context)


# -- machines ------------------------------------------------------------------------------------


@hub_page
def machine_detail(request: HttpRequest, lab: str, machine: str) -> HttpResponse:
    """The machine, its free slots for the coming week, and the booking form."""
    the_lab = selectors.lab_get(slug=lab)
    the_machine = selectors.machine_get(lab=the_lab, slug=machine)
    role = selectors.lab_role(the_lab, request.user)
    form = forms.BookingForm(
        request.POST or None,
        lab=the_lab,
        initial=forms.BookingForm.initial_for(the_lab, request.GET.get("start"), request.GET.get("end")),
    )
    if request.method == "POST":
        if not request.user.is_authenticated:
            return redirect(f"{reverse('login')}?next={request.path}")
        if form.is_valid():
            data = form.cleaned_data
            ok, booking = form_call(
                form,
                services.booking_create,
                machine=the_machine,
                member=request.user,
                start=data["start"],
                end=data["end"],
                note=data["note"],
            )
            if ok:
                messages.success(
                    request,
                    "Booked."
                    if booking.status == Booking.Status.APPROVED
                    else "Asked: a manager will approve or refuse your booking.",
                )
                return redirect("my-bookings")
    start_day = parse_date(request.GET.get("from") or "") or timezone.now().astimezone(the_lab.zone).date()
    start = timeline.wall_clock(start_day, time(0), the_lab.zone)
    end = timeline.wall_clock(start_day + timedelta(days=AVAILABILITY_DAYS), time(0), the_lab.zone)
    free = selectors.machine_free_slots(the_machine, start, end)
    # Cut at each local midnight: a lab open around the clock has week-long free stretches.
    days: dict[date, list] = {}
    for n in range(AVAILABILITY_DAYS):
        day = start_day + timedelta(days=n)
        midnight = timeline.wall_clock(day, time(0), the_lab.zone)
        next_midnight = timeline.wall_clock(day + timedelta(days=1), time(0), the_lab.zone)
        for s, e in timeline.clip(free, midnight, next_midnight):
            days.setdefault(day, []).append(
                (
                    s.astimezone(the_lab.zone),
                    e.astimezone(the_lab.zone),
                    urlencode(
                        {"start": s.isoformat(), "end": min(e, s + calendar_grid.DEFAULT_BOOKING).isoformat()}
                    ),
                )
            )
    context = lab_context(
        request,
        the_lab,
        "machines",
        machine=the_machine,
        capabilities=labels.capabilities(the_machine.capabilities),
        form=form,
        rules=selectors.rules_for(the_machine),
        free_days=sorted(days.items()),
        start_day=start_day,
        next_from=start_day + timedelta(days=AVAILABILITY_DAYS),
        previous_from=start_day - timedelta(days=AVAILABILITY_DAYS),
        qualified=(
            not the_machine.requires_qualification
            or (
                request.user.is_authenticated
                and selectors.qualification_for(
                    request.user, the_machine, timezone.now().astimezone(the_lab.zone).date()
                )
                is not None
            )
        ),
    )
    if role in ("member", "manager"):
        context["feed"] = services.calendar_feed_get(owner=signed_in_user(request), machine=the_machine)
    if role == "manager":
        context["agent_contact"] = selectors.agent_contact(the_machine.agent)
    return render(request, "machines/machine_detail.html", context)


@login_required
@hub_page
def machine_new(request: HttpRequest, lab: str) -> HttpResponse:
    user = signed_in_user(request)
    the_lab = selectors.lab_get(slug=lab)
    selectors.require_manager(the_lab, user)
    form = forms.MachineForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        ok, machine = form_call(
            form, services.machine_create, lab=the_lab, actor=user, **form.service_kwargs()
        )
        if ok:
            messages.success(request, f"{machine.name} added.")
            return redirect("machine-detail", lab=lab, machine=machine.slug)
    return render(request, "machines/machine_form.html", lab_context(request, the_lab, "machines", form=form))


@login_required
@hub_page
def machine_edit(request: HttpRequest, lab: str, machine: str) -> HttpResponse:
    user = signed_in_user(request)
    the_lab = selectors.lab_get(slug=lab)
    the_machine = selectors.machine_get(lab=the_lab, slug=machine)
    selectors.require_manager(the_lab, user)
    initial = {name: getattr(the_machine, name) for name in services.MACHINE_FIELDS}
    form = forms.MachineForm(
        request.POST or None,
        request.FILES or None,
        initial=initial,
        editing=True,
        via_agent=the_machine.agent_id is not None,
    )
    if request.method == "POST" and form.is_valid():
        ok, _ = form_call(
            form, services.machine_update, machine=the_machine, actor=user, **form.service_kwargs()
        )
        if ok:
            messages.success(request, "Saved.")
            return redirect("machine-detail", lab=lab, machine=machine)
    return render(
        request,
        "machines/machine_form.html",
        lab_context(
            request,
            the_lab,
            "machines",
            form=form,
            machine=the_machine,
            agent_contact=selectors.agent_contact(the_machine.agent),
        ),
    )


def machine_photo(request: HttpRequest, lab: str, machine: str) -> FileResponse:
    the_machine = Machine.objects.filter(lab__slug=lab, slug=machine).first()
    if the_machine is None or not the_machine.photo:
        raise Http404("No photo.")
    response = FileResponse(the_machine.photo.open("rb"))
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


# -- members' own pages ------------------------------------------------------------------------


@login_required
@hub_page
def my_bookings(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    if request.method == "POST":
        booking = selectors.booking_get(booking_id=_int(request.POST.get("booking_id")), user=user)
        services.booking_cancel(booking=booking, actor=user, reason=request.POST.get("reason", ""))
        messages.success(request, "Booking cancelled.")
        return redirect("my-bookings")
    now = timezone.now()
    rows = selectors.bookings_of_member(user)
    upcoming = rows.filter(end__gt=now).order_by("start")
    past = Paginator(rows.filter(end__lte=now), 30).get_page(request.GET.get("page"))
    return render(
        request,
        "machines/my_bookings.html",
        {
            "upcoming": upcoming,
            "past": past,
            "feed": services.calendar_feed_get(owner=user),
            "labs": selectors.labs_of(user),
        },
    )


@login_required
@require_POST
@hub_page
def feed_reset(request: HttpRequest, token: str) -> HttpResponse:
    user = signed_in_user(request)
    feed = CalendarFeed.objects.filter(token=token, owner=user).first()
    if feed is None:
        raise NotFound("There is no such feed.")
    services.calendar_feed_reset(feed=feed, actor=user)
    messages.success(request, "New calendar address made: the old one no longer works.")
    return redirect_back(request, "my-bookings")


def _feed_name(feed: CalendarFeed) -> str:
    if feed.scope == CalendarFeed.Scope.MEMBER:
        return f"{feed.owner.username}'s bookings (fabhub)"
    # The model's check constraint gives lab and machine feeds their lab (and machine).
    lab_name = feed.lab.name if feed.lab is not None else ""
    if feed.scope == CalendarFeed.Scope.MACHINE and feed.machine is not None:
        return f"{feed.machine.name} · {lab_name}"
    return lab_name


def calendar_feed(request: HttpRequest, token: str) -> HttpResponse:
    """An iCalendar feed; the token in the URL is the only credential."""
    feed = (
        CalendarFeed.objects.select_related("owner", "lab", "machine", "machine__lab")
        .filter(token=token)
        .first()
    )
    credential = Credential.for_feed_secret(feed.owner) if feed is not None else None
    rows = selectors.feed_rows(feed) if feed is not None and credential is not None else None
    if feed is None or rows is None:
        raise Http404("No such calendar.")
    body = ical.render_feed(
        rows,
        name=_feed_name(feed),
        host=request.get_host().split(":")[0] or "fabhub",
        with_member=feed.scope == CalendarFeed.Scope.MEMBER,
    )
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Cache-Control"] = "private, max-age=300"
    return response
