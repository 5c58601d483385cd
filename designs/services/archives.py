"""Designs in account archives: the `designs/` part (hub/archives.py holds the container;
docs/portability.md, "Account archives").

What the part writes, for each design the person owns (private ones too: it is theirs):

    designs/<id>/design.json     settings, its address here, collaborators as references,
                                 lineage, the modules its default head pins
    designs/<id>/repo.bundle     every branch and tag with all history (no bundle for a
                                 design without commits: design.json says "bundle": null)
    designs/<id>/refs.json       ref → sha of what the bundle holds
    designs/<id>/releases.json   the tags and their notes, for readers without git, and
                                 the files attached to each (name, sha256, size, type)
    designs/<id>/lfs/<oid>       every Git LFS object the design serves
    designs/<id>/release-files/<sha256>   the content of each file attached to a release
    designs/history/proposals.json, comments.json   what they wrote on designs they could see
    designs/makes.json, designs/makes/<id>.jpg      their makes

Bundles and LFS objects are streamed from disk into the archive and back, never read
whole into memory.

Importing makes each design all or nothing: a new repository filled from the bundle,
which must hold exactly the refs refs.json lists and no object they do not reach (else
the archive is refused as hostile, naming the bundle); git's strict object checks; every
LFS object saved through the store, which checks its sha256 and size; then the row, its
tags and settings in one transaction. Any other failure removes what was made of that
design and says why in the import's report; the other designs go on. A design an earlier
import made (`ImportContext.imported`) is left alone, so a second import changes nothing.

Proposals and comments come back as read-only history (`hub.models.ImportedRecord`, kinds
"proposal" and "comment"), with `data` shaped as exported (`proposal_document`,
`comment_document`). Collaborators and makes are not recreated: collaborators are accounts
of the other hub (the report names them), and makes travel as the signed records of the
archive's records part.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Prefetch

from designs.git import ZERO_SHA, GitError, ObjectInventory, RefMoved, Repository, valid_ref_name
from designs.lfs_store import (
    MAX_POINTER_BYTES,
    OLD_POINTER_VERSION,
    POINTER_VERSION,
    StoreError,
    lfs_store,
    resolve_pointer,
    valid_oid,
)
from designs.models import (
    AssemblyCheck,
    ChangeProposal,
    Collaborator,
    Design,
    Licence,
    Make,
    ProposalComment,
    ReleaseAsset,
    repo_path,
)
from designs.paths import content_type_for
from designs.push_rules import PushRules, update_errors
from designs.selectors import designs_visible_to, makes_by_person
from designs.services.designs import check_slug, design_update, private_upstreams
from designs.services.lfs import lfs_objects_link
from designs.services.refs import refs_changed
from designs.services.releases import release_asset_name_check
from hub import records
from hub.archives import ArchiveRefused, ExportContext, ImportContext
from hub.exceptions import ValidationError
from hub.models import ImportedRecord, User

PREFIX = "designs/"
HISTORY = "designs/history/"
MAX_DESIGN_JSON_BYTES = 1024 * 1024
MAX_REFS = 100_000
MAX_SUMMARY_CHARS = 65_536
MAX_TAGS = 100
MAX_HISTORY_TEXT = 65_536
POINTER_CHECK_BATCH = 500
# The shortest file resolve_pointer reads as a pointer (version, a sha256 oid, size 0):
# smaller blobs, most of a history's text files, are not read at all.
MIN_POINTER_BYTES = (
    len(b"version \noid sha256:\nsize 0\n") + 64 + min(len(POINTER_VERSION), len(OLD_POINTER_VERSION))
)
SHA1_HEX = frozenset("0123456789abcdef")


class DesignRefused(Exception):
    """One design of an archive cannot be imported; the others still can."""


def design_url(owner: str, slug: str) -> str:
    """A design's canonical address on this hub."""
    return f"{records.hub_root()}{owner}/{slug}/"


def _is_sha(value: object) -> bool:
    return isinstance(value, str) and len(value) == 40 and set(value) <= SHA1_HEX


# -- export -------------------------------------------------------------------------------


def designs_export(ctx: ExportContext) -> None:
    designs = list(
        Design.objects.filter(owner=ctx.user)
        .select_related("owner")
        .prefetch_related(
            "tags",
            Prefetch("collaborators", Collaborator.objects.select_related("user").order_by("user__username")),
        )
        .order_by("pk")
    )
    # A design's releases are read (git for-each-ref) on a second thread while its
    # bundle streams into the archive.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="archive-releases") as releases:
        for index, design in enumerate(designs, start=1):
            ctx.progress(f"Design {index} of {len(designs)}: {design.full_name}")
            _export_design(ctx, design, releases)
    ctx.progress("Proposals, comments and makes")
    _export_history(ctx)


