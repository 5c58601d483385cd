"""Writes to designs, by area. Callers use `from designs import services` and the names below;
mirrors and proposals are reached as `services.mirrors`, `services.proposals`."""

from designs.services import analysis, assemblies, makes, mirrors, proposals, upgrades
from designs.services.analysis import analyses_queue
from designs.services.commits import (
    MAX_COMMIT_ATTEMPTS,
    Rename,
    Upload,
    branch_create,
    branch_delete,
    design_commit,
    design_pushed,
    person_for,
    tag_create,
    tag_delete,
)
from designs.services.designs import (
    collaborator_remove,
    collaborator_set,
    design_create,
    design_delete,
    design_fork,
    design_update,
)
from designs.services.lfs import (
    MAX_LOCK_PATH_BYTES,
    lfs_lock_create,
    lfs_lock_release,
    lfs_object_link,
    lfs_object_upload,
    lfs_objects_present,
)
from designs.services.makes import make_create, make_delete
from designs.services.refs import refs_changed

__all__ = [
    "MAX_COMMIT_ATTEMPTS",
    "MAX_LOCK_PATH_BYTES",
    "Rename",
    "Upload",
    "analyses_queue",
    "analysis",
    "assemblies",
    "branch_create",
    "branch_delete",
    "collaborator_remove",
    "collaborator_set",
    "design_commit",
    "design_create",
    "design_delete",
    "design_fork",
    "design_pushed",
    "design_update",
    "lfs_lock_create",
    "lfs_lock_release",
    "lfs_object_link",
    "lfs_object_upload",
    "lfs_objects_present",
    "make_create",
    "make_delete",
    "makes",
    "mirrors",
    "person_for",
    "proposals",
    "refs_changed",
    "tag_create",
    "tag_delete",
    "upgrades",
]
