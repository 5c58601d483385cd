"""Pages of the print queue: the lab's queue with its printers, my jobs, a job, sending a
part, a printer's settings (and which lab agent drives it), and the lab agents' actions
of the lab's settings page. Thin views over machines.printing's services and selectors."""

from __future__ import annotations

import json
from collections.abc import Iterable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from designs.selectors import design_get
from hub.accounts import public_url
from hub.auth import signed_in_user
from hub.exceptions import HubError, NotFound, PermissionDenied, ValidationError
from hub.redirects import redirect_back
from hub.views import form_call, hub_page
from machines import forms, selectors
from machines.models import Printer, PrintJob, PrintRecord
from machines.printing import agents, prices
from machines.printing import forms as print_forms
from machines.printing import selectors as ps
from machines.printing import services as printing
from machines.printing.waiting import waiting_reasons, why_waiting
from machines.views import lab_context, lab_manage_page

WAITING = (PrintJob.Status.PREPARING, PrintJob.Status.PENDING_APPROVAL, PrintJob.Status.QUEUED)
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
            "card": ps.printer_card_state(p, current.get(p.pk)),
            "seconds_left": ps.seconds_left(current[p.pk]) if p.pk in current else None,
        }
        for p in printers
    ]
    groups = ps.queue_of_lab(the_lab) if role in ("member", "manager") else None
    if groups is not None:
        waiting = groups["queued"] + groups["waiting"]
        reasons = waiting_reasons(waiting)
        for job in waiting:
            # Read by _print_job_row.html next to the job's status.
            setattr(job, "waiting_reasons", reasons.get(job.pk, []))  # noqa: B010
    context = lab_context(
        request,
        the_lab,
        "queue",
        tiles=tiles,
        settings_row=ps.print_settings_of(the_lab),
        groups=groups,
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
    return render(
        request,
        "machines/print_settings.html",
        lab_context(
            request,
            the_lab,
            "queue",
            form=form,
            material_prices=prices.material_prices_of(the_lab),
            material_form=print_forms.MaterialPriceForm(),
        ),
    )


@login_required
@hub_page
def printer_edit(request: HttpRequest, lab: str, machine: str) -> HttpResponse:
    user = signed_in_user(request)
    the_lab = selectors.lab_get(slug=lab)
    the_machine = selectors.machine_get(lab=the_lab, slug=machine)
    selectors.require_manager(the_lab, user)
    printer = ps.printer_of(the_machine)
    form = print_forms.PrinterForm(
        request.POST or None,
        instance=printer,
        agents=[a for a in selectors.agents_of_lab(the_lab, actor=user) if a.is_active],
        current=the_machine.agent,
    )
    if request.method == "POST" and form.is_valid():
        agent = form.chosen_agent()
        moves = (agent.pk if agent else None) != the_machine.agent_id
        # One save: settings refused by the second service leave none of the first behind.
        with transaction.atomic():
            ok, _ = form_call(
                form, printing.printer_configure, machine=the_machine, actor=user, **form.printer_fields()
            )
            if ok and moves:
                ok, _ = form_call(
                    form, agents.machine_set_agent, machine=the_machine, actor=user, agent=agent
                )
                if not ok:
                    transaction.set_rollback(True)
        if ok and moves and agent is None:
            messages.success(
                request,
                f"{the_machine.name} is now driven directly by the hub: give its connection URL and key.",
            )
            return redirect("machine-edit", lab=the_lab.slug, machine=the_machine.slug)
        if ok:
            messages.success(request, f"{the_machine.name}'s print settings saved.")
            return redirect("print-queue", lab=the_lab.slug)
        the_machine.refresh_from_db()
    return render(
        request,
        "machines/printer_form.html",
        lab_context(
            request,
            the_lab,
            "queue",
            form=form,
            machine=the_machine,
            printer=printer,
            agent_contact=selectors.agent_contact(the_machine.agent),
        ),
    )


# -- lab agents: made and revoked from the lab's settings page ----------------------------


@login_required
@hub_page
def lab_agents(request: HttpRequest, lab: str) -> HttpResponse:
    """The lab agents section of the settings page posts here: create one, or revoke one."""
    user = signed_in_user(request)
    the_lab = selectors.lab_get(slug=lab)
    selectors.require_manager(the_lab, user)
    if request.method != "POST":  # where hub_page sends a refused POST back to
        return redirect(reverse("lab-manage", args=[the_lab.slug]) + "#agents")
    action = request.POST.get("action")
    if action == "revoke":
        agent = selectors.agent_of_lab(the_lab, actor=user, agent_id=_agent_id(request.POST.get("agent_id")))
        if request.POST.get("confirm") != "yes":
            raise ValidationError(f"Tick the box to confirm revoking {agent.name}.")
        agents.agent_revoke(agent=agent, actor=user)
        messages.success(request, f"{agent.name} is revoked: its token no longer works.")
        return redirect(reverse("lab-manage", args=[the_lab.slug]) + "#agents")
    if action != "create":
        raise ValidationError("Unknown action.")
    form = forms.AgentForm(request.POST)
    if form.is_valid():
        ok, created = form_call(
            form, agents.agent_create, lab=the_lab, actor=user, name=form.cleaned_data["name"]
        )
        if ok:
            agent, token = created
            # The token is written into this answer and nowhere else: no redirect to a page
            # that would need it kept in the session (stored server-side, or in a cookie,
            # until shown) or in the URL (logs, history). A reload re-posts and, at worst,
            # makes a second agent, which the manager can revoke. no-store keeps it out of
            # caches and the back-forward cache.
            snippet = agent_toml(
                hub_url=public_url("/", request_root=request.build_absolute_uri("/")),
                token=token,
                printers=ps.printers_of_lab(the_lab),
            )
            response = lab_manage_page(
                request,
                the_lab,
                user,
                new_agent=agent,
                new_token=token,
                agent_toml=snippet,
                agent_toml_rows=snippet.count("\n") + 1,
            )
            response["Cache-Control"] = "no-store"
            return response
    return lab_manage_page(request, the_lab, user, agent_form=form)


def _agent_id(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError:
        raise NotFound("No such lab agent.") from None


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string of printable characters is a TOML basic string


def agent_toml(*, hub_url: str, token: str, printers: Iterable[Printer]) -> str:
    """A minimal agent.toml for a new agent (fabhub_agent/config.py reads it): the hub,
    the token, and a `[[printer]]` block per printer of the lab as an example — the
    manager keeps those the agent will drive and assigns each to it on its settings page."""
    lines = [
        "[hub]",
        f"url = {_toml_string(hub_url.rstrip('/'))}",
        f'token = {_toml_string(token)}  # or token_file = "/etc/fabhub-agent/token"',
        'state_dir = "/var/lib/fabhub-agent"',
    ]
    rows = list(printers)
    for printer in rows:
        name = " ".join(printer.machine.name.split())
        lines += [
            "",
            f"[[printer]]  # {name}",
            f"id = {printer.pk}",
            'protocol = "octoprint"  # octoprint | moonraker | prusalink',
            'url = "http://192.168.1.40"  # its address on the lab\'s network',
            f'api_key_env = "PRINTER_{printer.pk}_KEY"  # the environment variable holding its key',
        ]
    if not rows:
        lines += ["", "# Add a [[printer]] block (id, protocol, url, api_key_env) per printer it drives."]
    return "\n".join(lines) + "\n"


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
            "waiting_reasons": why_waiting(job) if job.status in WAITING else None,
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
