"""machines/0009 moves every lab notification into the hub's inbox and back: the rows a
hub had before the move are in the new table, with their booking or lab as the target,
read or unread as they were; the reverse brings them back to the lab table."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("machines", "0008_agent_instance"), ("hub", "0004_notifications")]
AFTER = [("machines", "0009_notifications_move_to_hub")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_lab_notifications_are_copied_into_the_inbox_and_back():
    old = migrate(BEFORE)
    try:
        User = old.get_model("hub", "User")
        Lab = old.get_model("machines", "Lab")
        Machine = old.get_model("machines", "Machine")
        Booking = old.get_model("machines", "Booking")
        Notification = old.get_model("machines", "Notification")
        ann = User.objects.create(username="ann")
        lab = Lab.objects.create(slug="fablab", name="Fablab")
        machine = Machine.objects.create(lab=lab, slug="laser", name="Laser", kind="laser")
        start = timezone.now() + timedelta(days=1)
        booking = Booking.objects.create(
            machine=machine, member=ann, start=start, end=start + timedelta(hours=1)
        )
        read_at = timezone.now()
        Notification.objects.create(user=ann, lab=lab, booking=booking, subject="Confirmed", body="See you")
        Notification.objects.create(user=ann, lab=lab, subject="Lab approved", read_at=read_at)
        Notification.objects.create(user=ann, subject="Hello")

        new = migrate(AFTER)
        rows = {
            n.subject: n
            for n in new.get_model("hub", "Notification").objects.filter(recipient_id=ann.pk).order_by("pk")
        }
        assert set(rows) == {"Confirmed", "Lab approved", "Hello"}
        confirmed = rows["Confirmed"]
        assert (confirmed.kind, confirmed.target_type, confirmed.target_id) == (
            "lab_booking",
            "machines.booking",
            booking.pk,
        )
        assert confirmed.body == "See you" and confirmed.link == "/labs/fablab/" and confirmed.read_at is None
        approved = rows["Lab approved"]
        assert (approved.kind, approved.target_type, approved.target_id) == ("lab", "machines.lab", lab.pk)
        assert approved.read_at == read_at
        assert (rows["Hello"].target_type, rows["Hello"].link) == ("", "/labs/bookings/")

        back = migrate(BEFORE)
        restored = back.get_model("machines", "Notification").objects.order_by("pk")
        assert [(n.subject, n.lab_id, n.booking_id) for n in restored] == [
            ("Confirmed", lab.pk, booking.pk),
            ("Lab approved", lab.pk, None),
            ("Hello", None, None),
        ]
        assert not back.get_model("hub", "Notification").objects.exists()
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
