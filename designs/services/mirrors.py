"""Mirrors: designs that copy a remote repository (pull), and remotes a design is copied to (push).

**Pull mirrors.** `mirror_refresh` fetches the remote's branches and tags into a staging
area of the design's repository (`refs/fabhub/mirror/…`, hidden from clients), their
objects held in a quarantine (`Repository.fetch_quarantined`, as receive-pack holds a
push's), checks what arrived against the rules a push must pass (designs/push_rules.py:
ref names, file paths, names that collide, blob sizes), admits the objects, fetches the
Git LFS objects the new commits point to, and only then publishes all changed refs in
one `update-ref` transaction. It tells `refs_changed` what changed (`RefMove`: the files
that differ between the default branch's head before and after, read from the trees
that differ, and whether a tag went), so the follow-ups that read nothing it changed
(cover, README, assembly check, search document, release files) are skipped. A
refresh that fails half-way, or brings what the rules refuse, leaves nothing a reader
could see, by ref or by object id (the quarantine is deleted and the staging refs
dropped), and the next one fetches again. An unchanged mirror costs one `git fetch`
that finds nothing to do. A mirror is read-only on this hub (`selectors.refuse_local_writes`,
called by the services that change refs and by git pushes): the next refresh would undo
a local change.

**Push mirrors.** After every ref change (`push_mirrors_queue`, called by
`services.refs.refs_changed`) the hub pushes branches and tags to each push mirror,
uploading the LFS objects of the new commits first. Pushes are never forced: a remote
that moved on its own is reported and nothing there is overwritten. Failures are
retried with back-off by `mirrors_tick` (Celery beat, or `manage.py mirrors_tick`).

Claims are conditional updates of the mirror row (`refreshing_since`, `pushing_since`),
so two workers never run the same mirror at once. Credentials are stored encrypted
(`hub.crypto`) and never returned by pages or the API.
"""

from __future__ import annotations

import json
import logging
import shutil
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from designs import selectors
from designs.git import ZERO_SHA, GitError, ObjectReader, RefMoved, Repository
from designs.lfs_store import MAX_POINTER_BYTES, StoreError, lfs_store, resolve_pointer
from designs.models import Design, PullMirror, PushMirror, repo_path
from designs.push_rules import PushRules, update_errors
from designs.remotes import (
    Credential,
    LfsClient,
    RemoteError,
    remote_access,
    remote_addresses,
    remote_url_check,
)
from designs.selectors import design_mirror, pointer_oids
from designs.services import watches
from designs.services.commits import default_branch_among
from designs.services.designs import design_create
from designs.services.lfs import lfs_object_link
from designs.services.refs import RefMove, refs_changed
from hub.crypto import UnreadableSecret, decrypt_text, encrypt_text
from hub.exceptions import Conflict, HubError, NotFound, PermissionDenied, ValidationError
from hub.models import User
from hub.queue import enqueue
from hub.ticker import start_ticker

logger = logging.getLogger(__name__)

CREDENTIAL_PURPOSE = "mirror credentials"
STAGING = "refs/fabhub/mirror/"
PUBLISHED = ("refs/heads/", "refs/tags/")
PULL_REFSPECS = [f"+refs/heads/*:{STAGING}heads/*", f"+refs/tags/*:{STAGING}tags/*"]
# Never forced (no "+"): a remote branch that moved on its own is rejected and reported.
PUSH_REFSPECS = ["refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*"]
FIRST_BACKOFF_S = 60
MAX_ERROR_CHARS = 4000


class MirrorFailed(Exception):
    """A refresh or push failed for a reason worth showing to the owner."""


# -- credentials --------------------------------------------------------------------------


