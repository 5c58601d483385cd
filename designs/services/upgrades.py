"""Upgrading a module of an assembly: a proposal on the assembly that moves one pin to a
module's newer release (docs/assemblies.md, "Upgrades").

The change is a commit on a new branch of the assembly, made by whoever asked for it:
the gitlink moves to the release's commit and, when assembly.toml names the release,
that line changes with it, so the two never disagree. It goes through the same review
and merge as any proposal; the merge refuses an assembly with problems.
"""

from __future__ import annotations

import re
import tomllib

from designs import assemblies as files
from designs.git import FileEdit, RefMoved, TreeRefused, valid_ref_name
from designs.models import ChangeProposal, Design
from designs.selectors import designs_visible_to, require_writer
from designs.services.assemblies import assembly_check
from designs.services.commits import person_for
from designs.services.proposals import proposal_create
from designs.services.refs import refs_changed
from hub.exceptions import Conflict, NotFound, ValidationError
from hub.models import User

SUBMODULE_MODE = "160000"


def _with_release(text: str, *, path: str, release: str) -> str | None:
    """assembly.toml with the `release` of module `path` set to `release`, comments and
    layout kept; None when that module names no release (the gitlink alone is the pin)."""
    blocks = re.split(r"(?m)^(?=\s*\[\[module\]\])", text)
    for number, block in enumerate(blocks):
        if not block.lstrip().startswith("[[module]]"):
            continue
        try:
            table = tomllib.loads(block.replace("[[module]]", "[module]", 1))
        except tomllib.TOMLDecodeError:
            continue
        module = table.get("module", {})
        if module.get("path") != path or "release" not in module:
            continue
        quoted = '"' + release.replace("\\", "\\\\").replace('"', '\\"') + '"'
        changed, count = re.subn(
            r'(?m)^(\s*release\s*=\s*)("[^"\n]*"|\'[^\'\n]*\')', r"\g<1>" + quoted, block, count=1
        )
        if count != 1:
            return None
        blocks[number] = changed
        return "".join(blocks)
    return None


def assembly_upgrade_propose(*, design: Design, user: User, path: str, release: str) -> ChangeProposal:
    """Open a proposal on `design` (an assembly) that pins module `path` at its release
    `release`. Only people who can write to the assembly may; the proposal is theirs."""
    require_writer(design, user)
    repo = design.repo
    head = repo.branch_head(design.default_branch)
    if head is None:
        raise NotFound(f"{design.full_name} has no {design.default_branch} branch.")
    check = assembly_check(design, commit=head)
    module = next((m for m in check.modules if m["path"] == path), None)
    if module is None or module["design_id"] is None:
        raise NotFound(f"{path!r} is not a module of this hub pinned by {design.full_name}.")
    module_design = designs_visible_to(user).select_related("owner").filter(pk=module["design_id"]).first()
    if module_design is None:
        raise NotFound(f"{path!r} is not a module of this hub pinned by {design.full_name}.")
    tag = next((t for t in module_design.repo.tags() if t.name == release), None)
    if tag is None:
        raise NotFound(f"{module_design.full_name} has no release {release!r}.")
    if tag.target == module["pin"]:
        raise Conflict(f"{path} already pins {module_design.full_name} {release}.")
    edits = [FileEdit(path, tag.target, SUBMODULE_MODE)]
    manifest = repo.entry(head, files.ASSEMBLY_FILE)
    if manifest is not None and manifest.kind == "blob":
        text = repo.read_blob(manifest.sha).decode("utf-8", errors="replace")
        changed = _with_release(text, path=path, release=release)
        if changed is not None:
            edits.append(FileEdit(files.ASSEMBLY_FILE, repo.write_blob(changed.encode())))
    try:
        tree = repo.build_tree(head, edits)
    except TreeRefused as exc:
        raise ValidationError("Git refuses this change: " + "; ".join(exc.problems) + ".") from None
    was = module["release"] or module["pin"][:10]
    message = f"Upgrade {path} ({module_design.full_name}) from {was} to {release}"
    identity = person_for(user)
    sha = repo.commit_tree(tree, [head], message, author=identity, committer=identity)
    branch = _free_branch(design, f"upgrade/{module_design.slug}-{release}")
    try:
        repo.update_ref(f"refs/heads/{branch}", sha, None, message=f"fabhub: upgrade by {user.username}")
    except RefMoved:
        raise Conflict(f"A branch named {branch!r} appeared meanwhile; try again.") from None
    refs_changed(design, new_commits=[sha])
    return proposal_create(
        target=design,
        user=user,
        title=message,
        source_branch=branch,
        description=(
            f"{module_design.full_name} released {release}; this assembly pinned {was}.\n\n"
            f"The submodule `{path}` moves to `{tag.target}`."
        ),
    )


def _free_branch(design: Design, wanted: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._/-]+", "-", wanted).strip("-./") or "upgrade"
    taken = {branch for branch, _ in design.repo.branches()}
    candidate, number = name, 1
    while candidate in taken or not valid_ref_name("heads", candidate):
        number += 1
        candidate = f"{name}-{number}"
        if number > 100:
            raise Conflict("Too many upgrade branches of this name; delete some first.")
    return candidate
