"""Calendar feeds: the secret addresses that calendar apps subscribe to."""

from __future__ import annotations

from hub.exceptions import NotFound
from hub.models import User
from machines.models import CalendarFeed, Lab, Machine, new_feed_token
from machines.selectors import require_member


def calendar_feed_get(*, owner: User, lab: Lab | None = None, machine: Machine | None = None) -> CalendarFeed:
    """The owner's feed of a lab, a machine or their own bookings, made on first use."""
    if machine is not None:
        lab = machine.lab
        scope = CalendarFeed.Scope.MACHINE
    else:
        scope = CalendarFeed.Scope.LAB if lab is not None else CalendarFeed.Scope.MEMBER
    if lab is not None:
        require_member(lab, owner)
    feed, _ = CalendarFeed.objects.get_or_create(owner=owner, scope=scope, lab=lab, machine=machine)
    return feed


def calendar_feed_reset(*, feed: CalendarFeed, actor: User) -> CalendarFeed:
    """A new address for the feed; the old one stops working."""
    if feed.owner_id != actor.pk:
        raise NotFound("There is no such feed.")
    feed.token = new_feed_token()
    feed.save(update_fields=["token"])
    return feed