def _store_credential(username: str, secret: str) -> tuple[str, str]:
    """(encrypted credential, username to show) for a mirror row; ('', '') for none."""
    if not secret:
        return "", ""
    if len(secret) > 4096 or len(username) > 200:
        raise ValidationError("That credential is too long.", field="token")
    if any(ord(ch) < 32 for ch in secret + username) or ":" in username:
        raise ValidationError(
            "A credential cannot contain control characters (or ':' in the user name).", field="token"
        )
    token = encrypt_text(json.dumps({"username": username, "secret": secret}), purpose=CREDENTIAL_PURPOSE)
    return token, username


def _credential(mirror: PullMirror | PushMirror) -> Credential | None:
    if not mirror.credential:
        return None
    try:
        values = json.loads(decrypt_text(mirror.credential, purpose=CREDENTIAL_PURPOSE))
    except UnreadableSecret as exc:
        raise MirrorFailed(str(exc)) from None
    return Credential(values.get("username", ""), values["secret"])


def _check_url(url: str, *, with_credential: bool) -> str:
    """The address if it may be used now (the full check, name resolution included)."""
    remote = remote_url_check(url)
    if remote.is_ssh and with_credential:
        raise ValidationError(
            "ssh remotes use the hub's own ssh key; a stored credential is only for http(s).", field="token"
        )
    remote_addresses(remote)
    return remote.url


def _failure_text(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, HubError) else str(exc)
    return text[:MAX_ERROR_CHARS]


# -- pull mirrors -------------------------------------------------------------------------


def mirror_create(
    *,
    owner: User,
    slug: str,
    url: str,
    licence: str,
    title: str = "",
    summary: str = "",
    visibility: str = Design.Visibility.PUBLIC,
    username: str = "",
    token: str = "",
    interval: int | None = None,
) -> Design:
    """A new design that mirrors `url`; its first refresh is queued at once."""
    url = _check_url(url, with_credential=bool(token))
    interval = _check_interval(interval)
    credential, shown_user = _store_credential(username.strip(), token)
    try:
        with transaction.atomic():
            design = design_create(
                owner=owner, slug=slug, title=title, summary=summary, licence=licence, visibility=visibility
            )
            # Creating it fills the design's reverse cache (selectors.design_mirror).
            PullMirror.objects.create(
                design=design,
                url=url,
                credential=credential,
                username=shown_user,
                interval=interval,
            )
    except IntegrityError as exc:
        raise Conflict(f"You already have a design named {slug!r}.") from exc
    except Exception:
        if not Design.objects.filter(owner=owner, slug__iexact=slug).exists():
            shutil.rmtree(repo_path(owner.username, slug), ignore_errors=True)
        raise
    enqueue("designs.tasks.mirror_refresh", design.pk)
    return design


def _check_interval(interval: int | None) -> int:
    if interval is None:
        return settings.FABHUB_MIRROR_INTERVAL_S
    if interval < settings.FABHUB_MIRROR_MIN_INTERVAL_S:
        raise ValidationError(
            f"Refresh at most every {settings.FABHUB_MIRROR_MIN_INTERVAL_S} seconds.", field="interval"
        )
    return interval


def mirror_update(
    *,
    design: Design,
    user: User,
    url: str | None = None,
    username: str | None = None,
    token: str | None = None,
    clear_credential: bool = False,
    interval: int | None = None,
) -> PullMirror:
    mirror = _owned_mirror(design, user)
    fields = []
    if url is not None and url != mirror.url:
        mirror.url = _check_url(
            url, with_credential=bool(token or (mirror.credential and not clear_credential))
        )
        fields.append("url")
    if clear_credential:
        mirror.credential, mirror.username = "", ""
        fields += ["credential", "username"]
    if token:
        mirror.credential, mirror.username = _store_credential((username or "").strip(), token)
        fields += ["credential", "username"]
    if interval is not None:
        mirror.interval = _check_interval(interval)
        mirror.next_refresh_at = min(
            mirror.next_refresh_at, timezone.now() + timedelta(seconds=mirror.interval)
        )
        fields += ["interval", "next_refresh_at"]
    if fields:
        mirror.save(update_fields=list(dict.fromkeys(fields)))
    return mirror