def _export_design(ctx: ExportContext, design: Design, releases: ThreadPoolExecutor) -> None:
    folder = f"{PREFIX}{design.pk}/"
    repo = design.repo
    tags = releases.submit(repo.tags)
    refs: dict[str, str] = {}
    # Streamed from git into the archive; the refs are read from the bundle's own header,
    # so that they match it even if a push landed meanwhile.
    with repo.bundle_stream() as stream:
        if stream is not None:
            try:
                refs, header = bundle_header(stream)
            except ValueError as exc:
                raise GitError(f"git wrote a bundle this hub cannot read: {exc}") from None
            ctx.writer.add_stream(folder + "repo.bundle", _Prefixed(header, stream), compress=False)
    ctx.writer.add_json(folder + "refs.json", refs)
    files: dict[str, list[dict[str, Any]]] = {}
    for asset in ReleaseAsset.objects.filter(design=design).order_by("tag", "name", "pk"):
        files.setdefault(asset.tag, []).append(
            {
                "name": asset.name,
                "sha256": asset.sha256,
                "size": asset.size,
                "content_type": asset.content_type,
            }
        )
    released = [tag for tag in tags.result() if f"refs/tags/{tag.name}" in refs]
    ctx.writer.add_json(
        folder + "releases.json",
        [
            {
                "name": tag.name,
                "target": tag.target,
                "message": tag.message,
                "tagger": {"name": tag.tagger.name, "email": tag.tagger.email} if tag.tagger else None,
                "date": tag.tagged_at.isoformat() if tag.tagged_at else None,
                "files": files.get(tag.name, []),
            }
            for tag in released
        ],
    )
    store = lfs_store()
    contents = sorted({item["sha256"] for tag in released for item in files.get(tag.name, [])})
    for sha256 in contents:
        try:
            handle = store.open(sha256)
        except StoreError:
            continue  # the import says the file is missing
        with handle:
            ctx.writer.add_stream(f"{folder}release-files/{sha256}", handle, compress=False)
    missing = []
    oids = design.lfs_links.order_by("lfs_object__oid").values_list("lfs_object__oid", flat=True)
    for oid in oids.iterator():
        try:
            handle = store.open(oid)
        except StoreError:
            missing.append(oid)
            continue
        with handle:
            ctx.writer.add_stream(f"{folder}lfs/{oid}", handle, compress=False)
    head = refs.get(f"refs/heads/{design.default_branch}")
    ctx.writer.add_json(
        folder + "design.json",
        design_document(design, has_bundle=bool(refs), lfs_missing=missing, head=head),
    )


class _Prefixed:
    """`stream` with `prefix` read back in front of it (a bundle's header, read first)."""

    def __init__(self, prefix: bytes, stream: IO[bytes]) -> None:
        self._prefix, self._stream = prefix, stream

    def read(self, size: int = -1, /) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            return data
        return self._stream.read(size)


BUNDLE_SIGNATURES = (b"# v2 git bundle\n", b"# v3 git bundle\n")
MAX_BUNDLE_HEADER_LINE = 4096


def bundle_header(stream: IO[bytes]) -> tuple[dict[str, str], bytes]:
    """The refs a bundle's header lists (name → sha, without HEAD) and the header's bytes,
    read off the front of `stream`, which is left at the pack. ValueError unless it is
    a complete bundle (no prerequisite commits) of sha1 objects."""
    header = [stream.readline(MAX_BUNDLE_HEADER_LINE)]
    if header[0] not in BUNDLE_SIGNATURES:
        raise ValueError("it does not start as a git bundle does")
    refs: dict[str, str] = {}
    while True:
        line = stream.readline(MAX_BUNDLE_HEADER_LINE)
        header.append(line)
        if line == b"\n":
            return refs, b"".join(header)
        if not line.endswith(b"\n") or len(refs) > MAX_REFS:
            raise ValueError("its list of refs does not end")
        text = line[:-1].decode(errors="replace")
        if text.startswith("@"):
            if header[0] == BUNDLE_SIGNATURES[1] and text == "@object-format=sha1":
                continue
            raise ValueError(f"it needs a capability this hub does not read ({text[:100]})")
        if text.startswith("-"):
            raise ValueError("it needs commits it does not hold")
        sha, _, name = text.partition(" ")
        if not _is_sha(sha) or not name:
            raise ValueError("its list of refs is malformed")
        if name != "HEAD":
            refs[name] = sha


