"""A GiST index over the period of each active timeline row, on PostgreSQL only.

machines.where reads every printer's first day of timeline by the rows whose period
overlaps it (`tstzrange(start, "end", '[)') && …`). The exclusion constraint's index
(booking_no_overlap) holds the same periods but is led by the machine, so a read across
all machines walks all of it, and it grows with every row ever booked; this one is ordered
by time, so the read costs what the day's rows cost, not the history. The expression and
condition are the constraint's, so the planner matches the same query text to either.

It is not in the model state: SQLite has no ranges nor GiST (there the read compares the
start and end columns, machines/where.py), and Django cannot leave a model's index out on
one database. The migration creates it on PostgreSQL and does nothing elsewhere. It builds
the index CONCURRENTLY (so outside a transaction: `atomic = False`), so that a hub with a
long timeline keeps taking bookings while it deploys. The statuses are written out, as a
migration keeps what was true when it was written; they are Booking.ACTIVE's, which the
read in machines/where.py sends as literals (client-side binding) so the planner can
match this index's condition.
"""

from django.db import migrations

INDEX = "booking_active_period"


def create(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON machines_booking USING gist "
            "(tstzrange(start, \"end\", '[)')) WHERE status IN ('pending', 'approved')"
        )


def drop(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    atomic = False
    dependencies = [
        ("machines", "0010_lab_locale"),
    ]

    operations = [
        migrations.RunPython(create, drop, elidable=False),
    ]