def _owned_mirror(design: Design, user: User) -> PullMirror:
    mirror = design_mirror(design)
    if mirror is None:
        raise NotFound(f"{design.full_name} is not a mirror.")
    if design.owner_id != user.pk:
        raise PermissionDenied(f"Only {design.owner.username} manages this mirror.")
    return mirror


def mirror_stop(*, design: Design, user: User) -> None:
    """Turn the mirror into an ordinary design: it keeps what it has and accepts commits."""
    mirror = _owned_mirror(design, user)
    mirror.delete()
    # Forget the deleted row on this instance too: design_mirror asks again.
    design.pull_mirror = None


@dataclass(frozen=True)
class RefreshOutcome:
    changed_refs: int
    new_commits: int
    lfs_objects: int


def mirror_refresh_now(*, design: Design, user: User) -> PullMirror:
    """Refresh on request of a writer of the mirror; the row says how it went."""
    if not selectors.design_can_write(design, user):
        raise PermissionDenied(f"You cannot refresh {design.full_name}.")
    if design_mirror(design) is None:
        raise NotFound(f"{design.full_name} is not a mirror.")
    mirror_refresh(design=design)
    return PullMirror.objects.get(design=design)


def _stale_before() -> datetime:
    # A claim older than twice the git time limit belongs to a worker that died.
    return timezone.now() - timedelta(seconds=2 * settings.FABHUB_MIRROR_TIMEOUT_S)


def mirror_refresh(*, design: Design) -> RefreshOutcome | None:
    """Bring the mirror up to date with its remote; None if it failed (the row says why).

    Conflict if another refresh of the same mirror is running.
    """
    now = timezone.now()
    claimed = (
        PullMirror.objects.filter(design=design)
        .filter(Q(refreshing_since__isnull=True) | Q(refreshing_since__lt=_stale_before()))
        .update(refreshing_since=now, last_attempt_at=now)
    )
    if not claimed:
        if not PullMirror.objects.filter(design=design).exists():
            raise NotFound(f"{design.full_name} is not a mirror.")
        raise Conflict(f"{design.full_name} is being refreshed right now; its status will show the outcome.")
    mirror = PullMirror.objects.get(design=design)
    try:
        outcome, warning = _refresh(design, mirror)
    except (GitError, RemoteError, MirrorFailed, HubError, StoreError) as exc:
        failures = mirror.failures + 1
        delay = min(mirror.interval, FIRST_BACKOFF_S * 2 ** min(failures - 1, 20))
        PullMirror.objects.filter(pk=mirror.pk).update(
            refreshing_since=None,
            failures=failures,
            last_error=_failure_text(exc),
            next_refresh_at=timezone.now() + timedelta(seconds=delay),
        )
        logger.warning("mirror %s: refresh failed: %s", design.full_name, exc)
        return None
    except BaseException:
        PullMirror.objects.filter(pk=mirror.pk).update(refreshing_since=None)
        raise
    done = timezone.now()
    PullMirror.objects.filter(pk=mirror.pk).update(
        refreshing_since=None,
        failures=0,
        last_error="",
        warning=warning,
        last_success_at=done,
        next_refresh_at=done + timedelta(seconds=mirror.interval),
    )
    return outcome