def design_document(
    design: Design, *, has_bundle: bool, lfs_missing: list[str], head: str | None = None
) -> dict[str, Any]:
    """`head`: the default branch's head as exported (read from the repository if not given)."""
    fork = None
    if design.forked_from_name:
        upstream = design.forked_from_url or f"{records.hub_root()}{design.forked_from_name}/"
        fork = {"upstream": upstream, "name": design.forked_from_name, "fork_point": design.fork_point}
    if head is None and has_bundle:
        head = design.repo.branch_head(design.default_branch)
    check = (
        AssemblyCheck.objects.filter(design=design, commit_sha=head, is_assembly=True).first()
        if head
        else None
    )
    return {
        "id": design.pk,
        "owner": design.owner.username,
        "slug": design.slug,
        "url": design_url(design.owner.username, design.slug),
        "title": design.title,
        "summary": design.summary,
        "licence": design.licence,
        "tags": [tag.name for tag in design.tags.all()],
        "visibility": design.visibility,
        "default_branch": design.default_branch,
        "allow_default_branch_rewrite": design.allow_default_branch_rewrite,
        "allow_tag_changes": design.allow_tag_changes,
        "okh_function": design.okh_function,
        "okh_technology_readiness": design.okh_technology_readiness,
        "okh_documentation_readiness": design.okh_documentation_readiness,
        "okh_documentation_language": design.okh_documentation_language,
        "created_at": design.created_at.isoformat(),
        "bundle": "repo.bundle" if has_bundle else None,
        "collaborators": [
            {"username": c.user.username, "url": records.account_url(c.user.username), "role": c.role}
            for c in sorted(design.collaborators.all(), key=lambda c: c.user.username)
        ],
        "fork": fork,
        "imported_from": design.imported_from or None,
        "modules": [
            {key: module.get(key, "") for key in ("path", "url", "pin", "release")}
            for module in (check.modules if check else [])
        ],
        "lfs_missing": lfs_missing,
    }


def proposal_document(proposal: ChangeProposal) -> dict[str, Any]:
    target = proposal.target
    return {
        "id": proposal.pk,
        "design": target.full_name,
        "design_url": design_url(target.owner.username, target.slug),
        "number": proposal.number,
        "title": proposal.title,
        "description": proposal.description,
        "status": proposal.status,
        "source": proposal.source_name,
        "source_branch": proposal.source_branch,
        "target_branch": proposal.target_branch,
        "head_sha": proposal.head_sha,
        "target_sha": proposal.target_sha,
        "merged_sha": proposal.merged_sha,
        "created_at": proposal.created_at.isoformat(),
    }


def comment_document(comment: ProposalComment) -> dict[str, Any]:
    target = comment.proposal.target
    return {
        "id": comment.pk,
        "design": target.full_name,
        "design_url": design_url(target.owner.username, target.slug),
        "proposal_number": comment.proposal.number,
        "proposal_title": comment.proposal.title,
        "body": comment.body,
        "created_at": comment.created_at.isoformat(),
    }


def make_document(make: Make, *, photo: str | None) -> dict[str, Any]:
    design = make.design
    return {
        "id": make.pk,
        "design": design.full_name,
        "design_url": design_url(design.owner.username, design.slug),
        "commit": make.commit_sha,
        "path": make.path,
        "notes": make.notes,
        "where": make.where,
        "outcome": make.outcome,
        "made_on": make.made_on.isoformat(),
        "photo": photo,
        "created_at": make.created_at.isoformat(),
    }


def _export_history(ctx: ExportContext) -> None:
    user = ctx.user
    visible = designs_visible_to(user).values("pk")
    proposals = (
        ChangeProposal.objects.filter(author=user, target__in=visible)
        .select_related("target__owner")
        .order_by("pk")
    )
    ctx.writer.add_json(HISTORY + "proposals.json", [proposal_document(p) for p in proposals.iterator()])
    comments = (
        ProposalComment.objects.filter(author=user, proposal__target__in=visible)
        .select_related("proposal__target__owner")
        .order_by("pk")
    )
    ctx.writer.add_json(HISTORY + "comments.json", [comment_document(c) for c in comments.iterator()])
    makes = []
    for make in makes_by_person(user, viewer=user).order_by("pk").iterator():
        photo = None
        if make.photo and Path(make.photo.path).is_file():
            photo = f"{PREFIX}makes/{make.pk}.jpg"
            ctx.writer.add_file(photo, Path(make.photo.path), compress=False)
        makes.append(make_document(make, photo=photo))
    ctx.writer.add_json(PREFIX + "makes.json", makes)


# -- import -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DesignFields:
    """A design.json whose every field was checked."""

    owner: str
    slug: str
    url: str
    title: str
    summary: str
    licence: str
    tags: list[str]
    visibility: str
    default_branch: str
    allow_default_branch_rewrite: bool
    allow_tag_changes: bool
    okh: dict[str, str]
    created_at: datetime
    upstream: str
    fork_point: str
    collaborators: list[str]


def designs_import(ctx: ImportContext) -> None:
    ids = _design_ids(ctx)
    for index, original_id in enumerate(ids, start=1):
        _import_design(ctx, original_id, index=index, total=len(ids))
    _import_history(ctx)


def _design_ids(ctx: ImportContext) -> list[str]:
    ids = set()
    for name in ctx.reader.names(PREFIX):
        parts = name.split("/")
        if len(parts) == 3 and parts[2] == "design.json":
            if parts[1].isdigit() and len(parts[1]) <= 20:
                ids.add(parts[1])
            else:
                ctx.note(f"{name[:200]}: designs are numbered folders; this one was left out.")
    return sorted(ids, key=int)


