"""A release deleted while a file for it streams in: the file is refused and nothing of it
is left for a later release of the same name (the upload re-checks the tag under the
design's lock, which the clean-up after a deleted tag takes too)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from designs import selectors, services
from designs.lfs_store import lfs_store
from designs.models import Design, ReleaseAsset
from designs.services import releases
from hub.exceptions import NotFound
from tests.factories import DesignFactory, commit_files

pytestmark = pytest.mark.django_db


def test_a_file_for_a_tag_deleted_while_it_streams_in_is_refused_and_not_on_the_next_tag_of_that_name(
    alice, monkeypatch
):
    design = DesignFactory(owner=alice, slug="gripper")
    Design.objects.filter(pk=design.pk).update(allow_tag_changes=True)
    design.allow_tag_changes = True
    commit_files(design, {"README.md": "# Gripper\n"})
    services.tag_create(design=design, user=alice, name="v1.0", target="main", notes="old")
    store_class = type(lfs_store())
    real_add = store_class.add

    def add_then_tag_deleted(self, content, **kw):
        pointer = real_add(self, content, **kw)
        services.tag_delete(design=design, user=alice, name="v1.0")  # another writer, meanwhile
        return pointer

    monkeypatch.setattr(store_class, "add", add_then_tag_deleted)
    with SimpleUploadedFile("old.bin", b"old bytes") as up, pytest.raises(NotFound):
        releases.release_asset_upload(
            design=design, user=alice, tag="v1.0", name="old.bin", content=up, content_type="x", size=9
        )
    monkeypatch.setattr(store_class, "add", real_add)

    assert not ReleaseAsset.objects.exists()
    services.tag_create(design=design, user=alice, name="v1.0", target="main", notes="new release")
    assert selectors.design_release(design, "v1.0").assets == []