def _refresh(design: Design, mirror: PullMirror) -> tuple[RefreshOutcome, str]:
    credential = _credential(mirror)
    access = remote_access(mirror.url, credential)
    repo = design.repo
    if repo.left_quarantines():
        # A refresh was killed with its fetch in quarantine: its staging refs may point
        # at objects that are gone. Start the staging area again from what is published.
        _drop_staging(repo)
        for folder in repo.left_quarantines():
            shutil.rmtree(folder, ignore_errors=True)
    # What the fetch brings is held apart until the rules pass: a refused refresh leaves
    # nothing anyone could read, by ref or by object id (git's protocol v2 serves any
    # object the repository holds). The commit-graph's layer is written from the moment
    # the new commits are in to the end of the follow-ups (`refs_changed`'s).
    with ExitStack() as ends:
        with repo.fetch_quarantined(
            access, PULL_REFSPECS, publish_message=f"fabhub: mirror of {mirror.url}"
        ) as fetched:
            try:
                refs = repo.refs()
                wanted = {
                    "refs/" + ref[len(STAGING) :]: sha for ref, sha in refs.items() if ref.startswith(STAGING)
                }
                published = {ref: sha for ref, sha in refs.items() if ref.startswith(PUBLISHED)}
                updates: list[tuple[str, str | None, str | None]] = [
                    (ref, sha, published.get(ref)) for ref, sha in wanted.items() if published.get(ref) != sha
                ]
                updates += [(ref, None, sha) for ref, sha in published.items() if ref not in wanted]
                if not updates:
                    return RefreshOutcome(0, 0, 0), mirror.warning
                # Only what arrived is read, by one walk and one cat-file process: checked by
                # the push rules, then the LFS pointers among the files it adds; the analyses
                # refs_changed queues take the same list.
                reader = fetched.reader
                new_head = _new_head(design, updates)
                if new_head is not None:
                    reader.keep_files(new_head)  # listed by the rules, then again below
                errors, arrival = update_errors(
                    fetched.repo,
                    reader,
                    [(old or ZERO_SHA, new or ZERO_SHA, ref) for ref, new, old in updates],
                    _mirror_rules(design),
                    already_have=list(published.values()),
                    walk=fetched.walk,
                )
                if errors:
                    raise MirrorFailed(
                        "The remote holds what this hub refuses, so nothing was published; once it "
                        "is fixed there, the next refresh takes it.\n" + "\n".join(errors)
                    )
                pointers = _pointer_oids(reader, arrival.added_blobs)
                move = _ref_move(design, reader, published, updates)
                head = None if new_head is None else _listing(reader, new_head)
                fetched.admit()
            except BaseException:
                _drop_staging(repo)  # they point into the quarantine, deleted with the block
                raise
            if head is not None:
                # The follow-ups (search document, cover, README) list the new head: they find
                # the listing the rules read rather than run `ls-tree` for it again.
                repo.keep_listing(*head)
            # The new commits are in, reached by the staging refs: git writes their layer
            # of the commit-graph while the refresh publishes them and runs the follow-ups.
            ends.enter_context(repo.commit_graph_refreshed())
            new_commits, added_blobs = arrival.commits, arrival.added_blobs
            fetched_lfs, warning = _fetch_lfs_objects(design, mirror, credential, pointers)
            try:
                fetched.publish.apply(updates)
            except RefMoved:
                raise MirrorFailed(
                    "The design's refs changed during the refresh; it will be tried again."
                ) from None
        default_branch = design.default_branch
        _follow_default_branch(design, access, wanted)
        if design.default_branch != default_branch:
            move = None  # another branch's head: what changed is not known
        refs_changed(design, new_commits=new_commits, added_blobs=added_blobs, move=move, graph_started=True)
        watches.release_notify(design=design, tags=watches.tags_added(published, wanted), actor=None)
    logger.info(
        "mirror %s: %d ref(s), %d commit(s), %d LFS object(s)",
        design.full_name,
        len(updates),
        len(new_commits),
        fetched_lfs,
    )
    return RefreshOutcome(len(updates), len(new_commits), fetched_lfs), warning


