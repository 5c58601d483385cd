"""Writes for labs, machines, qualifications and bookings. Each checks its caller's rights.

One module per area; the names callers use are gathered here, so `services.booking_create(...)`
reads the same everywhere. The modules import one way (pyproject.toml's contract): bookings
and equipment build on labs and qualifications, and everything that writes a machine's
timeline on `timeline`, whose `timeline_lock` every such write starts with (docs/labs.md).
"""

from __future__ import annotations

from machines.services.bookings import (
    booking_approve,
    booking_cancel,
    booking_check_start,
    booking_create,
    booking_keep,
    booking_refuse,
    maintenance_block,
)
from machines.services.equipment import (
    MACHINE_FIELDS,
    MAX_PHOTO_BYTES,
    PHOTO_SIGNATURES,
    machine_connection,
    machine_create,
    machine_set_status,
    machine_update,
)
from machines.services.feeds import calendar_feed_get, calendar_feed_reset
from machines.services.labs import (
    LAB_FIELDS,
    closure_create,
    closure_delete,
    lab_approve,
    lab_create,
    lab_set_hours,
    lab_update,
    membership_decide,
    membership_join,
    membership_remove,
    membership_set_role,
)
from machines.services.qualifications import qualification_record, qualification_revoke
from machines.services.timeline import timeline_insert, timeline_lock

__all__ = [
    "LAB_FIELDS",
    "MACHINE_FIELDS",
    "MAX_PHOTO_BYTES",
    "PHOTO_SIGNATURES",
    "booking_approve",
    "booking_cancel",
    "booking_check_start",
    "booking_create",
    "booking_keep",
    "booking_refuse",
    "calendar_feed_get",
    "calendar_feed_reset",
    "closure_create",
    "closure_delete",
    "lab_approve",
    "lab_create",
    "lab_set_hours",
    "lab_update",
    "machine_connection",
    "machine_create",
    "machine_set_status",
    "machine_update",
    "maintenance_block",
    "membership_decide",
    "membership_join",
    "membership_remove",
    "membership_set_role",
    "qualification_record",
    "qualification_revoke",
    "timeline_insert",
    "timeline_lock",
]
