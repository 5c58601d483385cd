# The lab notifications move into the hub's one inbox (hub.Notification, issue 21): every
# row is copied there, then this app's table goes. The reverse brings the lab kinds back.

from django.db import migrations

BOOKING_TARGET = "machines.booking"
LAB_TARGET = "machines.lab"


def to_hub(apps, schema_editor):
    Old = apps.get_model("machines", "Notification")
    New = apps.get_model("hub", "Notification")
    batch = []
    for old in Old.objects.select_related("lab", "booking__machine__lab").order_by("pk").iterator(chunk_size=2000):
        lab = old.lab or (old.booking.machine.lab if old.booking is not None else None)
        if old.booking_id is not None:
            kind, target_type, target_id = "lab_booking", BOOKING_TARGET, old.booking_id
        elif old.lab_id is not None:
            kind, target_type, target_id = "lab", LAB_TARGET, old.lab_id
        else:
            kind, target_type, target_id = "lab", "", None
        batch.append(
            New(
                recipient_id=old.user_id,
                kind=kind,
                subject=old.subject,
                body=old.body,
                link=f"/labs/{lab.slug}/" if lab is not None else "/labs/bookings/",
                target_type=target_type,
                target_id=target_id,
                created_at=old.created_at,
                read_at=old.read_at,
            )
        )
        if len(batch) >= 2000:
            New.objects.bulk_create(batch)
            batch = []
    New.objects.bulk_create(batch)


def back_to_machines(apps, schema_editor):
    Old = apps.get_model("machines", "Notification")
    New = apps.get_model("hub", "Notification")
    Booking = apps.get_model("machines", "Booking")
    Lab = apps.get_model("machines", "Lab")
    rows = New.objects.filter(kind__in=["lab_booking", "lab"])
    booking_ids = set(rows.filter(target_type=BOOKING_TARGET).values_list("target_id", flat=True))
    bookings = dict(Booking.objects.filter(pk__in=booking_ids).values_list("pk", "machine__lab_id"))
    labs = set(Lab.objects.values_list("pk", flat=True))
    batch = []
    for new in rows.order_by("pk").iterator(chunk_size=2000):
        booking_id = new.target_id if new.target_type == BOOKING_TARGET and new.target_id in bookings else None
        lab_id = bookings.get(booking_id) if booking_id else None
        if new.target_type == LAB_TARGET and new.target_id in labs:
            lab_id = new.target_id
        batch.append(
            Old(
                user_id=new.recipient_id,
                lab_id=lab_id,
                booking_id=booking_id,
                subject=new.subject,
                body=new.body,
                created_at=new.created_at,
                read_at=new.read_at,
            )
        )
    Old.objects.bulk_create(batch, batch_size=2000)
    rows.delete()


class Migration(migrations.Migration):
    dependencies = [
        ("machines", "0008_agent_instance"),
        ("hub", "0004_notifications"),
    ]

    operations = [
        migrations.RunPython(to_hub, back_to_machines),
        migrations.DeleteModel(name="Notification"),
    ]