def _import_design(ctx: ImportContext, original_id: str, *, index: int, total: int) -> None:
    folder = f"{PREFIX}{original_id}/"
    if ctx.imported("design", original_id):
        ctx.count("designs_already_imported")
        return
    try:
        fields = design_fields(
            ctx.reader.read_json(folder + "design.json", max_bytes=MAX_DESIGN_JSON_BYTES), ctx
        )
    except (ArchiveRefused, DesignRefused) as exc:
        said = exc.message if isinstance(exc, ArchiveRefused) else f"{folder}design.json: {exc}"
        ctx.note(f"{said} The design was not imported.")
        return
    ctx.progress(f"Importing {fields.owner}/{fields.slug} ({index} of {total})")
    account = ctx.account
    try:
        slug = _free_slug(account, fields.slug)
    except DesignRefused as exc:
        ctx.note(f"{fields.owner}/{fields.slug}: {exc} The design was not imported.")
        return
    if slug != fields.slug:
        ctx.note(
            f"{fields.owner}/{fields.slug}: you already have a design named {fields.slug!r}; it was imported as {slug!r}."
        )
    path = repo_path(account.username, slug)
    repo = Repository.init_bare(path, default_branch=fields.default_branch)
    try:
        filled = _fill_repository(ctx, repo, folder, fields)
        design = _design_row(
            ctx,
            original_id,
            fields,
            slug=slug,
            default_branch=filled.default_branch,
            objects=filled.lfs_objects,
        )
    except ArchiveRefused:
        repo.delete()
        raise
    except (DesignRefused, GitError, StoreError, ValidationError, IntegrityError) as exc:
        repo.delete()
        message = exc.message if isinstance(exc, ValidationError) else str(exc)
        ctx.note(f"{fields.owner}/{fields.slug}: {message} The design was not imported.")
        return
    except BaseException:
        repo.delete()
        raise
    blobs = filled.blobs
    _check_pointers(ctx, design, blobs, {oid for oid, _ in filled.lfs_objects})
    _import_release_files(ctx, design, folder)
    if fields.collaborators:
        ctx.note(
            f"{fields.owner}/{fields.slug}: its collaborators on {ctx.source_hub} "
            f"({', '.join(fields.collaborators)}) were not added: they are accounts of that hub."
        )
    # Every blob of the history is new here, and listed already: refs_changed queues the
    # analysis of its meshes from this list rather than walk each commit's changes again.
    refs_changed(
        design,
        new_commits=filled.commits,
        added_blobs=[(sha, path) for sha, path, _ in blobs],
        whole_history=True,
    )
    ctx.count("designs")


