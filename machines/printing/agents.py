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

import hashlib
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
from hub.models import AGENT_TOKEN_PREFIX, User
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
MAX_REPORTS_PER_SYNC = 200
MAX_COMMANDS_PER_SYNC = 50
MAX_TEMPERATURES = 8
# How often the driver looks whether the agent answered a command.
ANSWER_POLL_S = 0.1


def _digest(raw: str) -> str:
    # 256-bit random tokens: a fast unsalted digest is enough (as for personal tokens).
    return hashlib.sha256(raw.encode()).hexdigest()


# -- agents: create, revoke, assign, find ----------------------------------------------------


def agent_create(*, lab: Lab, actor: User, name: str) -> tuple[LabAgent, str]:
    """A new agent for `lab`; returns it and its token, which is never shown again."""
    require_manager(lab, actor)
    name = name.strip()
    if not name or len(name) > 100:
        raise ValidationError("Give the agent a name of 1 to 100 characters.")
    raw = AGENT_TOKEN_PREFIX + secrets.token_urlsafe(32)
    agent = LabAgent.objects.create(lab=lab, name=name, digest=_digest(raw), hint=raw[:12], created_by=actor)
    logger.info("lab agent %s created for %s by %s", agent.pk, lab.slug, actor)
    return agent, raw


def agent_rotate_token(*, agent: LabAgent, actor: User) -> str:
    """A new token for the agent; the old one is refused from now on. The agent keeps its
    printers and its place in the report sequence (its state file carries on)."""
    require_manager(agent.lab, actor)
    if not agent.is_active:
        raise ValidationError("A revoked agent gets no new token: create a new agent.")
    raw = AGENT_TOKEN_PREFIX + secrets.token_urlsafe(32)
    LabAgent.objects.filter(pk=agent.pk).update(digest=_digest(raw), hint=raw[:12])
    agent.digest, agent.hint = _digest(raw), raw[:12]
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
    return LabAgent.objects.select_related("lab").filter(digest=_digest(raw), revoked_at__isnull=True).first()


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


Report = StatusReport | CommandReport


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


def parse_reports(payload: Any) -> list[Report]:
    """The reports of a sync, checked field by field; one malformed report refuses all."""
    if not isinstance(payload, list):
        raise ValidationError("'reports' must be a list.")
    if len(payload) > MAX_REPORTS_PER_SYNC:
        raise ValidationError(f"At most {MAX_REPORTS_PER_SYNC} reports per sync.")
    reports: list[Report] = []
    previous = None
    for item in payload:
        if not isinstance(item, dict):
            raise ValidationError("Each report must be an object.")
        seq = item.get("seq")
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 < seq < 2**62:
            raise ValidationError("Each report needs a positive integer 'seq'.")
        if previous is not None and seq != previous + 1:
            raise ValidationError("The reports of one sync must be numbered one after another.")
        previous = seq
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
                raise ValidationError(
                    f"'temperatures' must be an object of at most {MAX_TEMPERATURES} heaters."
                )
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
            reports.append(
                StatusReport(
                    seq=seq,
                    printer=printer,
                    observed_at=_number(item.get("observed_at"), "'observed_at'", low=0, high=2**40),
                    state=str(state),
                    progress=None if progress is None else _number(progress, "'progress'", low=0, high=100),
                    job_name=_text(item.get("job_name"), "'job_name'", 255),
                    message=_text(item.get("message"), "'message'", 500),
                    temperatures=temps,
                )
            )
        elif kind == "command":
            try:
                command = uuid.UUID(str(item.get("command")))
            except ValueError:
                raise ValidationError("A command report needs the command's id.") from None
            ok, retryable = item.get("ok"), item.get("retryable", False)
            if not isinstance(ok, bool) or not isinstance(retryable, bool):
                raise ValidationError("'ok' and 'retryable' must be true or false.")
            reports.append(
                CommandReport(
                    seq=seq, command=command, ok=ok, retryable=retryable,
                    message=_text(item.get("message"), "'message'", 500),
                )
            )  # fmt: skip
        else:
            raise ValidationError("A report's 'type' is 'status' or 'command'.")
    return reports


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