def _ref_move(
    design: Design,
    reader: ObjectReader,
    published: dict[str, str],
    updates: list[tuple[str, str | None, str | None]],
) -> RefMove | None:
    """What the refresh changes for `refs_changed`'s follow-ups, read while the fetched
    objects are at hand: the default branch's files that differ between its published
    head and its new one (only the trees that differ are read). None when that branch
    is new or goes (every follow-up runs then)."""
    default_ref = f"refs/heads/{design.default_branch}"
    before = published.get(default_ref)
    after = next((new for ref, new, _ in updates if ref == default_ref), before)
    if before is None or after is None:
        return None
    try:
        paths = reader.tree_changes(before, after) if after != before else {}
    except GitError:
        return None  # a branch naming no commit (git allows it): read nothing, run everything
    tag_deleted = any(new is None and ref.startswith("refs/tags/") for ref, new, _ in updates)
    return RefMove(head_before=before, paths=paths, tag_deleted=tag_deleted)


def _new_head(design: Design, updates: list[tuple[str, str | None, str | None]]) -> str | None:
    """The default branch's new head if the refresh moves it (not if it deletes it)."""
    default_ref = f"refs/heads/{design.default_branch}"
    return next((new for ref, new, _ in updates if ref == default_ref), None)


def _listing(reader: ObjectReader, head: str) -> tuple[str, bytes] | None:
    """(the new head, its recursive listing), read by the reader that checked it (no more
    git reads: it kept the head's files, `ObjectReader.keep_files`)."""
    try:
        return head, reader.listing(head)
    except GitError:
        return None  # a branch naming no commit (git allows it): nothing to list


def _drop_staging(repo: Repository) -> None:
    """Delete the staging refs (`STAGING`); the next fetch writes them again."""
    staged: list[tuple[str, str | None, str | None]] = [
        (ref, None, sha) for ref, sha in repo.refs().items() if ref.startswith(STAGING)
    ]
    try:
        repo.update_refs(staged, message="fabhub: mirror staging dropped")
    except RefMoved:
        logger.warning("mirror staging refs of %s moved while being dropped", repo.path)


def _mirror_rules(design: Design) -> PushRules:
    """The push rules as a mirror's refresh applies them. A mirror copies its remote, so
    the rules that guard a design's own history do not apply: a tag moved or deleted
    there, a branch deleted or rewritten there, follows here. Git LFS pointers need no
    object up front: the refresh downloads them (`_fetch_lfs_objects`)."""
    return PushRules(
        default_branch=design.default_branch,
        allow_default_branch_rewrite=True,
        allow_tag_changes=True,
        max_blob_bytes=settings.FABHUB_MAX_GIT_BLOB_BYTES,
    )


def _pointer_oids(reader: ObjectReader, blobs: list[tuple[str, str]]) -> dict[str, int]:
    """oid → size of the Git LFS pointers among `blobs` ((sha, path) pairs): only blobs
    small enough to be one are read."""
    if not blobs:
        return {}
    small = reader.read_blobs({sha: MAX_POINTER_BYTES - 1 for sha, _ in blobs})
    found: dict[str, int] = {}
    for data in small.values():
        pointer = resolve_pointer(data) if data is not None else None
        if pointer is not None:
            found[pointer.oid] = pointer.size
    return found


def _fetch_lfs_objects(
    design: Design, mirror: PullMirror, credential: Credential | None, wanted: dict[str, int]
) -> tuple[int, str]:
    """Download the LFS objects `wanted` (oid → size: the pointers among the files the new
    commits add) that the design does not serve yet.

    An object is always downloaded, even when the store has its bytes for another
    design: a pointer names an oid, and naming one must never be enough to read it.
    Objects the remote says it does not have are reported (the refresh still publishes:
    a remote that lost an object must not stop its mirror forever); any other failure
    fails the refresh before anything is published.
    """
    served = selectors.lfs_objects_served(design, wanted)
    missing = {oid: size for oid, size in wanted.items() if served.get(oid) != size}
    if not missing:
        return 0, ""
    limit = settings.FABHUB_MAX_LFS_OBJECT_BYTES
    too_large = [oid for oid, size in missing.items() if size > limit]
    client = LfsClient(mirror.url, credential)
    store = lfs_store()
    fetched, lost = 0, []
    for action in client.batch("download", [(o, s) for o, s in missing.items() if s <= limit]):
        if action.oid not in missing or action.size != missing[action.oid]:
            continue
        if action.error or not action.href:
            lost.append(action.oid)
            continue
        with client.download(action) as body:
            store.save(action.oid, action.size, body)
        lfs_object_link(design=design, oid=action.oid, size=action.size)
        fetched += 1
    notes = []
    if lost:
        notes.append(
            f"{len(lost)} Git LFS object(s) are missing on the remote: {', '.join(o[:12] for o in lost[:10])}"
        )
    if too_large:
        notes.append(f"{len(too_large)} Git LFS object(s) exceed this hub's limit of {limit:,} bytes")
    return fetched, "; ".join(notes)


