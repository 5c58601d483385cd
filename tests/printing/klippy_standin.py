"""A stand-in for Klippy (Klipper's host process), written for the Moonraker driver tests.

This is NOT Klipper. Moonraker, the server the driver talks to, is the real one (PyPI
`moonraker`, see scripts/ensure-moonraker); Moonraker in turn is a client of Klippy's API
unix socket, and this module answers on that socket in Klippy's place, with just enough
of Klippy's behaviour for Moonraker to start, list and start files, pause, resume, cancel,
restart, and keep its job history:

- the wire format: JSON messages each ended by the byte 0x03; requests
  `{"id", "method", "params"}`, replies `{"id", "result"}` or `{"id", "error": {"message"}}`;
- the endpoints Moonraker calls: `info`, `list_endpoints`, `objects/list`,
  `objects/query`, `objects/subscribe` (then `process_status_update` pushes of what
  changed), `gcode/subscribe_output`, `register_remote_method`, `gcode/script`
  (`SDCARD_PRINT_FILE FILENAME="x"`, `PAUSE`, `RESUME`, `CANCEL_PRINT`, `RESTART`,
  `FIRMWARE_RESTART`, `M112`), `pause_resume/pause|resume|cancel`, `emergency_stop`;
- the objects the driver reads: `webhooks`, `print_stats`, `virtual_sdcard`, `extruder`,
  `heater_bed`, plus `heaters` (Moonraker's history records no job without it) and
  `configfile` (where Moonraker learns the gcodes folder).

A print is simulated in time, not executed: the file is "read" at `--bytes-per-second`,
so progress (`virtual_sdcard.progress`) rises over a few seconds and a test can watch
pause, resume, cancel and completion happen. `total_duration` rises while a job is loaded
(Moonraker logs a resume as a new job otherwise). Heater targets come from the file's
first M104/M109 and M140/M190; actual temperatures move towards them and fall back to
room temperature when the job ends. A restart (RESTART, FIRMWARE_RESTART) drops every
connection and comes back "ready" after a moment, as Klippy does; M112 or
`emergency_stop` shuts down until a restart.

The reported `klipper_path` is this file's folder, never one holding the gcodes folder:
Moonraker refuses uploads into Klipper's own source tree (HTTP 403).

Run: python klippy_standin.py SOCKET --gcodes DIR [--bytes-per-second N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

ETX = b"\x03"
TICK = 0.1
ROOM = 25.0
RESTART_DELAY = 0.5
HEAT_RATE = 40.0  # degrees per second, towards the target

ENDPOINTS = [
    "info",
    "emergency_stop",
    "register_remote_method",
    "list_endpoints",
    "objects/list",
    "objects/query",
    "objects/subscribe",
    "gcode/script",
    "gcode/help",
    "gcode/subscribe_output",
    "gcode/restart",
    "gcode/firmware_restart",
    "pause_resume/pause",
    "pause_resume/resume",
    "pause_resume/cancel",
]


class KlippyError(Exception):
    pass


class Client:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.subscription: dict[str, list[str] | None] = {}
        self.status_template: dict[str, Any] = {"method": "process_status_update"}
        self.output_template: dict[str, Any] | None = None

    def send(self, message: dict[str, Any]) -> None:
        if not self.writer.is_closing():
            self.writer.write(json.dumps(message).encode() + ETX)


class Printer:
    def __init__(self, gcodes: Path, bytes_per_second: float) -> None:
        self.gcodes = gcodes
        self.bytes_per_second = bytes_per_second
        self.clients: set[Client] = set()
        self.state = "ready"
        self.state_message = "Printer is ready"
        self.extruder = {"temperature": ROOM, "target": 0.0, "power": 0.0}
        self.bed = {"temperature": ROOM, "target": 0.0, "power": 0.0}
        self.last_sent: dict[str, dict[str, Any]] = {}
        self._reset_job()

    def _reset_job(self) -> None:
        self.job_state = "standby"
        self.filename = ""
        self.job_message = ""
        self.file_path: str | None = None
        self.file_size = 0
        self.position = 0.0
        self.total_duration = 0.0
        self.print_duration = 0.0
        self.paused = False
        self.extruder["target"] = self.bed["target"] = 0.0

    # -- the objects, as Klippy reports them

    def objects(self) -> dict[str, dict[str, Any]]:
        progress = round(self.position / self.file_size, 4) if self.file_size else 0.0
        return {
            "webhooks": {"state": self.state, "state_message": self.state_message},
            "print_stats": {
                "filename": self.filename,
                "total_duration": round(self.total_duration, 3),
                "print_duration": round(self.print_duration, 3),
                "filament_used": 0.0,
                "state": self.job_state,
                "message": self.job_message,
                "info": {"total_layer": None, "current_layer": None},
            },
            "virtual_sdcard": {
                "file_path": self.file_path,
                "progress": progress,
                "is_active": self.job_state == "printing",
                "file_position": int(self.position),
                "file_size": self.file_size,
            },
            "pause_resume": {"is_paused": self.paused},
            "display_status": {"progress": progress, "message": None},
            "extruder": {
                "temperature": round(self.extruder["temperature"], 2),
                "target": self.extruder["target"],
                "power": self.extruder["power"],
                "can_extrude": True,
                "pressure_advance": 0.0,
                "smooth_time": 0.04,
            },
            "heater_bed": {
                "temperature": round(self.bed["temperature"], 2),
                "target": self.bed["target"],
                "power": self.bed["power"],
            },
            "heaters": {
                "available_heaters": ["extruder", "heater_bed"],
                "available_sensors": ["extruder", "heater_bed"],
                "available_monitors": [],
            },
            "toolhead": {"homed_axes": "", "print_time": 0.0, "estimated_print_time": 0.0},
            "configfile": {
                "config": {
                    "virtual_sdcard": {"path": str(self.gcodes)},
                    "pause_resume": {},
                    "display_status": {},
                    "extruder": {},
                    "heater_bed": {},
                },
                "settings": {"virtual_sdcard": {"path": str(self.gcodes)}},
                "save_config_pending": False,
                "save_config_pending_items": {},
                "warnings": [],
            },
        }

    def query(self, wanted: dict[str, list[str] | None]) -> dict[str, Any]:
        everything = self.objects()
        status: dict[str, Any] = {}
        for name, fields in wanted.items():
            if name not in everything:
                continue  # Klippy leaves out objects it does not have
            obj = everything[name]
            status[name] = dict(obj) if fields is None else {k: v for k, v in obj.items() if k in fields}
        return status

    # -- the simulation

    def tick(self, dt: float) -> None:
        if self.state == "ready" and self.job_state in ("printing", "paused"):
            self.total_duration += dt
        if self.state == "ready" and self.job_state == "printing":
            self.print_duration += dt
            self.position = min(self.file_size, self.position + self.bytes_per_second * dt)
            if self.position >= self.file_size:
                self.job_state = "complete"
                self.extruder["target"] = self.bed["target"] = 0.0
                self.output("Done printing file")
        for heater in (self.extruder, self.bed):
            goal = heater["target"] or ROOM
            step = HEAT_RATE * dt
            t = heater["temperature"]
            heater["temperature"] = min(goal, t + step) if t < goal else max(goal, t - step)
            heater["power"] = 1.0 if heater["target"] and heater["temperature"] < heater["target"] else 0.0
        self.push()

    def push(self) -> None:
        """Send each subscriber what changed since the last push, as Klippy does."""
        now = self.objects()
        changed: dict[str, dict[str, Any]] = {}
        for name, obj in now.items():
            before = self.last_sent.get(name, {})
            diff = {k: v for k, v in obj.items() if before.get(k) != v}
            if diff:
                changed[name] = diff
        self.last_sent = now
        if not changed:
            return
        eventtime = time.monotonic()
        for client in list(self.clients):
            status: dict[str, Any] = {}
            for name, fields in client.subscription.items():
                if name in changed:
                    part = (
                        changed[name]
                        if fields is None
                        else {k: v for k, v in changed[name].items() if k in fields}
                    )
                    if part:
                        status[name] = part
            if status:
                client.send(dict(client.status_template, params={"eventtime": eventtime, "status": status}))

    def output(self, text: str) -> None:
        for client in list(self.clients):
            if client.output_template is not None:
                client.send(dict(client.output_template, params={"response": text}))

    # -- commands

    def start_print(self, filename: str) -> None:
        if self.job_state in ("printing", "paused"):
            raise KlippyError("SD busy")
        path = self.gcodes / filename
        if not path.is_file():
            raise KlippyError(f'Unable to open file "{filename}"')
        self._reset_job()
        self.filename = filename
        self.file_path = str(path)
        self.file_size = path.stat().st_size
        self.job_state = "printing"
        self._read_targets(path)
        self.output(f"File opened:{filename} Size:{self.file_size}")

    def _read_targets(self, path: Path) -> None:
        with path.open(errors="replace") as f:
            for line in f:
                match = re.match(r"\s*M(104|109|140|190)\s.*?S([\d.]+)", line)
                if not match:
                    continue
                heater = self.extruder if match.group(1) in ("104", "109") else self.bed
                if not heater["target"]:
                    heater["target"] = float(match.group(2))
                if self.extruder["target"] and self.bed["target"]:
                    return

    def pause(self) -> None:
        if self.job_state == "paused":
            self.output("Print already paused")
        elif self.job_state == "printing":
            self.job_state = "paused"
            self.paused = True

    def resume(self) -> None:
        if self.job_state != "paused":
            self.output("Print is not paused, resume aborted")
            return
        self.job_state = "printing"
        self.paused = False

    def cancel(self) -> None:
        # Like Klipper's CANCEL_PRINT: the file stays named, the position where it stopped.
        if self.job_state in ("printing", "paused"):
            self.job_state = "cancelled"
            self.paused = False
            self.extruder["target"] = self.bed["target"] = 0.0

    def shutdown(self, message: str) -> None:
        self.state = "shutdown"
        self.state_message = message
        if self.job_state in ("printing", "paused"):
            self.job_state = "error"
            self.job_message = "Klipper shutdown"
        self.extruder["target"] = self.bed["target"] = 0.0

    async def restart(self) -> None:
        """Klippy restarts its printer object: every connection drops, then it is ready again."""
        await asyncio.sleep(0.05)  # let the "ok" reach the caller first
        for client in list(self.clients):
            client.writer.close()
        self.clients.clear()
        self.state, self.state_message = "startup", "Printer is restarting"
        self._reset_job()
        await asyncio.sleep(RESTART_DELAY)
        self.state, self.state_message = "ready", "Printer is ready"
        self.last_sent = {}

    def gcode(self, script: str) -> None:
        for line in script.splitlines():
            words = line.strip().split(None, 1)
            if not words:
                continue
            command = words[0].upper()
            if command in ("RESTART", "FIRMWARE_RESTART"):
                asyncio.get_running_loop().create_task(self.restart())
                continue
            if self.state != "ready":
                raise KlippyError(self.state_message)
            if command == "SDCARD_PRINT_FILE":
                args = dict(
                    part.split("=", 1)
                    for part in shlex.split(words[1] if len(words) > 1 else "")
                    if "=" in part
                )
                self.start_print(args.get("FILENAME", ""))
            elif command == "PAUSE":
                self.pause()
            elif command == "RESUME":
                self.resume()
            elif command == "CANCEL_PRINT":
                self.cancel()
            elif command == "M112":
                self.shutdown("Shutdown due to M112 command")

    def handle(self, client: Client, method: str, params: dict[str, Any]) -> Any:
        if method == "info":
            return {
                "state": self.state,
                "state_message": self.state_message,
                "hostname": "standin",
                "klipper_path": str(Path(__file__).resolve().parent),
                "python_path": sys.executable,
                "process_id": os.getpid(),
                "user_id": os.getuid(),
                "group_id": os.getgid(),
                "log_file": "",
                "config_file": "",
                "software_version": "v0.12.0-standin",
                "cpu_info": "stand-in",
                "app": "Klipper",
            }
        if method == "list_endpoints":
            return {"endpoints": ENDPOINTS}
        if method == "objects/list":
            return {"objects": list(self.objects())}
        if method == "objects/query":
            return {"eventtime": time.monotonic(), "status": self.query(params.get("objects") or {})}
        if method == "objects/subscribe":
            client.subscription = dict(params.get("objects") or {})
            if params.get("response_template"):
                client.status_template = params["response_template"]
            return {"eventtime": time.monotonic(), "status": self.query(client.subscription)}
        if method == "gcode/subscribe_output":
            client.output_template = params.get("response_template") or {}
            return {}
        if method in ("register_remote_method", "gcode/help"):
            return {}
        if method == "gcode/script":
            self.gcode(str(params.get("script", "")))
            return {}
        if method in ("gcode/restart", "gcode/firmware_restart"):
            asyncio.get_running_loop().create_task(self.restart())
            return {}
        if method == "emergency_stop":
            self.shutdown("Shutdown due to webhooks request")
            return {}
        if self.state != "ready":
            raise KlippyError(self.state_message)
        if method == "pause_resume/pause":
            self.pause()
            return {}
        if method == "pause_resume/resume":
            self.resume()
            return {}
        if method == "pause_resume/cancel":
            self.cancel()
            return {}
        raise KlippyError(f"Invalid path '{method}'")

    async def serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = Client(writer)
        self.clients.add(client)
        try:
            while True:
                try:
                    data = await reader.readuntil(ETX)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                request = json.loads(data[:-1])
                reply: dict[str, Any] = {"id": request.get("id")}
                try:
                    reply["result"] = self.handle(
                        client, request.get("method", ""), request.get("params") or {}
                    )
                except KlippyError as exc:
                    reply["error"] = {"error": "WebRequestError", "message": str(exc)}
                client.send(reply)
                self.push()
                await writer.drain()
        finally:
            self.clients.discard(client)
            writer.close()


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("socket", type=Path)
    parser.add_argument("--gcodes", type=Path, required=True)
    parser.add_argument("--bytes-per-second", type=float, default=50_000.0)
    args = parser.parse_args(argv)

    printer = Printer(args.gcodes.resolve(), args.bytes_per_second)
    args.socket.unlink(missing_ok=True)
    server = await asyncio.start_unix_server(printer.serve_client, path=str(args.socket))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        last = time.monotonic()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), TICK)
            except TimeoutError:
                pass
            now = time.monotonic()
            printer.tick(now - last)
            last = now
        # Hang up on Moonraker and let each connection's task end by itself.
        for client in list(printer.clients):
            client.writer.close()
        await asyncio.sleep(0.1)
    args.socket.unlink(missing_ok=True)


if __name__ == "__main__":
    asyncio.run(main())
