"""Linking a design's LFS objects in bulk (an archive import) as one by one does."""

from __future__ import annotations

import pytest

from designs.models import DesignLfsObject, LfsObject
from designs.services.lfs import LINK_BATCH, lfs_object_link, lfs_objects_link
from tests.factories import DesignFactory

pytestmark = pytest.mark.django_db


def oid(n: int) -> str:
    return f"{n:064x}"


def test_linking_many_objects_keeps_existing_rows_and_links_each_once():
    design, other = DesignFactory(), DesignFactory()
    lfs_object_link(design=other, oid=oid(1), size=10)
    lfs_object_link(design=design, oid=oid(2), size=20)
    wanted = [(oid(n), n * 10) for n in range(1, LINK_BATCH + 3)] + [(oid(1), 999)]

    lfs_objects_link(design=design, objects=wanted)
    lfs_objects_link(design=design, objects=wanted)

    linked = DesignLfsObject.objects.filter(design=design)
    assert sorted(linked.values_list("lfs_object__oid", flat=True)) == [
        oid(n) for n in range(1, LINK_BATCH + 3)
    ]
    # The row that existed keeps its size, as get_or_create keeps it; the other design's link stays.
    assert LfsObject.objects.get(oid=oid(1)).size == 10
    assert LfsObject.objects.filter(oid=oid(LINK_BATCH + 2), size=(LINK_BATCH + 2) * 10).exists()
    assert DesignLfsObject.objects.filter(design=other, lfs_object__oid=oid(1)).exists()
