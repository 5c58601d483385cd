"""What a print job costs, and the credit it holds: the estimate at submission (refined
once sliced), the actual cost of each print once it ends, and the holds, releases and
settlements of labs that use prepaid credits (docs/labs.md, "Prices, holds and
settlement").

The queue calls these from its own moves: `print_job_submit` and `print_job_prepare`
(services.py) for estimates and holds, and the state machine (jobs.py) when a print
ends and when a job leaves the queue for good. Each runs inside the caller's transaction,
after the caller won its claim on the job, so a hold is never taken or settled twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from designs.selectors import analyses_for_blobs, declared_units, figures_at
from machines import credits
from machines.accounting import (
    Prices,
    grams_from_length,
    grams_from_volume,
    job_cost,
    lab_prices,
    money,
    prices_from,
    seconds_from_volume,
    used_share,
)
from machines.models import Lab, Printer, PrintGcode, PrintJob, PrintRecord, PrintSettings
from machines.printing import selectors as ps

logger = logging.getLogger(__name__)
ZERO = Decimal(0)


# -- estimates ------------------------------------------------------------------------------


def mesh_volume(design, *, sha: str, path: str, blob_sha: str) -> float | None:
    """The mesh's volume (mm³, in its declared units) from its analysis, if there is one."""
    row = analyses_for_blobs([blob_sha]).get(blob_sha)
    if row is None or not row.figures:
        return None
    units = declared_units(design, sha=sha, paths=[path]).get(path)
    figures = figures_at(row.figures, units) or row.figures
    volume = figures.get("volume_mm3")
    return abs(float(volume)) if volume is not None else None


def _grams(prices: Prices, material: str, *, grams: float | None, length_mm: float | None) -> Decimal | None:
    if grams:
        return Decimal(str(grams))
    if length_mm:
        return grams_from_length(length_mm, density_g_cm3=prices.density_of(material))
    return None


def _most_expensive(
    prices: Prices, printers: Iterable[Printer], *, material: str, grams, seconds, copies: int
) -> Decimal:
    """The estimate on the dearest of the printers that may take the job: the hold covers
    whichever of them prints it."""
    costs = [
        job_cost(prices, material=material, grams=grams, seconds=seconds, machine=p.machine, copies=copies)
        for p in printers
    ]
    return max(
        costs, default=job_cost(prices, material=material, grams=grams, seconds=seconds, copies=copies)
    )


def submission_estimate(
    *,
    printers: list[Printer],
    material: str,
    copies: int,
    settings_row: PrintSettings,
    material_prices: Iterable[tuple[str, Decimal, Decimal]],
    volume_mm3: float | None = None,
    gcode_info: Any = None,
) -> dict[str, Any]:
    """The job's cost fields at submission: from an uploaded G-code's own figures (its
    slicer's comments, or the hub's parse), or from the mesh's volume × the material's
    density before it is sliced. `settings_row` and `material_prices`: the lab's print
    settings and material prices, as the caller read them for its checks
    (`selectors.submission_reads`)."""
    prices = prices_from(settings_row, material_prices)
    grams: Decimal | None = None
    seconds: int | None = None
    if gcode_info is not None:
        grams = _grams(prices, material, grams=gcode_info.filament_g, length_mm=gcode_info.filament_mm)
        seconds = gcode_info.estimated_seconds
    elif volume_mm3 is not None:
        grams = grams_from_volume(volume_mm3, density_g_cm3=prices.density_of(material))
        seconds = seconds_from_volume(volume_mm3)
    cost = _most_expensive(prices, printers, material=material, grams=grams, seconds=seconds, copies=copies)
    return {"cost_currency": prices.currency, "estimated_cost": cost}


def sliced_estimate(job: PrintJob, gcodes: list[PrintGcode], *, settings_row: PrintSettings) -> Decimal:
    """The job's estimate once sliced: each profile's G-code (its grams and time) on the
    printers of that profile, the dearest of them."""
    prices = lab_prices(job.lab, settings_row=settings_row)
    printers = ps.compatible_printers(
        job.lab, kind=job.machine_kind, material=job.material, nozzle_mm=job.nozzle_mm
    )
    costs = []
    for gcode in gcodes:
        grams = _grams(prices, job.material, grams=gcode.filament_g, length_mm=gcode.filament_mm)
        on = [p for p in printers if not gcode.profile_key or p.profile_key == gcode.profile_key]
        costs.append(
            _most_expensive(
                prices,
                on,
                material=job.material,
                grams=grams,
                seconds=gcode.estimated_seconds,
                copies=job.copies,
            )
        )
    return max(costs, default=job.estimated_cost or ZERO)


# -- holds ----------------------------------------------------------------------------------


def _settings(lab: Lab, settings_row: PrintSettings | None = None) -> PrintSettings:
    """The lab's print settings: the caller's, when it has just read them (the submission
    and the preparation each read them once for all their checks)."""
    return settings_row if settings_row is not None else ps.print_settings_of(lab)