def _follow_default_branch(design: Design, access, wanted: dict[str, str]) -> None:
    heads = [ref[len("refs/heads/") :] for ref in wanted if ref.startswith("refs/heads/")]
    if not heads or (design.default_branch in heads and design.repo.branch_head(design.default_branch)):
        return
    # Only when the default branch is missing (a first refresh, a renamed branch): one more round trip.
    branch = design.repo.remote_default_branch(access)
    if branch not in heads:
        branch = default_branch_among(heads)
    design.repo.set_default_branch(branch)
    Design.objects.filter(pk=design.pk).update(default_branch=branch)
    design.default_branch = branch


# -- push mirrors -------------------------------------------------------------------------


def push_mirror_add(
    *, design: Design, user: User, url: str, username: str = "", token: str = ""
) -> PushMirror:
    if design.owner_id != user.pk:
        raise PermissionDenied(f"Only {design.owner.username} manages the mirrors of {design.full_name}.")
    url = _check_url(url, with_credential=bool(token))
    credential, shown_user = _store_credential(username.strip(), token)
    try:
        with transaction.atomic():
            mirror = PushMirror.objects.create(
                design=design,
                url=url,
                credential=credential,
                username=shown_user,
                created_by=user,
                pending=True,
                next_attempt_at=timezone.now(),
            )
    except IntegrityError:
        raise Conflict(f"{design.full_name} already pushes to {url}.") from None
    if not design.repo.is_empty():
        enqueue("designs.tasks.push_mirror_push", mirror.pk)
    return mirror


def _owned_push_mirror(design: Design, user: User, mirror_id: int) -> PushMirror:
    if design.owner_id != user.pk:
        raise PermissionDenied(f"Only {design.owner.username} manages the mirrors of {design.full_name}.")
    mirror = PushMirror.objects.filter(design=design, pk=mirror_id).first()
    if mirror is None:
        raise NotFound(f"{design.full_name} has no push mirror {mirror_id}.")
    return mirror


def push_mirror_update(
    *,
    design: Design,
    user: User,
    mirror_id: int,
    enabled: bool | None = None,
    username: str | None = None,
    token: str | None = None,
) -> PushMirror:
    mirror = _owned_push_mirror(design, user, mirror_id)
    if token:
        mirror.credential, mirror.username = _store_credential((username or "").strip(), token)
    if enabled is not None:
        mirror.enabled = enabled
        if enabled:
            mirror.pending, mirror.next_attempt_at, mirror.failures = True, timezone.now(), 0
    mirror.save(update_fields=["credential", "username", "enabled", "pending", "next_attempt_at", "failures"])
    if enabled:
        enqueue("designs.tasks.push_mirror_push", mirror.pk)
    return mirror


def push_mirror_remove(*, design: Design, user: User, mirror_id: int) -> None:
    _owned_push_mirror(design, user, mirror_id).delete()


