"""A GiST index over the period of each active timeline row, on PostgreSQL only.

machines.where reads every printer's first day of timeline by the rows whose period
overlaps it (`tstzrange(start, "end", '[)') && …`). The exclusion constraint's index
(booking_no_overlap) holds the same periods but is led by the machine, so a read across
all machines walks all of it, and it grows with every row ever booked; this one is ordered
by time, so the read costs what the day's rows cost, not the history. The expression and
condition are the constraint's, so the planner matches the same query text to either.

It is not in the model state: SQLite has no ranges nor GiST (there the read compares the
start and end columns, machines/where.py), and Django cannot leave a model's index out on
one database. The migration creates it on PostgreSQL and does nothing elsewhere.
"""

from django.db import migrations

INDEX = "booking_active_period"


def create(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX {INDEX} ON machines_booking USING gist "
            "(tstzrange(start, \"end\", '[)')) WHERE status IN ('pending', 'approved')"
        )


def drop(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [
        ("machines", "0010_lab_locale"),
    ]

    operations = [
        migrations.RunPython(create, drop, elidable=False),
    ]