def agent_sync(
    *, agent: LabAgent, reports: list[Report], version: str = "", address: str | None = None
) -> SyncResult:
    """Apply the agent's reports in order and hand out its open commands.

    A report numbered at or below the last one applied is one the hub already has: it
    changes nothing. The next number is applied. A higher number means one is missing:
    `SequenceGap`, after the reports before it were applied. A report about a printer or
    command that is not this agent's is refused — skipped and logged — so a forged or
    out-of-date report never touches another printer, and never wedges the agent.
    """
    now = timezone.now()
    printers = set(Machine.objects.filter(agent=agent).values_list("pk", flat=True))
    refused: list[int] = []
    changed: set[int] = set()
    with transaction.atomic():
        # The row lock orders two syncs of one agent (a restarted agent racing its old self).
        row = LabAgent.objects.select_for_update().get(pk=agent.pk)
        if row.revoked_at is not None:
            raise NotFound("This agent was revoked.")
        last = row.last_seq
        gap: SequenceGap | None = None
        for report in reports:
            if report.seq <= last:
                continue  # already applied: a replay changes nothing
            # A brand-new agent adopts the agent's counter at its first report.
            if report.seq != last + 1 and last != 0:
                gap = SequenceGap(last + 1, report.seq)
                break
            if not _apply(row, report, printers, now, changed):
                refused.append(report.seq)
            last = report.seq
        _finish_sync(row, last, now, version, address)
        # No commands for an agent whose reports are out of order: it is confused.
        commands = [] if gap else _hand_out(row, printers, now)
        transaction.on_commit(lambda: _poll_soon(changed))
    if refused:
        logger.warning(
            "lab agent %s sent reports about printers or commands not its own: %s", agent.pk, refused
        )
    if gap is not None:
        raise gap  # the reports before it are applied (committed above)
    return SyncResult(accepted_through=last, refused=refused, commands=commands, printers=sorted(printers))


def _finish_sync(row: LabAgent, last: int, now: datetime, version: str, address: str | None) -> None:
    LabAgent.objects.filter(pk=row.pk).update(
        last_seq=last, last_seen_at=now, version=version[:60], last_address=address
    )


def _poll_soon(machine_ids: set[int]) -> None:
    """A printer whose reported state changed is reconciled now, not at the next tick."""
    for machine_id in sorted(machine_ids):
        enqueue("machines.tasks.poll_printer", machine_id)


def _apply(row: LabAgent, report: Report, printers: set[int], now: datetime, changed: set[int]) -> bool:
    if isinstance(report, StatusReport):
        if report.printer not in printers:
            return False
        previous = Printer.objects.filter(pk=report.printer).values_list("agent_report", flat=True).first()
        if previous and previous.get("observed_at", 0) > report.observed_at:
            return True  # an older observation than the one the hub holds (clock order)
        body = {
            "state": report.state,
            "progress": report.progress,
            "job_name": report.job_name,
            "message": report.message,
            "temperatures": report.temperatures,
            "observed_at": report.observed_at,
        }
        Printer.objects.filter(pk=report.printer).update(agent_report=body)
        if (
            not previous
            or any(previous.get(key) != body[key] for key in ("state", "job_name"))
            or _progress_step(previous.get("progress")) != _progress_step(report.progress)
        ):
            changed.add(report.printer)
        return True
    answered = AgentCommand.objects.filter(pk=report.command, agent=row, status__in=AgentCommand.OPEN).update(
        status=CS.DONE if report.ok else CS.FAILED,
        answered_at=now,
        message=report.message,
        retryable=report.retryable and not report.ok,
    )
    if answered:
        return True
    # Answered before (a replay after a lost reply) is fine; anything else is not ours.
    return AgentCommand.objects.filter(pk=report.command, agent=row).exists()


def _progress_step(progress: float | None) -> int | None:
    return None if progress is None else int(progress // 5)


def _hand_out(row: LabAgent, printers: set[int], now: datetime) -> list[dict[str, Any]]:
    open_commands = list(
        AgentCommand.objects.filter(
            agent=row, status__in=AgentCommand.OPEN, machine_id__in=printers
        ).order_by("created_at")[:MAX_COMMANDS_PER_SYNC]
    )
    pending = [c.pk for c in open_commands if c.status == CS.PENDING]
    if pending:
        AgentCommand.objects.filter(pk__in=pending, status=CS.PENDING).update(
            status=CS.DELIVERED, delivered_at=now
        )
    out = []
    for command in open_commands:
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
    """The G-code an open start command of this agent asks it to print."""
    command = AgentCommand.objects.filter(
        pk=command_id, agent=agent, action=A.START, status__in=AgentCommand.OPEN
    ).first()
    if command is None:
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
            raise PrinterError(
                f"{self.machine.name} is driven by a lab agent that was revoked: a manager must assign another",
                retryable=False,
            )
        now = timezone.now()
        if agent.last_seen_at is None or agent.last_seen_at < agent_silent_before(now):
            since = f"since {agent.last_seen_at:%Y-%m-%d %H:%M} UTC" if agent.last_seen_at else "yet"
            raise PrinterError(
                f"the lab agent {agent.name!r} has not been heard from {since}", retryable=True
            )
        return agent

    def status(self) -> PrinterStatus:
        self._agent()
        if AgentCommand.objects.filter(machine=self.machine, action=A.START, status=CS.DELIVERED).exists():
            raise PrinterError("the lab agent is starting a job and has not answered yet", retryable=True)
        report = Printer.objects.filter(pk=self.machine.pk).values_list("agent_report", flat=True).first()
        if not report:
            return PrinterStatus(
                state=PrinterState.UNKNOWN, message="the lab agent has not reported this printer yet"
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