def push_mirror_push_now(*, design: Design, user: User, mirror_id: int) -> PushMirror:
    """Push at once, on the owner's request; the row says how it went."""
    mirror = _owned_push_mirror(design, user, mirror_id)
    if not mirror.enabled:
        raise ValidationError("This push mirror is turned off; turn it on first.")
    PushMirror.objects.filter(pk=mirror.pk).update(pending=True)
    push_mirror_run(mirror_id=mirror.pk)
    return PushMirror.objects.get(pk=mirror.pk)


def _backoff(failures: int) -> timedelta:
    seconds = FIRST_BACKOFF_S * 2 ** min(max(failures - 1, 0), 20)
    return timedelta(seconds=min(seconds, settings.FABHUB_PUSH_MIRROR_MAX_BACKOFF_S))


def push_mirror_run(*, mirror_id: int) -> bool:
    """Push the design to the mirror until nothing is pending; False if a push failed.

    Claimed with a conditional update, so concurrent runs never push the same mirror at
    once: a run that finds it claimed returns, and the holder pushes again before it
    lets go if changes arrived meanwhile (`pending`).
    """
    while True:
        now = timezone.now()
        claimed = (
            PushMirror.objects.filter(pk=mirror_id, enabled=True, pending=True)
            .filter(Q(pushing_since__isnull=True) | Q(pushing_since__lt=_stale_before()))
            .update(pushing_since=now, pending=False, last_attempt_at=now)
        )
        if not claimed:
            return True
        mirror = PushMirror.objects.select_related("design__owner").get(pk=mirror_id)
        try:
            pushed_refs = _push(mirror)
        except (GitError, RemoteError, MirrorFailed, HubError, StoreError) as exc:
            failures = mirror.failures + 1
            PushMirror.objects.filter(pk=mirror_id).update(
                pushing_since=None,
                pending=True,
                failures=failures,
                last_error=_failure_text(exc),
                next_attempt_at=timezone.now() + _backoff(failures),
            )
            logger.warning("push mirror %s: failed (%d): %s", mirror, failures, exc)
            return False
        except BaseException:
            PushMirror.objects.filter(pk=mirror_id).update(pushing_since=None, pending=True)
            raise
        success = {
            "pushing_since": None,
            "failures": 0,
            "last_error": "",
            "last_success_at": timezone.now(),
            "next_attempt_at": None,
            "pushed_refs": pushed_refs,
        }
        if PushMirror.objects.filter(pk=mirror_id, pending=False).update(**success):
            return True
        # New changes arrived while pushing: record this push, then push again.
        PushMirror.objects.filter(pk=mirror_id).update(**success)


def _push(mirror: PushMirror) -> dict[str, str]:
    """Upload the LFS objects of commits the remote may lack, then push; the refs the
    remote now has. MirrorFailed names each ref the remote refused."""
    design = mirror.design
    repo = design.repo
    credential = _credential(mirror)
    access = remote_access(mirror.url, credential)
    local = {ref: sha for ref, sha in repo.refs().items() if ref.startswith(PUBLISHED)}
    if not local:
        return dict(mirror.pushed_refs)
    known = [sha for sha in (mirror.pushed_refs or {}).values() if repo.has_object(sha)]
    commits = repo.commits_between(list(set(local.values())), [f"^{sha}" for sha in known])
    _upload_lfs_objects(design, mirror, credential, commits)
    results, remote_says = repo.push_remote(access, PUSH_REFSPECS)
    pushed = dict(mirror.pushed_refs or {})
    refused = []
    for result in results:
        if result.ok and result.ref in local:
            pushed[result.ref] = local[result.ref]
        elif not result.ok:
            refused.append(result)
    if refused:
        # What did land is remembered: the next push looks for LFS objects only past it.
        PushMirror.objects.filter(pk=mirror.pk).update(pushed_refs=pushed)
        lines = [f"{r.ref.removeprefix('refs/heads/')}: {_refusal_words(r.summary)}" for r in refused]
        if remote_says:
            lines.append(f"The remote said: {remote_says}")
        raise MirrorFailed(
            "The remote refused some refs; nothing there was overwritten.\n" + "\n".join(lines)
        )
    return pushed


