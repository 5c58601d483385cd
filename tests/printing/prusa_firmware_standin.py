"""A stand-in for the firmware of an Original Prusa i3 MK3S, on a pseudo-terminal.

PrusaLink itself is the real program (PyPI `prusalink`, run by
`tests/printing/prusalink_server.py`); only the printer at the other end of its serial
line is faked here, because a test machine has no MK3S on a USB port. The stand-in
speaks just enough of the Prusa firmware's serial protocol for PrusaLink 0.8.1 to take
it for a printer and to print on it:

- the identification PrusaLink asks for (`PRUSA Fir`, `M862.2 Q` → 302 = MK3S,
  `M862.1 Q`, `PRUSA SN`), the EEPROM reads and writes (`D3`), the polled values
  (`M27 P`, `M73`, `M220`, `M221`, `M420`, and `M21`/`M20`: an SD card that holds
  nothing) and the auto-reports `M155` sets (temperatures, positions, fans; these are
  on from the start here, see `Firmware.__init__`);
- a print: PrusaLink streams a file from its `local` storage line by line (numbered,
  with a checksum; nothing goes to the SD card), and the stand-in answers each line with
  `ok` after a short pause, as a printer's planner would. PrusaLink inserts `M73 P<n>`
  lines carrying the progress, which the stand-in repeats back when PrusaLink polls
  `M73`, so the progress advances while the file is "printed";
- pause, resume and stop: `M601`, `M602` and `M603` answer with the firmware's
  `// action:paused`, `// action:resumed` and `// action:cancel` lines, on which
  PrusaLink changes its state.

Every other command gets a plain `ok`. Temperatures follow `M104`/`M109` and
`M140`/`M190` at once: no time is simulated but the pause per line.

Run as a program: `python prusa_firmware_standin.py LINK [--line-delay S]` opens a
pseudo-terminal, makes LINK a symbolic link to its device (the serial port PrusaLink is
configured with), prints the device path on stdout and serves until it is killed.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import threading
import time
import tty

NUMBERED = re.compile(r"^N(?P<number>-?\d+) (?P<command>.*?) ?\*(?P<checksum>\d+)$")
FIRMWARE = "3.14.1-8237"
SERIAL_NUMBER = "CZPX1234X004XC12345"


class Firmware:
    """The printer's side of the serial line: one command in, its answer lines out."""

    def __init__(self, fd: int, *, line_delay: float) -> None:
        self.fd = fd
        self.line_delay = line_delay
        self.write_lock = threading.Lock()
        self.eeprom: dict[int, bytes] = {}
        self.percent = -1
        self.remaining = -1
        self.nozzle = [24.0, 0.0]  # actual, target
        self.bed = [23.0, 0.0]
        self.z = 0.0
        # Reporting from the start, unlike the real firmware (which waits for M155): at
        # start PrusaLink's port detection sometimes leaves an `ok` unread that then
        # confirms the wrong command, and a lost M155 would leave PrusaLink without
        # temperatures until it sends the next one, a minute later.
        self.report_interval = 2.0
        self.report_mask = 7

    # -- the line

    def send(self, *lines: str) -> None:
        data = "".join(line + "\n" for line in lines).encode("ascii")
        with self.write_lock:
            while data:
                try:
                    written = os.write(self.fd, data)
                except BlockingIOError:
                    time.sleep(0.01)
                    continue
                data = data[written:]

    def serve(self) -> None:
        threading.Thread(target=self.auto_report, daemon=True).start()
        self.send("start")  # what a printer says when it boots
        buffer = b""
        while True:
            select.select([self.fd], [], [], 1.0)
            try:
                chunk = os.read(self.fd, 4096)
            except BlockingIOError:
                continue
            except OSError:
                # EIO: nobody has the terminal open (PrusaLink not started yet, or
                # between its reconnects). Wait for it.
                time.sleep(0.1)
                continue
            buffer += chunk
            while b"\n" in buffer:
                raw, buffer = buffer.split(b"\n", 1)
                line = raw.decode("ascii", "replace").strip()
                if line:
                    self.handle(line)

    def auto_report(self) -> None:
        while True:
            time.sleep(self.report_interval or 0.5)
            if not self.report_interval:
                continue
            if self.report_mask & 1:
                self.send(self.temperature_line())
            if self.report_mask & 2:
                self.send(f"X:0.00 Y:0.00 Z:{self.z:.2f} E:0.00 Count X: 0.00 Y:0.00 Z:{self.z:.2f} E:0.00")
            if self.report_mask & 4:
                self.send("E0:0 RPM PRN1:0 RPM E0@:0 PRN1@:0")

    def temperature_line(self) -> str:
        n, nt = self.nozzle
        b, bt = self.bed
        return f"T:{n:.1f} /{nt:.1f} B:{b:.1f} /{bt:.1f} T0:{n:.1f} /{nt:.1f} @:0 B@:0 P:30.0 A:31.0"

    # -- the commands

    def handle(self, line: str) -> None:
        numbered = NUMBERED.match(line)
        command = numbered.group("command").strip() if numbered else line
        # One line per command in the log: the test server's start-up reads it to see that
        # PrusaLink's command queue moves (see PrusaLinkServer.start).
        print(f"{time.time():.3f} < {command}", flush=True)
        if numbered:
            time.sleep(self.line_delay)  # a printed line takes a moment to plan
        self.send(*self.answer(command), "ok")

    def answer(self, command: str) -> list[str]:
        word, _, rest = command.partition(" ")
        params = {p[0]: p[1:] for p in rest.split() if p}
        if command == "PRUSA Fir":
            return [FIRMWARE]
        if command == "PRUSA SN":
            return [SERIAL_NUMBER]
        if command == "M862.2 Q":
            return ["302"]
        if command == "M862.1 Q":
            return ["0.40"]
        if word == "D3":
            return self.eeprom_access(params)
        if word == "M27":
            return ["Not SD printing"]
        if word == "M73":
            if "P" in params:
                self.percent = int(params["P"])
                self.remaining = int(params.get("R", "-1"))
            return [
                f"{mode} MODE: Percent done: {self.percent}; print time remaining in mins: "
                f"{self.remaining}; Change in mins: -1"
                for mode in ("NORMAL", "SILENT")
            ]
        if word in ("M220", "M221"):
            return ["100%"]
        if word == "M21":
            return ["echo:SD card ok"]
        if word == "M20":
            return ["Begin file list", "End file list"]  # an empty SD card
        if word == "M420":
            return ["Mesh bed leveling not active."]
        if word == "M155":
            self.report_interval = float(params.get("S", "0"))
            self.report_mask = int(params.get("C", "1"))
            return []
        if word == "M105":
            return [self.temperature_line()]
        if word in ("M104", "M109") and "S" in params:
            self.nozzle = [float(params["S"])] * 2
        if word in ("M140", "M190") and "S" in params:
            self.bed = [float(params["S"])] * 2
        if word in ("G0", "G1") and "Z" in params:
            self.z = float(params["Z"])
        if word == "M601":
            return ["// action:paused"]
        if word == "M602":
            return ["// action:resumed"]
        if word == "M603":
            self.percent, self.remaining = -1, -1
            return ["// action:cancel"]
        if word == "M77":  # the print timer stops: the job is over
            self.percent, self.remaining = -1, -1
        return []

    def eeprom_access(self, params: dict[str, str]) -> list[str]:
        address = int(params["A"].removeprefix("x").removeprefix("X"), 16)
        if "X" in params:
            data = bytes.fromhex(params["X"])
            for offset, byte in enumerate(data):
                self.eeprom[address + offset] = bytes([byte])
            return []
        count = int(params.get("C", "1"))
        data = b"".join(self.eeprom.get(address + i, b"\x00") for i in range(count))
        # The firmware prints 16 bytes a line, each line led by its address.
        return [
            f"{address + start:04X}  " + " ".join(f"{b:02X}" for b in data[start : start + 16])
            for start in range(0, count, 16)
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("link", help="symbolic link to create, pointing at the terminal device")
    parser.add_argument("--line-delay", type=float, default=0.01, help="seconds per printed line")
    args = parser.parse_args()

    controller, device = os.openpty()
    tty.setraw(device)
    device_path = os.ttyname(device)
    # Keep our copy of the device end open, so that PrusaLink closing and reopening it
    # never leaves the terminal without a reader (reads would fail with EIO).
    os.set_blocking(controller, False)
    if os.path.lexists(args.link):
        os.unlink(args.link)
    os.symlink(device_path, args.link)
    print(device_path, flush=True)
    Firmware(controller, line_delay=args.line_delay).serve()


if __name__ == "__main__":
    main()
