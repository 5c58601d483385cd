"""Lab agents, the hub's side: printers driven from inside a lab's network.

A lab agent (`fabhub_agent/`, docs/agent.md) dials out to the hub; the hub never connects
into the lab. Every few seconds the agent *syncs*: it posts its numbered reports (printer
status, answers to commands) and gets back the commands waiting for it. This module:

- creates, revokes and finds agents (their token is shown once; only its digest is kept)
  and assigns printers to them (a printer via agent has no stored address or key);
- applies a sync: reports in sequence order — one the hub already has changes nothing, a
  gap is refused — and hands out open commands, each delivered until answered;
- offers `AgentDriver`, the `PrinterDriver` the dispatcher uses for a printer via agent,
  so the dispatcher, poller and sweeper are the same for direct and agent printers: the
  driver turns each call into a command and waits for the agent's answer, and reads the
  status from the agent's last report.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from hub.exceptions import Conflict, NotFound, ValidationError
from hub.models import AGENT_TOKEN_PREFIX, User, hash_token
from hub.queue import enqueue
from machines.models import AgentCommand, Lab, LabAgent, Machine, Printer, PrintJob
from machines.printing.drivers import (
    Capability,
    PrinterDriver,
    PrinterError,
    PrinterState,
    PrinterStatus,
    Temperature,
)
from machines.printing.files import gcode_path
from machines.selectors import require_manager

logger = logging.getLogger(__name__)

A = AgentCommand.Action
CS = AgentCommand.Status
# A job the hub still thinks runs (or lost) on its printer: how it ended is still news.
RUNNING_JOB = (
    PrintJob.Status.PRINTING,
    PrintJob.Status.PAUSED,
    PrintJob.Status.PRINTER_LOST,
    PrintJob.Status.AWAITING_OPERATOR,
)
MAX_REPORTS_PER_SYNC = 200
MAX_COMMANDS_PER_SYNC = 50
MAX_TEMPERATURES = 8
# How often the driver looks whether the agent answered a command.
ANSWER_POLL_S = 0.1


# -- agents: create, revoke, assign, find ----------------------------------------------------


def agent_create(*, lab: Lab, actor: User, name: str) -> tuple[LabAgent, str]:
    """A new agent for `lab`; returns it and its token, which is never shown again."""
    require_manager(lab, actor)
    name = name.strip()
    if not name or len(name) > 100 or not name.isprintable():
        raise ValidationError("Give the agent a name of 1 to 100 printable characters.")
    raw = AGENT_TOKEN_PREFIX + secrets.token_urlsafe(32)
    agent = LabAgent.objects.create(
        lab=lab, name=name, digest=hash_token(raw), hint=raw[:12], created_by=actor
    )
    logger.info("lab agent %s created for %s by %s", agent.pk, lab.slug, actor)
    return agent, raw


def agent_rotate_token(*, agent: LabAgent, actor: User) -> str:
    """A new token for the agent; the old one is refused from now on. The agent keeps its
    printers and its place in the report sequence (its state file carries on)."""
    require_manager(agent.lab, actor)
    if not agent.is_active:
        raise ValidationError("A revoked agent gets no new token: create a new agent.")
    raw = AGENT_TOKEN_PREFIX + secrets.token_urlsafe(32)
    LabAgent.objects.filter(pk=agent.pk).update(digest=hash_token(raw), hint=raw[:12])
    agent.digest, agent.hint = hash_token(raw), raw[:12]
    logger.info("lab agent %s of %s got a new token from %s", agent.pk, agent.lab.slug, actor)
    return raw


@transaction.atomic
def agent_revoke(*, agent: LabAgent, actor: User) -> None:
    """Stop the agent acting at once: its token is refused from now on, commands it never
    received are withdrawn, and those it received are failed (it can no longer answer)."""
    require_manager(agent.lab, actor)
    now = timezone.now()
    LabAgent.objects.filter(pk=agent.pk, revoked_at__isnull=True).update(revoked_at=now)
    agent.commands.filter(status=CS.PENDING).update(status=CS.WITHDRAWN, answered_at=now)
    agent.commands.filter(status=CS.DELIVERED).update(
        status=CS.FAILED, answered_at=now, message="The lab agent was revoked.", retryable=False
    )
    logger.info("lab agent %s of %s revoked by %s", agent.pk, agent.lab.slug, actor)


@transaction.atomic
def machine_set_agent(*, machine: Machine, actor: User, agent: LabAgent | None) -> Machine:
    """Drive `machine` through `agent` (None: not through any). The hub then keeps no
    address or key for it; a printer has at most one agent, so the previous one's
    undelivered commands for it are withdrawn."""
    require_manager(machine.lab, actor)
    if agent is not None and (agent.lab_id != machine.lab_id or not agent.is_active):
        raise ValidationError("Choose an active agent of this lab.")
    if agent is not None and not Printer.objects.filter(pk=machine.pk).exists():
        raise ValidationError(
            f"{machine.name} is not in the print queue: only printers are driven by an agent."
        )
    if machine.agent_id == (agent.pk if agent else None) and (agent is None or not machine.connection_secret):
        return machine  # nothing changes
    if PrintJob.objects.filter(machine=machine, status__in=PrintJob.ON_PRINTER).exists():
        raise Conflict(f"{machine.name} holds a print job: change how it is driven once the job is over.")
    if machine.agent_id and (agent is None or agent.pk != machine.agent_id):
        AgentCommand.objects.filter(machine=machine, status=CS.PENDING).update(
            status=CS.WITHDRAWN, answered_at=timezone.now()
        )
    machine.agent = agent
    if agent is not None:
        machine.connection_secret = ""
    machine.save(update_fields=["agent", "connection_secret"])
    Printer.objects.filter(pk=machine.pk).update(agent_report=None)
    return machine


def agent_for_token(raw: str) -> LabAgent | None:
    """The active agent holding this token, or None (the credential resolver's lookup)."""
    if not raw.startswith(AGENT_TOKEN_PREFIX) or len(raw) > 100:
        return None
    try:
        return LabAgent.objects.get(digest=hash_token(raw), revoked_at__isnull=True)
    except LabAgent.DoesNotExist:
        return None


def agent_silent_before(now: datetime) -> datetime:
    return now - timedelta(seconds=settings.FABHUB_AGENT_SILENT_S)


# -- a sync: the agent's reports in, the waiting commands out ------------------------------


@dataclass(frozen=True)
class StatusReport:
    seq: int
    printer: int
    observed_at: float
    state: str
    progress: float | None
    job_name: str
    message: str
    temperatures: dict[str, dict[str, float | None]]


@dataclass(frozen=True)
class CommandReport:
    seq: int
    command: uuid.UUID
    ok: bool
    message: str
    retryable: bool


@dataclass(frozen=True)
class BadReport:
    """A numbered report whose content the hub cannot read: refused (skipped, logged), so
    one faulty sensor or a newer agent's new state never wedges the agent."""

    seq: int
    reason: str


Report = StatusReport | CommandReport | BadReport


@dataclass(frozen=True)
class SyncRequest:
    reports: list[Report]
    version: str = ""
    # The agent's state id, the lowest report number it still holds, and whether it holds
    # more reports than this sync carries.
    instance: str = ""
    first_held: int | None = None
    more: bool = False


def _number(value: Any, what: str, *, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ValidationError(f"{what} must be a number.")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValidationError(f"{what} is out of range.")
    return float(value)


def _text(value: Any, what: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be text.")
    return value[:limit]


def _seq(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**62:
        raise ValidationError("Each report needs a positive integer 'seq'.")
    return value


def parse_sync(body: Any) -> SyncRequest:
    """A sync's body, checked. A malformed envelope (not an object, too many reports, a
    report without its number, numbers out of order) refuses the sync; a numbered report
    whose content is malformed becomes a `BadReport`."""
    if not isinstance(body, dict):
        raise ValidationError("The sync body must be a JSON object.")
    payload = body.get("reports", [])
    if not isinstance(payload, list):
        raise ValidationError("'reports' must be a list.")
    if len(payload) > MAX_REPORTS_PER_SYNC:
        raise ValidationError(f"At most {MAX_REPORTS_PER_SYNC} reports per sync.")
    reports: list[Report] = []
    previous = None
    for item in payload:
        if not isinstance(item, dict):
            raise ValidationError("Each report must be an object.")
        seq = _seq(item.get("seq"))
        if previous is not None and seq != previous + 1:
            raise ValidationError("The reports of one sync must be numbered one after another.")
        previous = seq
        try:
            reports.append(_report(seq, item))
        except ValidationError as exc:
            reports.append(BadReport(seq=seq, reason=exc.message))
    first_held = body.get("first_held")
    return SyncRequest(
        reports=reports,
        version=_text(body.get("agent"), "'agent'", 60) if isinstance(body.get("agent"), str) else "",
        instance=body["instance"][:64] if isinstance(body.get("instance"), str) else "",
        first_held=_seq(first_held) if first_held is not None else None,
        more=body.get("more") is True,
    )


def _report(seq: int, item: dict[str, Any]) -> Report:
    kind = item.get("type")
    if kind == "status":
        printer = item.get("printer")
        if isinstance(printer, bool) or not isinstance(printer, int):
            raise ValidationError("A status report needs the printer's id.")
        state = item.get("state")
        if state not in PrinterState._value2member_map_:
            raise ValidationError(f"Unknown printer state {str(state)[:40]!r}.")
        progress = item.get("progress")
        temperatures = item.get("temperatures") or {}
        if not isinstance(temperatures, dict) or len(temperatures) > MAX_TEMPERATURES:
            raise ValidationError(f"'temperatures' must be an object of at most {MAX_TEMPERATURES} heaters.")
        temps: dict[str, dict[str, float | None]] = {}
        for name, reading in temperatures.items():
            if not isinstance(reading, dict):
                raise ValidationError("Each temperature must be an object.")
            temps[_text(name, "A heater's name", 20)] = {
                key: None
                if reading.get(key) is None
                else _number(reading.get(key), "A temperature", low=-300, high=2000)
                for key in ("actual", "target")
            }
        return StatusReport(
            seq=seq,
            printer=printer,
            observed_at=_number(item.get("observed_at"), "'observed_at'", low=0, high=2**40),
            state=str(state),
            progress=None if progress is None else _number(progress, "'progress'", low=0, high=100),
            job_name=_text(item.get("job_name"), "'job_name'", 255),
            message=_text(item.get("message"), "'message'", 500),
            temperatures=temps,
        )
    if kind == "command":
        try:
            command = uuid.UUID(str(item.get("command")))
        except ValueError:
            raise ValidationError("A command report needs the command's id.") from None
        ok, retryable = item.get("ok"), item.get("retryable", False)
        if not isinstance(ok, bool) or not isinstance(retryable, bool):
            raise ValidationError("'ok' and 'retryable' must be true or false.")
        return CommandReport(
            seq=seq, command=command, ok=ok, retryable=retryable,
            message=_text(item.get("message"), "'message'", 500),
        )  # fmt: skip
    raise ValidationError("A report's 'type' is 'status' or 'command'.")


class SequenceGap(Conflict):
    """A report numbered past the next one the hub expects: one in between is missing."""

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"Report {got} arrived, but the hub expects report {expected} next.")
        self.expected = expected
        self.accepted_through = expected - 1


@dataclass
class SyncResult:
    accepted_through: int
    refused: list[int]
    commands: list[dict[str, Any]]
    printers: list[int]


def _seen_every() -> timedelta:
    """How stale `last_seen_at` may get before a quiet sync writes it again: a write per
    sync would be a write transaction per agent every few seconds."""
    return timedelta(seconds=min(10.0, settings.FABHUB_AGENT_SILENT_S / 3))


def agent_sync(*, agent: LabAgent, request: SyncRequest, address: str | None = None) -> SyncResult:
    """Apply the agent's reports in order and hand out its open commands.

    A report numbered at or below the last one applied is one the hub already has: it
    changes nothing. The next number is applied. A higher number means one is missing:
    `SequenceGap`, after the reports before it were applied — unless the agent says it
    holds nothing earlier (`first_held`): then the hub lost them (a restored database),
    logs the loss and goes on. A new `instance` means the agent lost its state: its
    numbering starts again, and the commands its former self took can never be answered.
    A report about a printer or command that is not this agent's, or one the hub cannot
    read, is refused — skipped and logged — so it never touches another printer and
    never wedges the agent.
    """
    now = timezone.now()
    if _quiet(agent, request, now):
        return SyncResult(
            accepted_through=agent.last_seq,
            refused=[],
            commands=[],
            printers=sorted(Machine.objects.filter(agent=agent).values_list("pk", flat=True)),
        )
    refused: list[int] = []
    changed: set[int] = set()
    gap: SequenceGap | None = None
    with transaction.atomic():
        # The row lock orders two syncs of one agent (a restarted agent racing its old self).
        row = LabAgent.objects.select_for_update().get(pk=agent.pk)
        if row.revoked_at is not None:
            raise NotFound("This agent was revoked.")
        printers = set(Machine.objects.filter(agent=row).values_list("pk", flat=True))
        last = row.last_seq
        if request.instance and row.instance and request.instance != row.instance:
            last = _agent_reborn(row, request, now)
        for report in request.reports:
            if report.seq <= last:
                continue  # already applied: a replay changes nothing
            if report.seq != last + 1 and last != 0:  # a brand-new agent starts where it is
                if request.first_held is not None and report.seq <= request.first_held:
                    logger.warning(
                        "lab agent %s: reports %s to %s are lost (the hub lost them after the agent "
                        "dropped them: was the database restored?)", row.pk, last + 1, report.seq - 1,
                    )  # fmt: skip
                else:
                    gap = SequenceGap(last + 1, report.seq)
                    break
            if not _apply(row, report, printers, changed):
                refused.append(report.seq)
            last = report.seq
        LabAgent.objects.filter(pk=row.pk).update(
            last_seq=last,
            last_seen_at=now,
            version=request.version,
            last_address=address,
            instance=request.instance or row.instance,
            catching_up=request.more,
        )
        # No commands for an agent whose reports are out of order: it is confused.
        commands = [] if gap else _hand_out(row, printers, now)
        transaction.on_commit(lambda: _poll_soon(changed))
    if refused:
        logger.warning(
            "lab agent %s: reports refused (not its printers or commands, or unreadable): %s",
            agent.pk,
            refused,
        )
    if gap is not None:
        raise gap  # the reports before it are applied (committed above)
    return SyncResult(accepted_through=last, refused=refused, commands=commands, printers=sorted(printers))


def _quiet(agent: LabAgent, request: SyncRequest, now: datetime) -> bool:
    """Nothing to apply, nothing to hand out, nothing to note: answer without writing."""
    return (
        all(report.seq <= agent.last_seq for report in request.reports)
        and (not request.instance or request.instance == agent.instance)
        and request.more == agent.catching_up
        and agent.last_seen_at is not None
        and agent.last_seen_at > now - _seen_every()
        and not AgentCommand.objects.filter(agent=agent, status__in=AgentCommand.OPEN).exists()
    )


def _agent_reborn(row: LabAgent, request: SyncRequest, now: datetime) -> int:
    first = request.reports[0].seq if request.reports else (request.first_held or 1)
    logger.warning(
        "lab agent %s restarted without its state (instance %s, was %s): its reports start again at %s",
        row.pk, request.instance, row.instance, first,
    )  # fmt: skip
    AgentCommand.objects.filter(agent=row, status=CS.DELIVERED).update(
        status=CS.FAILED,
        answered_at=now,
        message="The lab agent restarted without its state before answering.",
        retryable=True,
    )
    return first - 1


def _poll_soon(machine_ids: set[int]) -> None:
    """A printer whose reported state changed is reconciled now, not at the next tick."""
    for machine_id in sorted(machine_ids):
        enqueue("machines.tasks.poll_printer", machine_id)


def _apply(row: LabAgent, report: Report, printers: set[int], changed: set[int]) -> bool:
    if isinstance(report, BadReport):
        logger.warning("lab agent %s: report %s is unreadable: %s", row.pk, report.seq, report.reason)
        return False
    if isinstance(report, StatusReport):
        if report.printer not in printers:
            return False
        previous = (
            Printer.objects.filter(pk=report.printer).values_list("agent_report", flat=True).first() or {}
        )
        body: dict[str, Any] = {
            "state": report.state,
            "progress": report.progress,
            "job_name": report.job_name,
            "message": report.message,
            "temperatures": report.temperatures,
            "observed_at": report.observed_at,
            # The last job seen to end on it (idle, still named), kept until another ends:
            # a job that ended while the hub could not hear the agent is still found
            # after the printer moved on (switched off, another print started there).
            "ended": (
                {"job_name": report.job_name, "progress": report.progress}
                if report.state == PrinterState.IDLE.value and report.job_name
                else previous.get("ended")
            ),
        }
        Printer.objects.filter(pk=report.printer).update(agent_report=body)
        if any(previous.get(key) != body[key] for key in ("state", "job_name", "ended")) or _progress_step(
            previous.get("progress")
        ) != _progress_step(report.progress):
            changed.add(report.printer)
        return True
    answered = AgentCommand.objects.filter(pk=report.command, agent=row, status__in=AgentCommand.OPEN).update(
        status=CS.DONE if report.ok else CS.FAILED,
        answered_at=timezone.now(),
        message=report.message,
        retryable=report.retryable and not report.ok,
    )
    if answered:
        return True
    known = AgentCommand.objects.filter(pk=report.command, agent=row).values_list("status", flat=True).first()
    if known == CS.WITHDRAWN:
        logger.warning("lab agent %s answered command %s, which was withdrawn", row.pk, report.command)
    # Answered before (a replay after a lost reply) is fine; anything else is not ours.
    return known is not None


def _progress_step(progress: float | None) -> int | None:
    return None if progress is None else int(progress // 5)


def _wait_for(action: str) -> float:
    return float(
        settings.FABHUB_AGENT_START_WAIT_S if action == A.START else settings.FABHUB_AGENT_COMMAND_WAIT_S
    )


def _hand_out(row: LabAgent, printers: set[int], now: datetime) -> list[dict[str, Any]]:
    """The agent's open commands, oldest first. A waiting command whose driver stopped
    waiting (its worker died) or whose job no longer waits for this start is withdrawn
    instead: it can never run late. The rows are locked, so a withdrawal racing this
    hand-out either wins (the command is not handed out) or waits for it."""
    open_commands = list(
        AgentCommand.objects.select_for_update()
        .filter(agent=row, status__in=AgentCommand.OPEN, machine_id__in=printers)
        .order_by("created_at")[:MAX_COMMANDS_PER_SYNC]
    )
    starts = {c.remote_name for c in open_commands if c.action == A.START and c.status == CS.PENDING}
    waiting_jobs = set(
        PrintJob.objects.filter(remote_name__in=starts, status=PrintJob.Status.DISPATCHING).values_list(
            "remote_name", flat=True
        )
    )
    stale, fresh = [], []
    for command in open_commands:
        if command.status == CS.PENDING and (
            command.created_at < now - timedelta(seconds=_wait_for(command.action))
            or (command.action == A.START and command.remote_name not in waiting_jobs)
        ):
            stale.append(command.pk)
        else:
            fresh.append(command)
    if stale:
        AgentCommand.objects.filter(pk__in=stale, status=CS.PENDING).update(
            status=CS.WITHDRAWN, answered_at=now, message="No longer wanted when the agent asked."
        )
    pending = [c.pk for c in fresh if c.status == CS.PENDING]
    if pending:
        AgentCommand.objects.filter(pk__in=pending, status=CS.PENDING).update(
            status=CS.DELIVERED, delivered_at=now
        )
    out = []
    for command in fresh:
        item: dict[str, Any] = {
            "id": str(command.pk),
            "printer": command.machine_id,
            "action": command.action,
        }
        if command.action == A.START:
            item["job"] = {
                "remote_name": command.remote_name,
                "sha256": command.gcode_sha256,
                "size": command.gcode_size,
                "url": f"/api/agent/v1/commands/{command.pk}/gcode",
            }
        out.append(item)
    return out


def agent_gcode(*, agent: LabAgent, command_id: uuid.UUID) -> tuple[Path, AgentCommand]:
    """The G-code an open start command of this agent asks it to print, while its job
    still waits for that start."""
    command = AgentCommand.objects.filter(
        pk=command_id, agent=agent, action=A.START, status__in=AgentCommand.OPEN
    ).first()
    if (
        command is None
        or not PrintJob.objects.filter(
            remote_name=command.remote_name, status=PrintJob.Status.DISPATCHING
        ).exists()
    ):
        raise NotFound("No such open start command for this agent.")
    path = gcode_path(command.gcode_sha256)
    if not path.exists():
        raise NotFound("The job's G-code is no longer stored.")
    return path, command


# -- the driver the dispatcher uses for a printer via agent ---------------------------------


class AgentDriver(PrinterDriver):
    """A printer driven by a lab agent, behind the same interface as a direct driver.

    `status()` is the agent's last report, provided the agent was heard from lately (a
    silent agent's printer is unreachable: a retryable error, so jobs stay queued and a
    running one is marked lost until the agent reports again). Each command becomes an
    `AgentCommand` that the agent picks up at its next sync; the driver waits for the
    answer. A command the agent never received is withdrawn when the wait ends, so it can
    never run later; one it received is waited for, and while it is unanswered `status()`
    is "unknown yet" (retryable), so the queue never takes a job back that may be starting.
    """

    capabilities = frozenset(Capability)

    def __init__(self, machine: Machine) -> None:
        self.machine = machine

    def __repr__(self) -> str:
        return f"AgentDriver(machine={self.machine.pk}, agent={self.machine.agent_id})"

    def _agent(self) -> LabAgent:
        agent = LabAgent.objects.filter(pk=self.machine.agent_id or 0).first()
        if agent is None or not agent.is_active:
            # Unreachable rather than broken: the printer may be fine, its agent is gone.
            raise PrinterError(
                f"{self.machine.name} is driven by a lab agent that was revoked: a manager must assign another",
                retryable=True,
            )
        now = timezone.now()
        if agent.last_seen_at is None or agent.last_seen_at < agent_silent_before(now):
            since = f"since {agent.last_seen_at:%Y-%m-%d %H:%M} UTC" if agent.last_seen_at else "yet"
            raise PrinterError(
                f"the lab agent {agent.name!r} has not been heard from {since}", retryable=True
            )
        return agent

    def status(self) -> PrinterStatus:
        agent = self._agent()
        if agent.catching_up:
            # What the hub holds is history until the backlog is in: never dispatch on it.
            raise PrinterError(
                "the lab agent is still sending what happened while it was cut off", retryable=True
            )
        if AgentCommand.objects.filter(machine=self.machine, action=A.START, status=CS.DELIVERED).exists():
            raise PrinterError("the lab agent is starting a job and has not answered yet", retryable=True)
        report = Printer.objects.filter(pk=self.machine.pk).values_list("agent_report", flat=True).first()
        if not report:
            return PrinterStatus(
                state=PrinterState.UNKNOWN, message="the lab agent has not reported this printer yet"
            )
        ended = report.get("ended") or {}
        if (
            ended.get("job_name")
            and ended["job_name"] != report.get("job_name")
            and PrintJob.objects.filter(
                machine=self.machine, remote_name=ended["job_name"], status__in=RUNNING_JOB
            ).exists()
        ):
            # The hub's job ended on the printer while the hub could not hear the agent,
            # and the printer has moved on since: report how it ended, once.
            return PrinterStatus(
                state=PrinterState.IDLE,
                progress=ended.get("progress"),
                job_name=ended["job_name"],
                message="ended while the hub could not hear the lab agent",
            )
        return PrinterStatus(
            state=PrinterState(report["state"]),
            progress=report.get("progress"),
            job_name=report.get("job_name") or None,
            temperatures={
                name: Temperature(actual=t.get("actual"), target=t.get("target"))
                for name, t in (report.get("temperatures") or {}).items()
            },
            message=report.get("message") or "",
        )

    def connect(self) -> None:
        """The agent connects its printers itself; this asks it to, once, without waiting."""
        agent = self._agent()
        report = (
            Printer.objects.filter(pk=self.machine.pk).values_list("agent_report", flat=True).first() or {}
        )
        if report.get("state") not in (PrinterState.OFFLINE.value, PrinterState.ERROR.value):
            return
        if not AgentCommand.objects.filter(
            machine=self.machine, action=A.CONNECT, status__in=AgentCommand.OPEN
        ).exists():
            AgentCommand.objects.create(agent=agent, machine=self.machine, action=A.CONNECT)

    def upload_and_start(self, gcode_path: Path, remote_name: str) -> None:
        agent = self._agent()
        command = AgentCommand.objects.create(
            agent=agent,
            machine=self.machine,
            action=A.START,
            remote_name=remote_name,
            gcode_sha256=gcode_path.stem,
            gcode_size=gcode_path.stat().st_size,
        )
        self._await(command, settings.FABHUB_AGENT_START_WAIT_S)

    def cancel(self) -> None:
        self._command(A.CANCEL)

    def pause(self) -> None:
        self._command(A.PAUSE)

    def resume(self) -> None:
        self._command(A.RESUME)

    def _command(self, action: str) -> None:
        agent = self._agent()
        command = AgentCommand.objects.create(agent=agent, machine=self.machine, action=action)
        self._await(command, settings.FABHUB_AGENT_COMMAND_WAIT_S)

    def _await(self, command: AgentCommand, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            row = AgentCommand.objects.filter(pk=command.pk).values("status", "message", "retryable").first()
            if row is None:
                break
            if row["status"] == CS.DONE:
                return
            if row["status"] in (CS.FAILED, CS.WITHDRAWN):
                raise PrinterError(
                    f"the lab agent could not {command.get_action_display().lower()}: {row['message'] or row['status']}",
                    retryable=row["retryable"],
                )
            time.sleep(ANSWER_POLL_S)
        if AgentCommand.objects.filter(pk=command.pk, status=CS.PENDING).update(
            status=CS.WITHDRAWN, answered_at=timezone.now(), message="Not picked up in time."
        ):
            raise PrinterError(
                f"the lab agent did not pick up the command within {wait_s:.0f} s", retryable=True
            )
        raise PrinterError(
            f"the lab agent took the command but has not answered within {wait_s:.0f} s", retryable=True
        )
