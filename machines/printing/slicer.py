"""The only module that runs a slicer: PrusaSlicer's command line (Debian's `prusa-slicer`).

A mesh goes in with the printer's profile (a PrusaSlicer .ini), its bed and nozzle; G-code
and the slicer's own estimates come out. The slicer runs in its own process group with a
time and memory limit and a throw-away settings directory, so it never reads or writes
anyone's PrusaSlicer configuration. Every failure is a `SlicerError` whose `retryable`
says whether the same call could succeed later (a full disk, no memory to start it) or
not (a mesh that cannot be sliced, a part too big for the bed, a time-out).
"""

from __future__ import annotations

import functools
import os
import re
import resource
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from machines.printing.gcode import metadata

# Formats PrusaSlicer reads; it tells them apart by the file name's extension.
SLICEABLE = (".stl", ".3mf", ".obj", ".amf")
# Profile keys a lab manager may not set: they run programs or write files on the hub.
FORBIDDEN_PROFILE_KEYS = ("post_process", "output_filename_format")


class SlicerError(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class SliceResult:
    estimated_seconds: int | None
    filament_mm: float | None
    filament_g: float | None
    slicer: str


def slicer_command() -> str:
    return settings.FABHUB_SLICER_COMMAND


def slicer_installed() -> bool:
    return shutil.which(slicer_command()) is not None


@functools.cache
def _version_of(command: str) -> str:
    try:
        out = subprocess.run(
            [command, "--help"], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "PrusaSlicer"
    match = re.search(r"PrusaSlicer-(\d+(?:\.\d+)+)", out)
    return f"PrusaSlicer {match.group(1)}" if match else "PrusaSlicer"


def slicer_version() -> str:
    """'PrusaSlicer 2.5.0': what the provenance record names."""
    return _version_of(slicer_command())


def check_profile(text: str) -> None:
    """Refuse profile keys that would make the slicer run a program or write elsewhere."""
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() in FORBIDDEN_PROFILE_KEYS and value.strip():
            raise SlicerError(
                f"The profile may not set {key.strip()}: the hub runs the slicer.", retryable=False
            )


def _limit_memory() -> None:  # pragma: no cover - runs in the child
    limit = settings.FABHUB_SLICER_MEMORY_LIMIT_BYTES
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _why(output: str) -> str:
    """The slicer's own words for a failure: its last error line, without log decoration."""
    lines = [
        re.sub(r"^\[[^\]]*\]\s*\[[^\]]*\]\s*(\[\w+\]\s*)?", "", line).strip() for line in output.splitlines()
    ]
    lines = [line for line in lines if line and not re.match(r"^\d+ => ", line)]
    for line in reversed(lines):
        if line.startswith("what():"):
            return line.removeprefix("what():").strip()
    for line in reversed(lines):
        if "error" in line.lower() or "fail" in line.lower() or "could not" in line.lower():
            return line
    return lines[-1] if lines else "no message"


def slice_mesh(
    mesh: Path,
    output: Path,
    *,
    profile: str = "",
    bed: tuple[float, float, float] | None = None,
    nozzle_mm: float | None = None,
    time_limit_s: int | None = None,
) -> SliceResult:
    """Slice `mesh` (its suffix names the format) into `output`.

    `profile` is PrusaSlicer configuration text; `bed` (x, y, z in mm) and `nozzle_mm`,
    when given, override the profile's so the G-code matches the machine, and the part
    is centred on the bed.
    """
    if mesh.suffix.lower() not in SLICEABLE:
        raise SlicerError(
            f"PrusaSlicer cannot read {mesh.suffix or 'files without an extension'}.", retryable=False
        )
    command = shutil.which(slicer_command())
    if command is None:
        raise SlicerError(f"The slicer ({slicer_command()}) is not installed on the hub.", retryable=False)
    check_profile(profile)
    time_limit_s = time_limit_s or settings.FABHUB_SLICER_TIME_LIMIT_S
    with tempfile.TemporaryDirectory(prefix="fabhub-slice-") as work:
        work_dir = Path(work)
        profile_file = work_dir / "profile.ini"
        profile_file.write_text(profile)
        args = [
            command,
            "--loglevel",
            "1",
            "--datadir",
            str(work_dir / "datadir"),
            "--export-gcode",
            "--load",
            str(profile_file),
        ]
        if bed is not None:
            x, y, z = bed
            args += [
                "--bed-shape",
                f"0x0,{x:g}x0,{x:g}x{y:g},0x{y:g}",
                "--max-print-height",
                f"{z:g}",
                "--center",
                f"{x / 2:g},{y / 2:g}",
            ]
        if nozzle_mm is not None:
            args += ["--nozzle-diameter", f"{nozzle_mm:g}"]
        args += ["--output", str(output), str(mesh)]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work_dir), "LANG": "C.UTF-8"}
        try:
            process = subprocess.Popen(
                args,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=work_dir,
                env=env,
                start_new_session=True,
                preexec_fn=_limit_memory,  # noqa: PLW1509 - only setrlimit
            )
        except OSError as exc:
            raise SlicerError(f"The slicer could not start: {exc.strerror}.", retryable=True) from None
        try:
            out, _ = process.communicate(timeout=time_limit_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise SlicerError(
                f"Slicing took longer than {time_limit_s} s and was stopped.", retryable=False
            ) from None
        text = out.decode("utf-8", "replace")
        if process.returncode != 0 or not output.exists():
            raise SlicerError(f"PrusaSlicer could not slice {mesh.name}: {_why(text)}", retryable=False)
    with output.open("rb") as f:
        f.seek(max(0, output.stat().st_size - 256 * 1024))
        footer = f.read().decode("utf-8", "replace")
    seconds, filament_mm, filament_g = metadata(footer)
    return SliceResult(
        estimated_seconds=seconds, filament_mm=filament_mm, filament_g=filament_g, slicer=slicer_version()
    )