def _refusal_words(summary: str) -> str:
    if "non-fast-forward" in summary or "fetch first" in summary:
        return (
            "it has commits this design does not have (someone changed it there). Bring them here "
            "first (a proposal or a sync), then the push goes through."
        )
    return summary or "refused"


def _upload_lfs_objects(
    design: Design, mirror: PushMirror, credential: Credential | None, commits: list[str]
) -> None:
    """Send the remote the LFS objects `commits` point to, before the commits themselves
    (a fabhub remote refuses pointers to objects it does not have)."""
    if not commits:
        return
    wanted = pointer_oids(design.repo, commits)
    served = selectors.lfs_objects_served(design, wanted)
    store = lfs_store()
    objects = [(oid, size) for oid, size in served.items() if wanted.get(oid) == size and store.exists(oid)]
    if not objects:
        return
    client = LfsClient(mirror.url, credential)
    for action in client.batch("upload", objects):
        if action.error:
            raise MirrorFailed(f"The remote refused LFS object {action.oid[:12]}…: {action.error}")
        if not action.href:
            continue  # the remote has it
        with store.open(action.oid) as body:
            client.upload(action, body)


# -- schedule -----------------------------------------------------------------------------


def mirrors_tick(*, inline: bool = False) -> tuple[int, int]:
    """Refresh the pull mirrors that are due and retry the push mirrors whose back-off is
    over: queued as tasks, or run here with `inline` (`manage.py mirrors_tick`).
    Returns (pull mirrors, push mirrors) started."""
    now = timezone.now()
    due_pulls = list(
        PullMirror.objects.filter(next_refresh_at__lte=now)
        .filter(Q(refreshing_since__isnull=True) | Q(refreshing_since__lt=_stale_before()))
        .values_list("design_id", flat=True)[:500]
    )
    due_pushes = list(
        PushMirror.objects.filter(enabled=True, pending=True)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(Q(pushing_since__isnull=True) | Q(pushing_since__lt=_stale_before()))
        .values_list("pk", flat=True)[:500]
    )
    for design_id in due_pulls:
        if inline:
            mirror_refresh_by_id(design_id)
        else:
            enqueue("designs.tasks.mirror_refresh", design_id)
    for mirror_id in due_pushes:
        if inline:
            push_mirror_run(mirror_id=mirror_id)
        else:
            enqueue("designs.tasks.push_mirror_push", mirror_id)
    return len(due_pulls), len(due_pushes)


def mirror_refresh_by_id(design_id: int) -> bool:
    """The task's body: refresh if the mirror still exists and nobody else is at it."""
    design = Design.objects.select_related("owner").filter(pk=design_id).first()
    if design is None:
        return True
    try:
        return mirror_refresh(design=design) is not None
    except (Conflict, NotFound):
        return True


def mirror_refresh_if_due(design: Design) -> None:
    """Queue a refresh of a mirror someone is looking at, if its time has come (the
    embedded set-up has no beat: this keeps the mirrors people use fresh without one)."""
    mirror = design_mirror(design)
    if mirror is not None and mirror.next_refresh_at <= timezone.now() and mirror.refreshing_since is None:
        enqueue("designs.tasks.mirror_refresh", design.pk)


# -- the embedded set-up's clock ----------------------------------------------------------


def start_embedded_ticker() -> bool:
    """Without a broker there is no beat: a thread of the web server runs `mirrors_tick`
    every FABHUB_MIRROR_TICK_S seconds (0 turns it off); see hub/ticker.py."""
    return start_ticker("mirror", interval_s=settings.FABHUB_MIRROR_TICK_S, tick=embedded_tick)


def embedded_tick(round_number: int) -> None:
    mirrors_tick(inline=True)