def job_hold(job: PrintJob, *, settings_row: PrintSettings | None = None) -> None:
    """At submission: hold the estimate, or refuse the job (the caller's transaction rolls
    its creation back) when the balance is short."""
    if not _settings(job.lab, settings_row).credits_enabled or not job.estimated_cost:
        return
    credits.credit_hold(
        lab=job.lab,
        user=job.owner,
        amount=job.estimated_cost,
        job=job,
        note=f"Print job {job.pk}: {job.filename}",
    )
    PrintJob.objects.filter(pk=job.pk).update(held_amount=job.estimated_cost)
    job.held_amount = job.estimated_cost


def job_estimate_refined(
    job: PrintJob, estimate: Decimal, *, settings_row: PrintSettings | None = None
) -> None:
    """Once sliced: store the new estimate and move the hold to it (more held, or some
    given back). A balance too short for a higher estimate raises the hold's
    ValidationError: the caller fails the job with it. `job` as just read (an uploaded
    G-code's estimate is usually what it was at submission: nothing to write then)."""
    if estimate != job.estimated_cost:
        PrintJob.objects.filter(pk=job.pk).update(estimated_cost=estimate)
        job.estimated_cost = estimate
    if not _settings(job.lab, settings_row).credits_enabled:
        return
    held = PrintJob.objects.values_list("held_amount", flat=True).get(pk=job.pk)
    note = f"Print job {job.pk}: {job.filename}, estimate after slicing {estimate}"
    if estimate > held:
        credits.credit_hold(lab=job.lab, user=job.owner, amount=estimate - held, job=job, note=note)
    elif estimate < held:
        credits.credit_release(lab=job.lab, user=job.owner, amount=held - estimate, job=job, note=note)
    PrintJob.objects.filter(pk=job.pk).update(held_amount=estimate)
    job.held_amount = estimate


def job_release(job: PrintJob, why: str) -> None:
    """The job left the queue for good (cancelled, refused, failed): give back what it
    still holds."""
    held = PrintJob.objects.values_list("held_amount", flat=True).get(pk=job.pk)
    if not held:
        return
    credits.credit_release(
        lab=job.lab, user=job.owner, amount=held, job=job, note=f"Print job {job.pk}: {job.filename} {why}"
    )
    PrintJob.objects.filter(pk=job.pk).update(held_amount=ZERO)
    job.held_amount = ZERO


# -- the end of a print ----------------------------------------------------------------------


def print_usage(job: PrintJob, *, finished: bool, ended_at) -> dict[str, Any]:
    """What one print of the job used and cost, for its PrintRecord: the slicer's grams ×
    the share printed (all of it when it finished), the time from its start to its end,
    priced at the lab's prices now on the machine it ran on."""
    prices = lab_prices(job.lab)
    gcode = job.gcode
    full = _grams(
        prices,
        job.material,
        grams=gcode.filament_g if gcode else job.filament_g,
        length_mm=gcode.filament_mm if gcode else job.filament_mm,
    )
    share = used_share(finished=finished, progress=job.progress)
    grams = full * share if full is not None else None
    seconds = None
    if job.print_started_at is not None and ended_at >= job.print_started_at:
        seconds = int((ended_at - job.print_started_at).total_seconds())
    cost = job_cost(prices, material=job.material, grams=grams, seconds=seconds, machine=job.machine)
    return {
        "grams": round(float(grams), 2) if grams is not None else None,
        "seconds": seconds,
        "cost": cost,
        "currency": prices.currency,
    }


def print_settled(job: PrintJob, record: PrintRecord) -> None:
    """A print of the job ended (its record written): add its cost to the job's, and with
    credits, settle its share of the hold. A finished print is charged; a failed,
    cancelled or interrupted one as the lab's policy for failed prints says."""
    settings_row = _settings(job.lab)
    pays = (
        record.result == PrintRecord.Result.DONE
        or settings_row.failed_prints == PrintSettings.FailedPrints.CHARGE
    )
    cost = record.cost or ZERO
    current = PrintJob.objects.values("held_amount", "actual_cost", "filament_g_used").get(pk=job.pk)
    PrintJob.objects.filter(pk=job.pk).update(
        actual_cost=(current["actual_cost"] or ZERO) + (cost if pays else ZERO),
        filament_g_used=(current["filament_g_used"] or 0) + (record.grams or 0),
        cost_currency=record.currency,
    )
    if not settings_row.credits_enabled:
        return
    held = current["held_amount"]
    remaining = max(1, job.copies - job.copies_done)
    share = held if remaining == 1 else money(held / remaining)
    result = credits.credit_settle(
        lab=job.lab,
        user=job.owner,
        held=share,
        actual=cost,
        policy=PrintSettings.FailedPrints.CHARGE if pays else PrintSettings.FailedPrints.REFUND,
        tolerance_percent=settings_row.overrun_tolerance_percent,
        job=job,
        note=f"Print job {job.pk}: {job.filename}, copy {record.copy} {record.get_result_display().lower()}",
    )
    PrintJob.objects.filter(pk=job.pk).update(held_amount=held - share)
    job.held_amount = held - share
    if result.absorbed:
        logger.info("lab %s absorbed %s of job %s", job.lab_id, result.absorbed, job.pk)
