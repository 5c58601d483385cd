"""Pages of the print queue: the lab's queue with its printers, my jobs, a job, sending a
part, and a printer's settings. Thin views over machines.printing.services and .selectors."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from designs.selectors import design_get
from hub.auth import signed_in_user
from hub.exceptions import HubError, NotFound, PermissionDenied
from hub.redirects import redirect_back
from hub.views import form_call, hub_page
from machines import selectors
from machines.models import PrintJob, PrintRecord
from machines.printing import forms as print_forms
from machines.printing import selectors as ps
from machines.printing import services as printing
from machines.views import lab_context

ACTIONS = ("approve", "refuse", "cancel", "pause", "resume", "started", "finished", "failed")


def _act(request: HttpRequest, default: str, done: str, service, /, **kwargs) -> HttpResponse:
    """Run a button's service and go back where the button was, with its outcome as a
    message (hub_page would send a refused POST back to the action's own address)."""
    try:
        service(**kwargs)
    except (NotFound, PermissionDenied):
        raise
    except HubError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect_back(request, default)


@hub_page
def print_queue(request: HttpRequest, lab: str) -> HttpResponse:
    """Printers with their state, and the jobs by stage. Members see it; others see the printers."""
    the_lab = selectors.lab_get(slug=lab)
    role = selectors.lab_role(the_lab, request.user)
    printers = list(ps.printers_of_lab(the_lab))
    current = {
        job.machine_id: job
        for job in PrintJob.objects.filter(
            machine__in=[p.machine for p in printers], status__in=PrintJob.ON_PRINTER
        ).select_related("owner", "gcode")
    }
    tiles = [
        {
            "printer": p,
            "job": current.get(p.pk),
            "seconds_left": ps.seconds_left(current[p.pk]) if p.pk in current else None,
        }
        for p in printers
    ]
    context = lab_context(
        request,
        the_lab,
        "queue",
        tiles=tiles,
        settings_row=ps.print_settings_of(the_lab),
        groups=ps.queue_of_lab(the_lab) if role in ("member", "manager") else None,
        manager=role == "manager",
        unqueued=the_lab.machines.filter(printer__isnull=True).order_by("name") if role == "manager" else (),
    )
    return render(request, "machines/print_queue.html", context)


@login_required
@hub_page
def print_settings(request: HttpRequest, lab: str) -> HttpResponse:
    user = signed_in_user(request)
    the_lab = selectors.lab_get(slug=lab)
    selectors.require_manager(the_lab, user)
    form = print_forms.PrintSettingsForm(request.POST or None, instance=ps.print_settings_of(the_lab))
    if request.method == "POST" and form.is_valid():
        ok, _ = form_call(form, printing.print_settings_update, lab=the_lab, actor=user, **form.cleaned_data)
        if ok:
            messages.success(request, "Print queue settings saved.")
            return redirect("print-queue", lab=the_lab.slug)
    return render(request, "machines/print_settings.html", lab_context(request, the_lab, "queue", form=form))


@login_required
@hub_page
def printer_edit(request: HttpRequest, lab: str, machine: str) -> HttpResponse:
    user = signed_in_user(request)
    the_lab = selectors.lab_get(slug=lab)
    the_machine = selectors.machine_get(lab=the_lab, slug=machine)
    selectors.require_manager(the_lab, user)
    printer = ps.printer_of(the_machine)
    form = print_forms.PrinterForm(request.POST or None, instance=printer)
    if request.method == "POST" and form.is_valid():
        ok, _ = form_call(
            form, printing.printer_configure, machine=the_machine, actor=user, **form.cleaned_data
        )
        if ok:
            messages.success(request, f"{the_machine.name}'s print settings saved.")
            return redirect("print-queue", lab=the_lab.slug)
    return render(
        request,
        "machines/printer_form.html",
        lab_context(request, the_lab, "queue", form=form, machine=the_machine, printer=printer),
    )


@login_required
@require_POST
@hub_page
def printer_cleared(request: HttpRequest, lab: str, machine: str) -> HttpResponse:
    user = signed_in_user(request)
    the_lab = selectors.lab_get(slug=lab)
    the_machine = selectors.machine_get(lab=the_lab, slug=machine)
    return _act(
        request,
        reverse("print-queue", args=[the_lab.slug]),
        f"{the_machine.name}'s bed is clear: it takes the next job.",
        printing.printer_confirm_cleared,
        machine=the_machine,
        actor=user,
    )


@login_required
@hub_page
def my_print_jobs(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    rows = ps.jobs_of_member(user).order_by("-submitted_at", "-pk")
    open_jobs = [j for j in rows.filter(status__in=PrintJob.OPEN)]
    finished = rows.filter(status__in=PrintJob.FINAL)[:50]
    return render(
        request,
        "machines/my_print_jobs.html",
        {
            "open_jobs": [(j, ps.seconds_left(j)) for j in open_jobs],
            "finished": finished,
            "labs": selectors.labs_of(user),
        },
    )


@login_required
@hub_page
def print_job_new(request: HttpRequest) -> HttpResponse:
    """Send a part to a lab's queue; `?design=&path=&rev=&lab=` pre-fill it (from a file page)."""
    user = signed_in_user(request)
    labs = list(selectors.labs_of(user).order_by("name"))
    initial = {
        key: request.GET.get(key, "") for key in ("design", "path", "rev", "lab") if request.GET.get(key)
    }
    form = print_forms.PrintJobForm(request.POST or None, request.FILES or None, labs=labs, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        the_lab = selectors.lab_get(slug=data.pop("lab"))
        design = None
        name = data.pop("design")
        if name:
            owner, _, slug = name.partition("/")
            try:
                design = design_get(user=user, owner=owner, slug=slug)
            except NotFound as exc:
                form.add_error("design", exc.message)
        if not form.errors:
            ok, job = form_call(
                form,
                printing.print_job_submit,
                lab=the_lab,
                owner=user,
                design=design,
                upload=data.pop("file"),
                **data,
            )
            if ok:
                messages.success(request, f"Sent {job.filename} to {the_lab.name}'s queue.")
                return redirect("print-job", job_id=job.pk)
    return render(request, "machines/print_job_new.html", {"form": form, "labs": labs})


@login_required
@hub_page
def print_job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    user = signed_in_user(request)
    job = ps.job_get(job_id=job_id, user=user)
    role = selectors.lab_role(job.lab, user)
    return render(
        request,
        "machines/print_job.html",
        {
            "job": job,
            "lab": job.lab,
            "role": role,
            "seconds_left": ps.seconds_left(job),
            "records": PrintRecord.objects.filter(job=job).order_by("ended_at"),
            "gcodes": job.gcodes.order_by("profile_name"),
            "manual": job.machine is not None and not job.machine.has_connection,
        },
    )


@login_required
@require_POST
@hub_page
def print_job_action(request: HttpRequest, job_id: int, action: str) -> HttpResponse:
    user = signed_in_user(request)
    if action not in ACTIONS:
        raise NotFound("No such action.")
    job = ps.job_get(job_id=job_id, user=user)
    reason = request.POST.get("reason", "")
    back = reverse("print-job", args=[job.pk])
    done = {
        "approve": "Approved.",
        "refuse": "Refused.",
        "cancel": "Cancelled.",
        "pause": "Paused.",
        "resume": "Resumed.",
    }.get(action, "Recorded.")
    if action == "approve":
        return _act(request, back, done, printing.print_job_approve, job=job, actor=user)
    if action == "refuse":
        return _act(request, back, done, printing.print_job_refuse, job=job, actor=user, reason=reason)
    if action == "cancel":
        return _act(request, back, done, printing.print_job_cancel, job=job, actor=user, reason=reason)
    if action in ("pause", "resume"):
        return _act(
            request,
            back,
            done,
            printing.print_job_pause,
            job=job,
            actor=user,
            resume=action == "resume",
        )
    return _act(
        request,
        back,
        done,
        printing.print_job_record,
        job=job,
        actor=user,
        outcome=action,
        reason=reason,
    )