def design_fields(document: Any, ctx: ImportContext) -> DesignFields:
    """Every field of a design.json checked, or DesignRefused saying which is wrong."""
    if not isinstance(document, dict):
        raise DesignRefused("It is not a JSON object.")

    def text(key: str, limit: int, *, blank: bool = True) -> str:
        value = document.get(key, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise DesignRefused(f"{key} must be text, not {type(value).__name__}.")
        if len(value) > limit:
            raise DesignRefused(f"{key} is longer than {limit:,} characters.")
        if not blank and not value:
            raise DesignRefused(f"{key} is missing.")
        return value

    def flag(key: str) -> bool:
        value = document.get(key, False)
        if not isinstance(value, bool):
            raise DesignRefused(f"{key} must be true or false.")
        return value

    slug = text("slug", 100, blank=False)
    try:
        check_slug(slug)
    except ValidationError as exc:
        raise DesignRefused(exc.message) from None
    owner = text("owner", 150, blank=False)
    url = text("url", 500, blank=False)
    if not url.startswith(ctx.source_hub.rstrip("/") + "/"):
        raise DesignRefused(f"url {url[:100]!r} is not an address of {ctx.source_hub}, the archive's hub.")
    licence = text("licence", 32, blank=False)
    if licence not in Licence.values:
        raise DesignRefused(f"licence {licence[:40]!r} is not one this hub knows.")
    visibility = text("visibility", 10, blank=False)
    if visibility not in Design.Visibility.values:
        raise DesignRefused(f"visibility is one of {', '.join(Design.Visibility.values)}.")
    default_branch = text("default_branch", 100, blank=False)
    if not valid_ref_name("heads", default_branch):
        raise DesignRefused(f"default_branch {default_branch[:100]!r} is not a valid branch name.")
    tags = document.get("tags", [])
    if not isinstance(tags, list) or len(tags) > MAX_TAGS:
        raise DesignRefused(f"tags must be a list of at most {MAX_TAGS} names.")
    if not all(isinstance(tag, str) and len(tag) <= 50 for tag in tags):
        raise DesignRefused("tags must be names of at most 50 characters.")
    created = text("created_at", 40, blank=False)
    try:
        created_at = datetime.fromisoformat(created)
    except ValueError:
        raise DesignRefused(f"created_at {created!r} is not a date and time.") from None
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    fork = document.get("fork")
    upstream = fork_point = ""
    if fork is not None:
        if not isinstance(fork, dict):
            raise DesignRefused("fork must be an object or null.")
        given, point = fork.get("upstream"), fork.get("fork_point")
        if not isinstance(given, str) or not given.startswith(("http://", "https://")) or len(given) > 500:
            raise DesignRefused("fork.upstream must be the address of the design it was forked from.")
        if not isinstance(point, str) or not _is_sha(point):
            raise DesignRefused("fork.fork_point must be the commit it was forked at.")
        upstream, fork_point = given, point
    collaborators = document.get("collaborators", [])
    if not isinstance(collaborators, list):
        raise DesignRefused("collaborators must be a list.")
    names = [str(c.get("username"))[:150] for c in collaborators if isinstance(c, dict) and c.get("username")]
    return DesignFields(
        owner=owner,
        slug=slug,
        url=url,
        title=text("title", 200, blank=False),
        summary=text("summary", MAX_SUMMARY_CHARS),
        licence=licence,
        tags=tags,
        visibility=visibility,
        default_branch=default_branch,
        allow_default_branch_rewrite=flag("allow_default_branch_rewrite"),
        allow_tag_changes=flag("allow_tag_changes"),
        okh={
            "okh_function": text("okh_function", 2000),
            "okh_technology_readiness": text("okh_technology_readiness", 8),
            "okh_documentation_readiness": text("okh_documentation_readiness", 8),
            "okh_documentation_language": text("okh_documentation_language", 35),
        },
        created_at=created_at,
        upstream=upstream,
        fork_point=fork_point,
        collaborators=names[:50],
    )


def _free_slug(account: User, wanted: str) -> str:
    """`wanted`, or the first of wanted-2, wanted-3, … the account has no design named."""

    def taken(slug: str) -> bool:
        return (
            Design.objects.filter(owner=account, slug__iexact=slug).exists()
            or repo_path(account.username, slug).exists()
        )

    if not taken(wanted):
        return wanted
    for number in range(2, 1000):
        suffix = f"-{number}"
        candidate = wanted[: 100 - len(suffix)] + suffix
        if not taken(candidate):
            return candidate
    raise DesignRefused(f"You have too many designs named like {wanted!r}.")


def _listed_refs(ctx: ImportContext, name: str) -> dict[str, str]:
    if name not in ctx.reader.sizes:
        raise DesignRefused(f"{name} is missing.")
    try:
        refs = ctx.reader.read_json(name)
    except ArchiveRefused as exc:
        raise DesignRefused(exc.message) from None
    if not isinstance(refs, dict) or len(refs) > MAX_REFS:
        raise DesignRefused(f"{name} must map at most {MAX_REFS:,} ref names to commit ids.")
    for ref, sha in refs.items():
        kind, _, short = ref.partition("/")[2].partition("/")
        if not ref.startswith("refs/") or kind not in ("heads", "tags") or not valid_ref_name(kind, short):
            raise DesignRefused(f"{name}: {ref[:200]!r} is not a branch or tag this hub imports.")
        if not _is_sha(sha):
            raise DesignRefused(f"{name}: {ref[:200]} does not name an object id.")
    return refs


@dataclass
class FilledRepository:
    """What `_fill_repository` put in a design's new repository and the LFS store."""

    commits: list[str]
    blobs: list[tuple[str, str, int]]  # (sha, path, size) of every blob of the history, once
    default_branch: str
    lfs_objects: list[tuple[str, int]]  # (oid, size)


def _fill_repository(
    ctx: ImportContext, repo: Repository, folder: str, fields: DesignFields
) -> FilledRepository:
    """Fill the new `repo` from the design's bundle, and the LFS store from its lfs/ folder.

    The bundle's pack goes straight from the archive into `git index-pack --strict`, which
    checks every object and link as it indexes them (one pass: fetching from a bundle
    does not check objects before git 2.46, so a fetch needed `fsck --strict` after it).
    The refs of the bundle's header are then set and its history passes the push rules
    while git lists its objects (`_listed_objects`). From the moment git has the whole
    pack until all that is done, a thread saves the LFS objects through the store, each
    hashed, its size checked and synced to disk: work that waits on the disk more than
    it computes, so it runs beside git's and the rules' rather than before them.

    A bundle that does not hold exactly the refs refs.json lists, or carries objects they
    do not reach, was not written by a hub's export: ArchiveRefused, naming it. LFS objects
    saved before a design is refused stay in the store, linked to no design (what a
    design serves is its links), as the objects of a design deleted later do."""
    name = folder + "repo.bundle"
    listed = _listed_refs(ctx, folder + "refs.json")
    if name not in ctx.reader.sizes:
        if listed:
            raise DesignRefused(f"{folder}refs.json lists refs but there is no {name}.")
        return FilledRepository([], [], fields.default_branch, _store_lfs_objects(ctx, folder))
    # Leaving the block waits for the thread, whatever was raised: nothing reads the
    # archive or writes the store once the caller goes on. A design refused meanwhile (or
    # a time limit) tells the thread to stop at its next object rather than save them all.
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as saver, _setting_on_error(stop):
        saving: list[Future[list[tuple[str, int]]]] = []
        with ctx.reader.open(name) as stream:
            try:
                heads, _ = bundle_header(stream)
            except ValueError as exc:
                raise DesignRefused(f"{name} is not a git bundle: {exc}.") from None
            _compare_refs(name, found=heads, listed=listed)
            try:
                repo.index_pack(
                    stream,
                    meanwhile=lambda: saving.append(saver.submit(_store_lfs_objects, ctx, folder, stop=stop)),
                )
            except GitError as exc:
                raise DesignRefused(f"{name}: git's object checks refuse it: {exc}") from None
        inventory = _listed_objects(repo, name, listed)
        # The store's refusal of an object, if any, is raised here (DesignRefused).
        lfs_objects = saving[0].result() if saving else _store_lfs_objects(ctx, folder)
    default_branch = fields.default_branch
    branches = sorted(ref[len("refs/heads/") :] for ref in listed if ref.startswith("refs/heads/"))
    if branches and default_branch not in branches:
        default_branch = "main" if "main" in branches else branches[0]
        ctx.note(
            f"{fields.owner}/{fields.slug}: its default branch {fields.default_branch!r} is not in "
            f"the bundle; {default_branch!r} is the default branch here."
        )
        repo.set_default_branch(default_branch)
    return FilledRepository(inventory.commits, inventory.blobs, default_branch, lfs_objects)


def _listed_objects(repo: Repository, name: str, listed: dict[str, str]) -> ObjectInventory:
    """What `repo` holds once the refs of refs.json are set in it, which its history
    passes the push rules meanwhile (git lists on one core, the rules walk on the other);
    ArchiveRefused if the bundle carried objects that no ref reaches."""

    def set_refs_and_check() -> None:
        try:
            repo.update_refs([(ref, sha, None) for ref, sha in listed.items()], message="import")
        except RefMoved:
            raise DesignRefused(
                f"{name} could not be read: a ref names an object the bundle does not hold, "
                "or a branch names something other than a commit."
            ) from None
        _check_push_rules(repo, name, listed)

    inventory = repo.object_inventory(listed.values(), meanwhile=set_refs_and_check)
    unreachable = inventory.objects - inventory.reachable
    if unreachable > 0:
        raise ArchiveRefused(
            f"{name} carries objects that no ref of refs.json reaches ({unreachable:,}): "
            "it is not a bundle an export writes.",
            file=name,
        )
    return inventory


def _check_push_rules(repo: Repository, name: str, listed: dict[str, str]) -> None:
    """Refuse a history that a push of it would be refused for (designs/push_rules.py:
    ref names, file paths, names that collide, blob sizes): an archive is an upload path
    too, and the hub it came from may have had other rules, or none. The rules that
    guard a design's own history (tags, rewrites) have nothing to compare with here; the
    LFS objects come with the archive and are checked by the store."""
    rules = PushRules(
        default_branch="",
        allow_default_branch_rewrite=True,
        allow_tag_changes=True,
        max_blob_bytes=settings.FABHUB_MAX_GIT_BLOB_BYTES,
    )
    with repo.object_reader() as reader:
        errors, _ = update_errors(
            repo, reader, [(ZERO_SHA, sha, ref) for ref, sha in listed.items()], rules, already_have=[]
        )
    if errors:
        shown = "; ".join(errors[:10]) + (f"; and {len(errors) - 10} more" if len(errors) > 10 else "")
        raise DesignRefused(f"{name} holds what this hub refuses in a push: {shown}")


def _compare_refs(name: str, *, found: dict[str, str], listed: dict[str, str]) -> None:
    if found == listed:
        return
    extra = sorted(ref for ref in found if found[ref] != listed.get(ref))
    missing = sorted(ref for ref in listed if ref not in found)
    said = []
    if extra:
        said.append(f"refs refs.json does not list ({', '.join(ref[:100] for ref in extra[:5])})")
    if missing:
        said.append(f"not the refs refs.json lists ({', '.join(ref[:100] for ref in missing[:5])})")
    raise ArchiveRefused(
        f"{name} holds {' and '.join(said)}: it is not the bundle its export wrote.", file=name
    )


def _import_release_files(ctx: ImportContext, design: Design, folder: str) -> None:
    """Attach to the imported releases the files releases.json lists, each checked as an
    upload is (its name, the size limit, the count per release) and saved through the
    store, which keeps only bytes that hash to their sha256. A file refused is named in
    the report; the design and its other files stay."""
    listing = folder + "releases.json"
    if listing not in ctx.reader.sizes:
        return
    try:
        entries = ctx.reader.read_json(listing, max_bytes=MAX_DESIGN_JSON_BYTES)
    except ArchiveRefused as exc:
        ctx.note(f"{exc.message} Its release files were not imported.")
        return
    if not isinstance(entries, list):
        ctx.note(f"{listing} is not a list: its release files were not imported.")
        return
    tags = {ref.removeprefix("refs/tags/") for ref in design.repo.ref_names("refs/tags/")}
    store = lfs_store()
    limit = settings.FABHUB_RELEASE_ASSET_MAX_BYTES
    for entry in entries[:MAX_REFS]:
        tag = entry.get("name") if isinstance(entry, dict) else None
        listed = entry.get("files") if isinstance(entry, dict) else None
        if not isinstance(tag, str) or tag not in tags or not isinstance(listed, list):
            continue
        for item in listed[: settings.FABHUB_RELEASE_ASSET_MAX_COUNT]:
            try:
                if not isinstance(item, dict):
                    raise DesignRefused("it is not an object")
                name = release_asset_name_check(str(item.get("name", "")))
                sha256, size = item.get("sha256"), item.get("size")
                member = f"{folder}release-files/{sha256}"
                if not valid_oid(sha256) or not isinstance(size, int) or isinstance(size, bool):
                    raise DesignRefused("its sha256 or size is not valid")
                if size > limit:
                    raise DesignRefused(
                        f"it is {size:,} bytes; this hub keeps release files of at most {limit:,}"
                    )
                if ctx.reader.sizes.get(member) != size:
                    raise DesignRefused(f"the archive has no {size:,}-byte {member}")
                with ctx.reader.open(member) as stream:
                    store.save(sha256, size, stream)
                with transaction.atomic():
                    ReleaseAsset.objects.create(
                        design=design,
                        tag=tag,
                        name=name,
                        sha256=sha256,
                        size=size,
                        content_type=content_type_for(name),  # as uploads: never the archive's say
                        uploaded_by=design.owner,
                    )
            except (DesignRefused, StoreError, IntegrityError) as exc:
                ctx.note(f"{design.full_name} {tag[:200]}: a release file was not imported: {exc}.")
            except ValidationError as exc:
                ctx.note(f"{design.full_name} {tag[:200]}: a release file was not imported: {exc.message}")


@contextmanager
def _setting_on_error(event: threading.Event) -> Iterator[None]:
    """Set `event` if the block raises (anything: a refusal, a time limit), then re-raise."""
    try:
        yield
    except BaseException:
        event.set()
        raise


def _store_lfs_objects(
    ctx: ImportContext, folder: str, *, stop: threading.Event | None = None
) -> list[tuple[str, int]]:
    """Save every LFS object of the design through the store, which keeps only bytes that
    hash to their oid; [(oid, size)]. Ends early, its list unfinished, once `stop` is set:
    the design is refused by then, and what it saved is linked to nothing."""
    prefix = folder + "lfs/"
    store = lfs_store()
    limit = settings.FABHUB_MAX_LFS_OBJECT_BYTES
    objects = []
    for name in ctx.reader.names(prefix):
        if stop is not None and stop.is_set():
            break
        oid, size = name[len(prefix) :], ctx.reader.sizes[name]
        if not valid_oid(oid):
            raise DesignRefused(f"{name[:200]} is not named by a sha256 object id.")
        if size > limit:
            raise DesignRefused(f"{name} is {size:,} bytes; this hub keeps LFS objects of at most {limit:,}.")
        with ctx.reader.open(name) as stream:
            try:
                store.save(oid, size, stream)
            except StoreError as exc:
                raise DesignRefused(f"{name}: {exc}") from None
        objects.append((oid, size))
    return objects


def _design_row(
    ctx: ImportContext,
    original_id: str,
    fields: DesignFields,
    *,
    slug: str,
    default_branch: str,
    objects: list[tuple[str, int]],
) -> Design:
    account = ctx.account
    upstream, name, visibility = _lineage(ctx, fields)
    with transaction.atomic():
        design = Design.objects.create(
            owner=account,
            slug=slug,
            title=fields.title,
            summary=fields.summary,
            licence=fields.licence,
            visibility=visibility,
            default_branch=default_branch,
            forked_from=upstream,
            forked_from_name=name,
            fork_point=fields.fork_point if name else "",
            forked_from_url=fields.upstream,
            imported_from=fields.url,
            created_at=fields.created_at,
        )
        design_update(
            design=design,
            tags=fields.tags,
            allow_default_branch_rewrite=fields.allow_default_branch_rewrite,
            allow_tag_changes=fields.allow_tag_changes,
            **fields.okh,
        )
        lfs_objects_link(design=design, objects=objects)
        ctx.remember("design", original_id, str(design.pk))
        if ctx.imported("design", original_id) != str(design.pk):
            raise DesignRefused("Another import of the same archive imported it meanwhile.")
    return design


def _lineage(ctx: ImportContext, fields: DesignFields) -> tuple[Design | None, str, str]:
    """(the upstream on this hub, if the account may see it; forked_from_name; visibility).

    A fork of a design of this hub links to it as any fork does, and stays private while
    it is private; a fork of a design elsewhere names it with its hub."""
    if not fields.upstream:
        return None, "", fields.visibility
    root = records.hub_root()
    if fields.upstream.startswith(root):
        owner, _, slug = fields.upstream[len(root) :].strip("/").partition("/")
        upstream = designs_visible_to(ctx.account).filter(owner__username=owner, slug=slug).first()
        if upstream is not None:
            visibility = fields.visibility
            private = upstream.visibility == Design.Visibility.PRIVATE or private_upstreams(upstream)
            if private and visibility != Design.Visibility.PRIVATE:
                visibility = Design.Visibility.PRIVATE
                ctx.note(
                    f"{fields.owner}/{fields.slug}: private, as {upstream.full_name}, which it was forked from, is."
                )
            return upstream, upstream.full_name, visibility
    parts = urlsplit(fields.upstream)
    return None, f"{parts.path.strip('/')} (on {parts.netloc})"[:250], fields.visibility


def _check_pointers(
    ctx: ImportContext, design: Design, blobs: list[tuple[str, str, int]], objects: set[str]
) -> None:
    """Note the LFS files of the history whose object the archive did not bring (`blobs`:
    every blob of the history; the small ones are read, POINTER_CHECK_BATCH a process)."""
    small = [sha for sha, _, size in blobs if MIN_POINTER_BYTES <= size < MAX_POINTER_BYTES]
    missing: set[str] = set()
    for start in range(0, len(small), POINTER_CHECK_BATCH):
        for data in design.repo.read_blobs(small[start : start + POINTER_CHECK_BATCH]).values():
            pointer = resolve_pointer(data)
            if pointer is not None and pointer.oid not in objects:
                missing.add(pointer.oid)
    if missing:
        ctx.note(
            f"{design.full_name}: {len(missing):,} LFS files in its history have no object in the "
            f"archive and show as their pointers (e.g. {sorted(missing)[0]})."
        )


# -- history ------------------------------------------------------------------------------

HISTORY_KEYS = {
    ImportedRecord.Kind.PROPOSAL: (
        "design",
        "design_url",
        "number",
        "title",
        "description",
        "status",
        "source",
        "source_branch",
        "target_branch",
        "head_sha",
        "target_sha",
        "merged_sha",
        "created_at",
    ),
    ImportedRecord.Kind.COMMENT: (
        "design",
        "design_url",
        "proposal_number",
        "proposal_title",
        "body",
        "created_at",
    ),
}


def history_record(item: Any, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """The fields of a proposal or comment worth keeping, or None if it is malformed."""
    if not isinstance(item, dict):
        return None
    original_id = item.get("id")
    if not (isinstance(original_id, int) and original_id >= 0) and not (
        isinstance(original_id, str) and original_id.isdigit() and len(original_id) <= 20
    ):
        return None
    record: dict[str, Any] = {"id": original_id}
    for key in keys:
        value = item.get(key)
        if isinstance(value, str) and len(value) > MAX_HISTORY_TEXT:
            return None
        if value is not None and not isinstance(value, str | int | bool):
            return None
        record[key] = value
    return record


def _read_list(ctx: ImportContext, name: str) -> list | None:
    if name not in ctx.reader.sizes:
        return None
    try:
        items = ctx.reader.read_json(name)
    except ArchiveRefused as exc:
        ctx.note(f"{exc.message} It was left out.")
        return None
    if not isinstance(items, list):
        ctx.note(f"{name} is not a list; it was left out.")
        return None
    return items


def _import_history(ctx: ImportContext) -> None:
    for kind, name, counted in (
        (ImportedRecord.Kind.PROPOSAL, HISTORY + "proposals.json", "proposals"),
        (ImportedRecord.Kind.COMMENT, HISTORY + "comments.json", "comments"),
    ):
        items = _read_list(ctx, name)
        if items is None:
            continue
        ctx.progress(f"Your {counted}")
        skipped = 0
        for item in items:
            record = history_record(item, HISTORY_KEYS[kind])
            if record is None:
                skipped += 1
            elif ctx.keep_history(kind, str(record["id"]), record):
                ctx.count(counted)
        if skipped:
            ctx.note(f"{name}: {skipped:,} malformed entries were left out.")
    makes = _read_list(ctx, PREFIX + "makes.json")
    if makes:
        ctx.count("makes", len(makes))
        ctx.note(
            f"Makes in the archive: {len(makes):,}. They are not made again here: each comes as "
            "its signed record, with the archive's records (records/credentials.json)."
        )
