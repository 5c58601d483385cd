"""The only module that runs git. Everything else calls these functions.

Repositories are bare; commits from the web and API are built with plumbing (blobs, a
throw-away index, `commit-tree`) and published with a compare-and-swap `update-ref`, so
no working tree, no shared index and no lock of our own are needed for correctness: git's
ref lock is the only serialisation point, and it works across processes and machines.
`Repository.writers_turn` only adds fairness: a writer that lost a race waits its turn
instead of losing every race to faster writers.
"""

from __future__ import annotations

import fcntl
import io
import logging
import mmap
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cmp_to_key
from pathlib import Path
from typing import IO, Self

logger = logging.getLogger(__name__)

ZERO_SHA = "0" * 40
EMPTY_TREE_SHA = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
REPOSITORY_CONFIG = "[receive]\n\tfsckObjects = true\n[core]\n\tlogAllRefUpdates = true\n[gc]\n\tauto = 0\n"


class GitError(Exception):
    """git failed. `retryable` says whether the same call may succeed later."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class TreeRefused(GitError):
    """Git's own object checks refuse a tree the hub was about to write."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _fsck_messages(stderr: str) -> list[str]:
    """'error: object <sha>: hasDotgit: contains '.git'' → "hasDotgit: contains '.git'"."""
    found = re.findall(r"^error: object [0-9a-f]+: (.+)$", stderr, flags=re.M)
    return list(dict.fromkeys(found)) or [stderr.strip() or "git refused the tree"]


class RefMoved(GitError):
    """A compare-and-swap ref update lost: the ref is no longer where we expected."""

    def __init__(self, ref: str) -> None:
        super().__init__(f"{ref} moved during the update", retryable=True)
        self.ref = ref


@dataclass(frozen=True)
class Person:
    name: str
    email: str


@dataclass(frozen=True)
class FileStatus:
    status: str  # added, modified, deleted, renamed, copied, type-changed
    path: str
    old_path: str | None = None


@dataclass(frozen=True)
class Commit:
    sha: str
    parents: list[str]
    author: Person
    authored_at: datetime
    committer: Person
    committed_at: datetime
    message: str
    files: list[FileStatus] = field(default_factory=list)

    @property
    def summary(self) -> str:
        return self.message.split("\n", 1)[0]


@dataclass(frozen=True)
class TreeEntry:
    path: str
    mode: str
    kind: str  # "blob", "tree" or "submodule" (a gitlink: `sha` is the pinned commit)
    sha: str
    size: int | None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


SUBMODULE_MODE = "160000"


def _entry_kind(git_type: str) -> str:
    # git says "commit" for a gitlink; to the hub it is a submodule, never a file.
    return "submodule" if git_type == "commit" else git_type


@dataclass(frozen=True)
class Tag:
    name: str
    target: str  # the commit the tag points to
    message: str
    tagger: Person | None
    tagged_at: datetime | None


@dataclass(frozen=True)
class ChangedFile:
    status: str
    path: str
    old_path: str | None
    old_sha: str | None
    new_sha: str | None
    old_mode: str | None
    new_mode: str | None

    @property
    def is_submodule(self) -> bool:
        """A submodule added, removed or moved to another commit (its shas are commits)."""
        return SUBMODULE_MODE in (self.old_mode, self.new_mode)


@dataclass(frozen=True)
class FileEdit:
    """One change to apply in a commit: put a blob at `path`, or delete `path` (sha None)."""

    path: str
    sha: str | None
    mode: str = "100644"


@dataclass(frozen=True)
class RemoteAccess:
    """How git reaches a remote. Built by `designs.remotes.remote_access`, which checks the
    address first; git is then held to what was checked (see `remote_env`)."""

    url: str
    resolve: str | None = None  # http.curloptResolve "host:port:addr[,addr]": no second DNS lookup
    auth_header: str | None = None  # "Authorization: …", sent as http.extraHeader, never stored
    ssh_host_alias: str | None = None  # the url holds the checked address; keys are looked up by name
    timeout: int = 600


@dataclass(frozen=True)
class MergeConflict:
    """A path `merge-tree` could not merge. `kind` comes from git's CONFLICT messages:
    "content", "binary", "modify/delete", "add/add", "rename", "file/directory", "other"."""

    path: str
    kind: str
    message: str
    ours_sha: str | None = None
    theirs_sha: str | None = None


@dataclass(frozen=True)
class MergeResult:
    tree: str  # with conflict markers in conflicted files: never to be committed as is
    conflicts: list[MergeConflict]

    @property
    def clean(self) -> bool:
        return not self.conflicts


@dataclass(frozen=True)
class PushedRef:
    """One line of `git push --porcelain`: a ref and whether the remote took it."""

    ref: str
    ok: bool
    summary: str


STATUS_NAMES = {
    "A": "added",
    "M": "modified",
    "D": "deleted",
    "R": "renamed",
    "C": "copied",
    "T": "type-changed",
}


# Tree listings by full object id, for every Repository of the process (Repository._listing):
# the most recently used, each at most LISTING_KEPT_BYTES long.
_LISTINGS: OrderedDict[tuple[str, str, tuple[str, ...]], bytes] = OrderedDict()
_LISTINGS_LOCK = threading.Lock()
LISTINGS_KEPT = 32
LISTING_KEPT_BYTES = 1024 * 1024


QUARANTINE_PREFIX = "fabhub-fetch-"
# A quarantined fetch's core.alternateRefsCommand: a command found nowhere on PATH. git
# looks a command up before it forks, so one it cannot find costs no process (`true`
# cost two, ~1 ms each): git says "cannot run" and goes on as with a command that lists
# no ref (transport.c, read_alternate_refs). That message is dropped from what the hub
# shows (`without_alternate_refs_complaint`).
NO_ALTERNATE_REFS = "fabhub-no-alternate-refs"
# Every repository's config sets gc.auto = 0: git never packs by itself, inside a web
# request or a push. `Repository.upkeep` does it, queued when `upkeep_due` says so.
UPKEEP_PACKS = 16
UPKEEP_LOOSE_IN_ONE_FOLDER = 27  # objects/17 holds ~1/256 of them: ~6,900, gc.auto's 6,700
UPKEEP_LOCK = "fabhub-upkeep.lock"


@dataclass
class FetchQuarantine:
    """What `Repository.fetch_quarantined` brought, held apart from the repository."""

    repo: Repository  # reads the repository's objects and the quarantined ones
    folder: Path
    objects: Path  # the repository's own object folder
    walk: ChangeWalk  # of `repo`, started while the fetch ran; ended with the block
    reader: ObjectReader  # of `repo`, started while the fetch ran; ended with the block
    publish: RefUpdates  # of the repository itself, started while the fetch ran; ditto

    def admit(self) -> None:
        """Move the quarantined objects into the repository: packs (the pack before its
        indexes, so no reader finds an index without its pack) and loose objects."""
        packs = self.objects / "pack"
        for pack in sorted((self.folder / "pack").glob("*.pack")):
            for suffix in (".pack", ".rev", ".idx"):
                part = pack.with_suffix(suffix)
                if part.exists():
                    os.replace(part, packs / part.name)
        for loose in self.folder.glob("[0-9a-f][0-9a-f]/*"):
            target = self.objects / loose.parent.name / loose.name
            target.parent.mkdir(exist_ok=True)
            if not target.exists():
                os.replace(loose, target)


class Repository:
    """A bare repository on disk, driven through GitPython's wrapper of the git binary."""

    def __init__(self, path: Path | str, *, quarantine: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        # A push's objects before git lets them in: the variables git gives its pre-receive
        # hook (GIT_QUARANTINE_PATH, GIT_OBJECT_DIRECTORY, GIT_ALTERNATE_OBJECT_DIRECTORIES),
        # for the push rules to read them (designs.githttp). Set on this repository's reads.
        self.quarantine = dict(quarantine or {})
        # Opening GitPython's Repo reads the repository's config files (about 1 ms, which
        # an assembly check of 50 modules pays 50 times): a bare repository, the hub's own
        # kind, is only checked to be one; anything else must open as a repository.
        if not _is_git_dir(self.path):
            # Imported here: most processes never need it.
            import git as gitpython

            try:
                gitpython.Repo(self.path)
            except (gitpython.NoSuchPathError, gitpython.InvalidGitRepositoryError) as exc:
                raise GitError(f"no repository at {self.path}") from exc

    # -- creating -----------------------------------------------------------------------

    @classmethod
    def init_bare(cls, path: Path, *, default_branch: str) -> Repository:
        """A new bare repository. Made without git's template (sample hooks, description,
        info/exclude), which a hub's repository never uses — its hooks come through
        core.hooksPath — and whose copying made `git init` twice as slow."""
        path.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [git_binary(), "init", "--quiet", "--bare", "--template=", f"--initial-branch={default_branch}"]
            + ["--", str(path)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )
        if proc.returncode != 0:
            raise GitError(f"git init failed: {_tail(proc.stderr.decode(errors='replace'))}")
        repo = cls(path)
        repo._configure()
        return repo

    @classmethod
    def clone_bare(cls, source: Repository, path: Path) -> Repository:
        """A full copy (all branches and tags). Local clones hard-link objects: cheap."""
        path.parent.mkdir(parents=True, exist_ok=True)
        import git as gitpython

        gitpython.Repo.clone_from(str(source.path), str(path), bare=True)
        repo = cls(path)
        repo._run("remote", "remove", "origin")
        repo._configure()
        return repo

    def _configure(self) -> None:
        # Refuse corrupt objects at the door and keep history immutable by default. The
        # sections are appended as text (a later value wins in git's config, a section may
        # appear twice): parsing and rewriting the file through GitPython cost an import
        # 6 ms per design.
        with (self.path / "config").open("a", encoding="utf-8") as config:
            config.write(REPOSITORY_CONFIG)

    def delete(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    # -- running git --------------------------------------------------------------------

    def _run(
        self,
        *args: str,
        stdin: bytes | None = None,
        env: dict[str, str] | None = None,
        ok_codes: tuple[int, ...] = (0,),
    ) -> bytes:
        """Run `git <args>` in the repository and return its stdout as bytes."""
        status, out, err = self._execute(*args, stdin=stdin, env=env)
        if status not in ok_codes:
            raise GitError(f"git {args[0]} failed: {err.strip()}")
        return out

    def _execute(
        self, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
    ) -> tuple[int, bytes, str]:
        """Run `git <args>`: (exit status, stdout bytes, stderr text), whatever the status.

        Started with subprocess directly rather than through GitPython's wrapper, which
        added ~1 ms to every call (a history page makes one or two): in the repository's
        folder, with git's messages in plain English (LC_ALL=C) as the parsers expect.
        """
        proc = subprocess.run(
            [git_binary(), *args],
            cwd=self.path,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            env=_git_env({**UNFLUSHED, **self.quarantine, **(env or {})}),
        )
        return proc.returncode, proc.stdout, proc.stderr.decode(errors="replace")

    def _status(self, *args: str) -> int:
        """The exit status of `git <args>`, for commands that answer yes/no by it."""
        status, _, _ = self._execute(*args)
        return status

    def _text(self, *args: str, **kwargs) -> str:
        return self._run(*args, **kwargs).decode()

    # -- refs ---------------------------------------------------------------------------

    def resolve(self, rev: str) -> str | None:
        """The commit sha a branch, tag or sha names, or None. A NUL byte is in no name git
        can hold (and cannot be passed to a process): such a `rev` names nothing."""
        if not rev or rev.startswith("-") or "\0" in rev:
            return None
        if rev.startswith((HIDDEN_REFS, HIDDEN_REFS.removeprefix("refs/"))):
            return None  # the hub's own bookkeeping (a mirror's staging area), never shown
        # Most pages name a branch (the default one): read from the ref files when git's
        # own lookup would surely find that branch, saving a process (~1.5 ms).
        sha = _branch_from_files(self.path, rev)
        if sha is not None:
            return sha
        out = self._run(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", ok_codes=(0, 1, 128)
        )
        return out.decode().strip() or None

    def resolve_ref(self, ref: str) -> str | None:
        """The object a full ref name points to (a tag object for annotated tags), or None."""
        if "\0" in ref:
            return None
        sha = _ref_from_files(self.path, ref)
        if sha is not None:
            return sha
        out = self._run("rev-parse", "--verify", "--quiet", ref, ok_codes=(0, 1))
        return out.decode().strip() or None

    def branch_head(self, branch: str) -> str | None:
        return self.resolve_ref(f"refs/heads/{branch}")

    def is_empty(self) -> bool:
        return not self._text("for-each-ref", "--count=1", "refs/heads/").strip()

    def branches(self) -> list[tuple[str, str]]:
        out = self._text("for-each-ref", "--format=%(refname:lstrip=2)%00%(objectname)", "refs/heads/")
        return [(name, sha) for name, sha in (line.split("\0") for line in out.splitlines() if line)]

    def tags(self) -> list[Tag]:
        fmt = "%(refname:lstrip=2)%00%(*objectname)%00%(objectname)%00%(taggername)%00%(taggeremail:trim)%00%(taggerdate:iso-strict)%00%(contents)%1e"
        # Newest first; tags made in the same second, newest version first (v0.10 > v0.9).
        out = self._text(
            "for-each-ref", "--sort=-v:refname", "--sort=-creatordate", f"--format={fmt}", "refs/tags/"
        )
        tags = []
        for record in out.split("\x1e"):
            record = record.lstrip("\n")
            if not record:
                continue
            name, peeled, target, tagger, email, date, message = record.split("\0", 6)
            tags.append(
                Tag(
                    name=name,
                    target=peeled or target,
                    message=message.strip(),
                    tagger=Person(tagger, email) if tagger else None,
                    tagged_at=datetime.fromisoformat(date) if date else None,
                )
            )
        return tags

    def ref_names(self, *patterns: str) -> list[str]:
        """Full names of the refs matching `patterns` (`refs/tags/`, `refs/heads/main`)."""
        out = self._text("for-each-ref", "--format=%(refname)", "--end-of-options", *patterns)
        return [line for line in out.splitlines() if line]

    def describe(self, commit: str) -> str | None:
        """The nearest tag `commit` descends from, and how far past it it is: `v1.0` on the
        tag itself, `v1.0-3-g1a2b3c4d5e` three commits later; None when no tag is reachable."""
        out = self._run("describe", "--tags", "--abbrev=10", "--end-of-options", commit, ok_codes=(0, 128))
        return out.decode().strip() or None

    def update_ref(self, ref: str, new: str, old: str | None, *, message: str = "fabhub") -> None:
        """Move `ref` from `old` (None: must not exist) to `new` atomically, or raise RefMoved."""
        try:
            self._run("update-ref", "-m", message, ref, new, old or ZERO_SHA)
        except GitError as exc:
            raise RefMoved(ref) from exc

    @contextmanager
    def writers_turn(self) -> Iterator[None]:
        """Queue behind other hub writers of this repository (an advisory `flock`).

        Correctness never depends on it — refs still move by compare-and-swap, and pushes
        do not take it — but writers that lost a race take turns here, so under contention
        each one lands after a bounded wait instead of starving.
        """
        with open(self.path / "fabhub-writers.lock", "a+b") as lock_file:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)

    def delete_ref(self, ref: str, old: str) -> None:
        try:
            self._run("update-ref", "-d", ref, old)
        except GitError as exc:
            raise RefMoved(ref) from exc

    def create_tag(self, name: str, target: str, message: str, tagger: Person) -> None:
        env = {**os.environ, **_identity_env(tagger, "COMMITTER")}
        try:
            # git's default clean-up strips lines starting with '#': Markdown headings.
            self._run(
                "tag", "-a", "--cleanup=whitespace", "-m", message, "--end-of-options", name, target, env=env
            )
        except GitError as exc:
            raise RefMoved(f"refs/tags/{name}") from exc

    def set_default_branch(self, branch: str) -> None:
        self._run("symbolic-ref", "HEAD", f"refs/heads/{branch}")

    # -- writing ------------------------------------------------------------------------

    def write_blobs(self, paths: list[Path]) -> list[str]:
        """Store files as blobs in one git process; return their shas in order."""
        if not paths:
            return []
        listing = "".join(f"{p}\n" for p in paths).encode()
        out = self._text("hash-object", "-w", "--no-filters", "--stdin-paths", stdin=listing)
        return out.split()

    def write_blob(self, data: bytes) -> str:
        return self._text("hash-object", "-w", "--no-filters", "--stdin", stdin=data).strip()

    @contextmanager
    def _scratch_index(self, base_commit: str | None, edits: Iterable[FileEdit]) -> Iterator[dict[str, str]]:
        """The environment of a throw-away index holding `base_commit` with `edits` applied."""
        with tempfile.TemporaryDirectory(prefix="fabhub-index-") as tmp:
            env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
            if base_commit:
                self._run("read-tree", base_commit, env=env)
            lines = []
            for edit in edits:
                if edit.sha is None:
                    lines.append(f"0 {ZERO_SHA}\t{edit.path}\0")
                else:
                    lines.append(f"{edit.mode} {edit.sha}\t{edit.path}\0")
            # update-index drops a path it finds unsafe for this machine's checkout with
            # only a warning ("Ignoring path"); the hub must never drop a file silently.
            # Its per-platform rules are off here so that git's object checks (_admit)
            # judge every name, the same way on every server and as they judge a push.
            status, _, err = self._execute(
                *("-c", "core.protectNTFS=false", "-c", "core.protectHFS=false"),
                *("update-index", "-z", "--index-info"),
                stdin="".join(lines).encode(),
                env=env,
            )
            ignored = re.findall(r"^Ignoring path (.+)$", err, flags=re.M)
            if ignored:
                raise TreeRefused([f"{path}: not a path git can store" for path in ignored])
            if status != 0:
                raise GitError(f"git update-index failed: {err.strip()}")
            yield env

    def build_tree(self, base_commit: str | None, edits: Iterable[FileEdit]) -> str:
        """The tree of `base_commit` with `edits` applied, built in a throw-away index.

        The new trees are written into a quarantine and pass git's own object checks (those
        `receive.fsckObjects` applies to a push) before they enter the repository: a tree
        git would refuse from a push is refused here with git's words (`TreeRefused`),
        and leaves nothing behind that `git fsck --strict` would flag.
        """
        with self._scratch_index(base_commit, edits) as env, self._quarantine(env) as (quarantined, folder):
            tree = self._text("write-tree", env=quarantined).strip()
            self._admit(folder, quarantined)
            return tree

    @contextmanager
    def _quarantine(self, env: dict[str, str]) -> Iterator[tuple[dict[str, str], Path]]:
        """An environment whose new objects go to a temporary object directory that reads
        the repository's own objects as an alternate (git's receive-pack does the same)."""
        objects = self.path / "objects"
        with tempfile.TemporaryDirectory(prefix="incoming-", dir=objects) as tmp:
            yield (
                {**env, "GIT_OBJECT_DIRECTORY": tmp, "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(objects)},
                Path(tmp),
            )

    def _admit(self, folder: Path, env: dict[str, str]) -> None:
        """Check the quarantined objects with git's fsck rules, then move them in."""
        loose = sorted(folder.glob("[0-9a-f][0-9a-f]/*"))
        if not loose:
            return
        names = "".join(f"{path.parent.name}{path.name}\n" for path in loose).encode()
        pack = folder / "check.pack"
        pack.write_bytes(self._run("pack-objects", "--stdout", "-q", stdin=names, env=env))
        # index-pack --strict runs the object checks of receive.fsckObjects; -o keeps its
        # index inside the quarantine, so nothing is added to the repository.
        status, _, err = self._execute(
            "index-pack", "--strict", "-o", str(folder / "check.idx"), str(pack), env=env
        )
        if status != 0:
            raise TreeRefused(_fsck_messages(err))
        objects = self.path / "objects"
        for path in loose:
            target = objects / path.parent.name / path.name
            target.parent.mkdir(exist_ok=True)
            if not target.exists():
                os.replace(path, target)

    def attribute_values(
        self, base_commit: str | None, edits: Iterable[FileEdit], attribute: str, paths: list[str]
    ) -> dict[str, str]:
        """The value of a gitattribute ('lfs', 'set', 'unspecified', …) for each path, as git
        itself resolves the `.gitattributes` files of `base_commit` with `edits` applied."""
        if not paths:
            return {}
        with self._scratch_index(base_commit, edits) as env:
            # A bare repository has no work tree: --cached reads .gitattributes from the index.
            out = self._run(
                "check-attr",
                "--cached",
                "-z",
                "--stdin",
                attribute,
                stdin="".join(f"{p}\0" for p in paths).encode(),
                env=env,
            )
        tokens = out.decode(errors="replace").split("\0")
        return {path: value for path, _, value in zip(tokens[0::3], tokens[1::3], tokens[2::3], strict=False)}

    def commit_tree(
        self, tree: str, parents: list[str], message: str, *, author: Person, committer: Person
    ) -> str:
        env = {**os.environ, **_identity_env(author, "AUTHOR"), **_identity_env(committer, "COMMITTER")}
        args = ["commit-tree", tree]
        for parent in parents:
            args += ["-p", parent]
        return self._text(*args, stdin=message.encode(), env=env).strip()

    # -- reading ------------------------------------------------------------------------

    def tree_of(self, commit: str) -> str:
        return self._text("rev-parse", f"{commit}^{{tree}}").strip()

    def _listing(self, treeish: str, *flags: str) -> bytes:
        """`git ls-tree -z --full-tree <flags> <treeish>`'s output. Kept for the process when
        `treeish` names an object by its full id (`<sha>` or `<sha>:<path>`), whose content
        never changes: the follow-ups of one ref move (cover, README, assembly, search
        index) each list the same head, and now share one listing of it."""
        key = (str(self.path), treeish, flags)
        # Never kept from a quarantine: a refused push's objects are gone once it ends.
        kept_here = not self.quarantine and _SHA_RE.fullmatch(treeish.partition(":")[0])
        if kept_here:
            with _LISTINGS_LOCK:
                kept = _LISTINGS.get(key)
                if kept is not None:
                    _LISTINGS.move_to_end(key)
                    return kept
        out = self._run("ls-tree", "-z", "--full-tree", *flags, "--end-of-options", treeish)
        if kept_here and len(out) <= LISTING_KEPT_BYTES:
            with _LISTINGS_LOCK:
                _LISTINGS[key] = out
                while len(_LISTINGS) > LISTINGS_KEPT:
                    _LISTINGS.popitem(last=False)
        return out

    def keep_listing(self, commit: str, listing: bytes) -> None:
        """Keep `listing` as `_listing(commit, "-r")` for the process: what another reader
        of `commit`'s objects (`ObjectReader.listing`) found, for the follow-ups that list
        it (a mirror's refresh has read its new head for its rules). Only once `commit`'s
        objects are in this repository: a quarantine's may still be refused."""
        if _SHA_RE.fullmatch(commit) and len(listing) <= LISTING_KEPT_BYTES:
            with _LISTINGS_LOCK:
                _LISTINGS[(str(self.path), commit, ("-r",))] = listing
                while len(_LISTINGS) > LISTINGS_KEPT:
                    _LISTINGS.popitem(last=False)

    def ls_tree(self, commit: str, path: str = "", *, recursive: bool = False) -> list[TreeEntry]:
        """Entries of the folder `path` ('' = root) at `commit`, with blob sizes."""
        flags = ("-l", "-r") if recursive else ("-l",)
        # A name that is not UTF-8 (git takes any bytes; the rules refuse them since, but
        # an older history may hold one) is shown with U+FFFD, as every listing shows it.
        out = self._listing(f"{commit}:{path}" if path else commit, *flags).decode(errors="replace")
        entries = []
        for record in out.split("\0"):
            if not record:
                continue
            meta, name = record.split("\t", 1)
            mode, kind, sha, size = meta.split()
            entries.append(
                TreeEntry(
                    path=f"{path}/{name}" if path else name,
                    mode=mode,
                    kind=_entry_kind(kind),
                    sha=sha,
                    size=None if size == "-" else int(size),
                )
            )
        return entries

    def blob_paths(self, commit: str) -> list[tuple[str, str]]:
        """(path, blob sha) of every file at `commit`."""
        out = self._listing(commit, "-r").decode(errors="replace")
        found = []
        for record in out.split("\0"):
            if record:
                meta, path = record.split("\t", 1)
                _, kind, sha = meta.split()
                if kind == "blob":
                    found.append((path, sha))
        return found

    def all_paths(self, commit: str) -> list[str]:
        """The path of every file and submodule at `commit` (what `ls-tree -r --name-only` lists);
        a path that is not UTF-8 keeps its bytes as surrogates, as the history walk reads it."""
        out = self._listing(commit, "-r").decode(errors="surrogateescape")
        return [record.split("\t", 1)[1] for record in out.split("\0") if record]

    def entry(self, commit: str, path: str) -> TreeEntry | None:
        """The tree entry at `path` in `commit`, or None if there is nothing there (nor can
        there be, at a path holding a NUL byte)."""
        if "\0" in path:
            return None
        # A name shown with U+FFFD (its bytes are not UTF-8) is looked up by git below, by
        # the bytes the path names: never found by what the listing shows in its place, so
        # a write never takes a shown name for the real one (a rename would copy it).
        if path and "/" not in path and "\ufffd" not in path and _SHA_RE.fullmatch(commit):
            # At the top: found in the listing of the root, which pages read anyway.
            try:
                return next((e for e in self.ls_tree(commit) if e.path == path), None)
            except GitError:  # no such commit or tree: nothing there, as below
                return None
        out = self._run(
            "ls-tree", "-l", "-z", "--full-tree", commit, "--", path, ok_codes=(0, 128), env=LITERAL_PATHSPECS
        )
        for record in out.decode(errors="replace").split("\0"):
            if not record:
                continue
            meta, found = record.split("\t", 1)
            if found == path:
                mode, kind, sha, size = meta.split()
                return TreeEntry(path, mode, _entry_kind(kind), sha, None if size == "-" else int(size))
        return None

    def has_object(self, sha: str) -> bool:
        return self._status("cat-file", "-e", sha) == 0

    def is_reachable(self, sha: str) -> bool:
        """Whether `sha` is a commit some branch or tag contains (part of the history
        people see, not an object left behind by a rewrite or a lost race)."""
        if not re.fullmatch(r"[0-9a-f]{40}", sha) or self._status("cat-file", "-e", f"{sha}^{{commit}}") != 0:
            return False
        out = self._run(
            "for-each-ref", "--count=1", "--format=%(refname)", "--contains", sha, "refs/heads/", "refs/tags/"
        )
        return bool(out.strip())

    def tree_entries(self, commit: str, *, sizes: bool = False) -> list[TreeEntry]:
        """Every file and submodule at `commit`, in one git process. `sizes` makes git
        read every blob's header, which costs on a large tree: ask only when needed."""
        entries = []
        for record in (
            self._listing(commit, *(["-l"] if sizes else []), "-r").decode(errors="replace").split("\0")
        ):
            if record:
                meta, path = record.split("\t", 1)
                mode, kind, sha, *size = meta.split()
                length = int(size[0]) if size and size[0] != "-" else None
                entries.append(TreeEntry(path=path, mode=mode, kind=_entry_kind(kind), sha=sha, size=length))
        return entries

    def object_reader(self) -> ObjectReader:
        """An `ObjectReader` of this repository, its git process started: one process for
        many reads. Use it as `with repo.object_reader() as reader:`, which ends the process
        when the block ends, whether it ends well or not (or call `close()`)."""
        return ObjectReader(self.path, env=self.quarantine)

    def gitlinks(self, commit: str) -> list[TreeEntry]:
        """The submodules pinned at `commit` (their `sha` is the pinned commit)."""
        return [entry for entry in self.tree_entries(commit) if entry.kind == "submodule"]

    def config_blob_entries(self, blob_sha: str) -> str | None:
        """`git config --list -z` of a config-format blob (.gitmodules), read by git
        itself; None when git cannot read it."""
        status, out, _ = self._execute("config", "--blob", blob_sha, "--list", "-z")
        return out.decode(errors="replace") if status == 0 else None

    def read_blob(self, sha: str) -> bytes:
        return self._run("cat-file", "blob", sha)

    def stream_blob(
        self, sha: str, *, start: int = 0, end: int | None = None, chunk_size: int = 64 * 1024
    ) -> Iterator[bytes]:
        """Yield bytes start..end (inclusive; end None = to the end) of a blob, streamed."""

        proc = subprocess.Popen(
            [git_binary(), "cat-file", "blob", sha],
            cwd=self.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        stdout = proc.stdout
        assert stdout is not None  # stdout=PIPE
        position = 0
        try:
            while chunk := stdout.read(chunk_size):
                chunk_end = position + len(chunk)
                if chunk_end > start:
                    piece = chunk[max(start - position, 0) :]
                    if end is not None and chunk_end > end + 1:
                        piece = piece[: len(piece) - (chunk_end - end - 1)]
                        yield piece
                        return
                    yield piece
                position = chunk_end
        finally:
            # The client may stop reading early: stop git too rather than fail.
            if proc.poll() is None:
                proc.kill()
            stdout.close()
            proc.wait()

    def commit(self, rev: str) -> Commit:
        commits = self.log(rev, limit=1)
        if not commits:
            raise GitError(f"no commit {rev}")
        return commits[0]

    def log(self, rev: str, *, path: str | None = None, skip: int = 0, limit: int = 30) -> list[Commit]:
        """Commits reachable from `rev`, newest first, with the files each one changed;
        with `path`, those that touched that path (literally: no pathspec magic)."""
        fmt = "%x1e%H%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B"
        args = [
            "log",
            "-z",
            "--name-status",
            "-M",
            f"--format={fmt}",
            f"--skip={skip}",
            f"-n{limit}",
            "--end-of-options",
            rev,
            "--",
        ]
        if path:
            args.append(path)
        out = self._run(*args, env=LITERAL_PATHSPECS).decode(errors="replace")
        return [_parse_log_record(r) for r in out.split("\x1e") if r.strip("\0\n")]

    def count_commits(self, rev: str, *, path: str | None = None, at_most: int | None = None) -> int:
        """The commits reachable from `rev` (touching `path`), counting no further than `at_most`."""
        return int(self._text(*_count_args(rev, path, at_most=at_most), env=LITERAL_PATHSPECS).strip())

    def log_and_count(
        self,
        rev: str,
        *,
        path: str | None = None,
        skip: int = 0,
        limit: int = 30,
        counted: tuple[str, int] | None = None,
        at_most: int | None = None,
    ) -> tuple[list[Commit], int | None]:
        """log() and count_commits() at once: the counting processes run while log reads
        its page, so a visit waits for the longer one, not the sum.

        `counted`: (sha, count) of an earlier head of this history with the same `path`
        (the branch before its last push). When that head is an ancestor of `rev`, only the
        commits since are counted: the whole of 10,000 commits costs several page reads,
        the few a push adds cost one process start. With a path, only when no merge arrived
        since: a merge's history simplification may drop older commits from a path's
        history, which adding counts would not see. Otherwise the whole history is counted,
        unless it has `at_most` commits or more: then the count is None (not counted).

        A history the commit-graph shows at least `at_most` commits deep (depth()) is not
        counted here at all: log() is the only process, and the total is what its page
        shows (an unfiltered first page holding all that arrived since `counted`) or None.
        """
        if counted is not None and not path and not skip:
            # The first page usually shows all that arrived since: then it is counted
            # there, and nothing else is read (not even the commit-graph).
            commits = self.log(rev, limit=limit)
            arrived = _arrived_on_page(commits, counted[0])
            if arrived is not None:
                return commits, counted[1] + arrived
            if at_most is not None and (self.depth(rev) or 0) >= at_most:
                return commits, None
            outputs = _outputs(self._start_since(rev, None, counted[0]))
            return commits, self._count_from(rev, None, counted, at_most, outputs)
        if at_most is not None and (self.depth(rev) or 0) >= at_most:
            return self.log(rev, path=path, skip=skip, limit=limit), None
        if counted is None:
            # Bounded, the count stops at `at_most` commits; a path's count then follows
            # over a history known to be short.
            counter = self._start(*_count_args(rev, None if at_most else path, at_most=at_most))
            try:
                commits = self.log(rev, path=path, skip=skip, limit=limit)
            finally:
                out = _output(counter)
            if out is None:
                raise GitError(f"git rev-list could not count the history of {rev}")
            total = int(out)
            return commits, total if at_most is None else self._short_count(rev, path, total, at_most)
        # A path's first page mostly shows every commit since that touched it: then the
        # page counts them, and only the commits since are listed beside it.
        from_page = path is not None and not skip
        started = self._start_since(rev, None if from_page else path, counted[0])
        try:
            commits = self.log(rev, path=path, skip=skip, limit=limit)
        finally:
            outputs = _outputs(started)
        if from_page:
            outputs[1] = _touched_on_page(commits, outputs[0], limit)
        return commits, self._count_from(rev, path, counted, at_most, outputs)

    def count_commits_since(self, rev: str, *, path: str | None, counted: tuple[str, int]) -> int:
        """count_commits(rev, path=path), from `counted`, an earlier head's count (as in
        log_and_count): only the commits since are counted when that can be exact."""
        total = self._count_from(rev, path, counted, None, _outputs(self._start_since(rev, path, counted[0])))
        assert total is not None  # with no bound (at_most), _count_from always counts
        return total

    def _start_since(self, rev: str, path: str | None, earlier: str) -> list[subprocess.Popen[bytes] | None]:
        """The processes that count what `rev` has and `earlier` has not (_count_from).
        Each commit with its parents: `earlier` is an ancestor of `rev` exactly when it is
        a parent of one of them. (It may be gone, after a force push and a gc: then
        this fails, and the history is counted as if never counted.)"""
        since = self._start("rev-list", "--parents", "--end-of-options", rev, f"^{earlier}", "--")
        return [since, self._start(*_count_args(rev, path, exclude=earlier)) if path else None]

    def _count_from(
        self,
        rev: str,
        path: str | None,
        counted: tuple[str, int],
        at_most: int | None,
        outputs: list[str | None],
    ) -> int | None:
        """`rev`'s count from an earlier head's and the outputs of _start_since's
        processes; counted again when that head is not an ancestor of `rev`."""
        earlier, earlier_count = counted
        new_commits, touched = outputs
        lines = [line.split() for line in (new_commits or "").splitlines()]
        on_top = any(earlier in line[1:] for line in lines)
        if on_top and not path:
            return earlier_count + len(lines)
        if on_top and path and all(len(line) <= 2 for line in lines):
            if touched is None:  # the page could not tell: counted now
                touched = self._text(*_count_args(rev, path, exclude=earlier), env=LITERAL_PATHSPECS)
            return earlier_count + int(touched)
        if at_most is None:
            return self.count_commits(rev, path=path)
        return self._short_count(rev, path, self.count_commits(rev, at_most=at_most), at_most)

    def _short_count(self, rev: str, path: str | None, whole: int, at_most: int) -> int | None:
        """The count of `rev`'s history (touching `path`) when `whole`, its length counted
        up to `at_most`, stopped short of it; None when it did not."""
        if whole >= at_most:
            return None
        return self.count_commits(rev, path=path) if path else whole

    def _start(self, *args: str) -> subprocess.Popen[bytes]:
        """`git <args>` started in the repository, for _output() to collect (history
        counts: paths are literal, as in log)."""
        return subprocess.Popen(
            [git_binary(), *args],
            cwd=self.path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_git_env({**UNFLUSHED, **self.quarantine, **LITERAL_PATHSPECS}),
        )

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        return self._status("merge-base", "--is-ancestor", ancestor, descendant) == 0

    def diff(self, base: str | None, head: str) -> list[ChangedFile]:
        """Files that differ between two commits (base None: the empty tree), with renames."""
        out = self._run(
            "diff-tree", "-r", "-z", "-M", "--raw", "--no-commit-id", base or EMPTY_TREE_SHA, head
        )
        tokens = out.decode(errors="replace").split("\0")
        changes = []
        i = 0
        while i < len(tokens) - 1:
            meta = tokens[i]
            if not meta.startswith(":"):
                i += 1
                continue
            old_mode, new_mode, old_sha, new_sha, status = meta[1:].split()
            letter = status[0]
            if letter in "RC":
                old_path, path = tokens[i + 1], tokens[i + 2]
                i += 3
            else:
                old_path, path = None, tokens[i + 1]
                i += 2
            changes.append(
                ChangedFile(
                    status=STATUS_NAMES.get(letter, letter),
                    path=path,
                    old_path=old_path,
                    old_sha=None if old_sha == ZERO_SHA else old_sha,
                    new_sha=None if new_sha == ZERO_SHA else new_sha,
                    old_mode=None if old_mode == "000000" else old_mode,
                    new_mode=None if new_mode == "000000" else new_mode,
                )
            )
        return changes

    def changed_paths(self, base: str, head: str) -> set[str]:
        out = self._run("diff-tree", "-r", "-z", "--name-only", "--no-commit-id", "--no-renames", base, head)
        return {p for p in out.decode(errors="replace").split("\0") if p}

    def blob_sizes(self, shas: Iterable[str]) -> dict[str, int]:
        wanted = [s for s in dict.fromkeys(shas) if s]
        if not wanted:
            return {}
        out = self._text(
            "cat-file", "--batch-check=%(objectname) %(objectsize)", stdin="\n".join(wanted).encode() + b"\n"
        )
        sizes = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                sizes[parts[0]] = int(parts[1])
        return sizes

    def unified_diff(self, old_sha: str | None, new_sha: str | None, *, context: int = 3) -> str:
        """A unified diff of two blobs (None: empty) as text."""
        old = old_sha or self.write_blob(b"")
        new = new_sha or self.write_blob(b"")
        out = self._run("diff", f"-U{context}", "--no-color", "--no-ext-diff", old, new, ok_codes=(0, 1))
        return out.decode(errors="replace")

    def new_commits(self, tips: list[str]) -> list[str]:
        """Commits reachable from `tips` and from no ref yet (what a push brings)."""
        if not tips:
            return []
        return self._text("rev-list", *tips, "--not", "--all").split()

    def commits_between(self, tips: list[str], exclusions: list[str]) -> list[str]:
        """Commits reachable from `tips` but not from `exclusions` (given as ^sha)."""
        if not tips:
            return []
        listing = "\n".join([*tips, *exclusions]).encode() + b"\n"
        return self._text("rev-list", "--stdin", stdin=listing).split()

    def blobs_added_by(self, commits: list[str]) -> list[tuple[str, str]]:
        """(blob sha, path) of every file the commits add or change, in one git process."""
        if not commits:
            return []
        out = self._run(
            "diff-tree",
            "--stdin",
            "-r",
            "-z",
            "--raw",
            "--no-commit-id",
            "--root",
            "-m",
            "--no-renames",
            stdin="\n".join(commits).encode() + b"\n",
        )
        tokens = out.decode(errors="replace").split("\0")
        found = []
        for meta, path in zip(tokens[0::2], tokens[1::2], strict=False):
            if not meta.startswith(":"):
                continue
            _, new_mode, _, new_sha, status = meta[1:].split()
            if status != "D" and new_sha != ZERO_SHA and new_mode.startswith("100"):
                found.append((new_sha, path))
        return list(dict.fromkeys(found))

    def _walk_changes(
        self, revisions: list[str], *, stdin: bool
    ) -> tuple[list[str], list[tuple[str, str, str, str]]]:
        """The commits a `git log` of `revisions` walks (newest first) and every change
        their diffs make, as (status letter, new mode, new sha, path): a merge's against
        each parent, a root commit's against nothing, no rename detection. One process."""
        if stdin:
            out = self._run(*WALK_ARGS, "--stdin", stdin="\n".join(revisions).encode() + b"\n")
        else:  # object ids and pseudo-options (--not --all), which git 2.39 takes only here
            out = self._run(*WALK_ARGS, *revisions)
        return _walked_changes(out)

    def commits_and_blobs(
        self, tips: list[str], exclusions: list[str]
    ) -> tuple[list[str], list[tuple[str, str]]]:
        """`commits_between(tips, exclusions)` and `blobs_added_by` those commits, in one
        git process (a `git log` of the same walk with each commit's raw diff)."""
        if not tips:
            return [], []
        commits, changes = self._walk_changes([*tips, *exclusions], stdin=True)
        found = [
            (sha, path)
            for status, mode, sha, path in changes
            if status != "D" and sha != ZERO_SHA and mode.startswith("100")
        ]
        return commits, list(dict.fromkeys(found))

    def new_commits_and_paths(self, tips: list[str]) -> tuple[list[str], list[str]]:
        """`new_commits(tips)` and `paths_changed_by` them, in one git process."""
        commits, changes = self.commits_and_changes(tips)
        return commits, list(dict.fromkeys(path for _, _, _, path in changes if path))

    def commits_and_changes(
        self, tips: list[str], *, exclusions: list[str] | None = None
    ) -> tuple[list[str], list[tuple[str, str, str, str]]]:
        """The commits reachable from `tips` and not from `exclusions` (given as ^sha; None:
        from no ref, what a push in quarantine brings), newest first, and every change their
        diffs make as (status letter, new mode, new sha, path). One git process."""
        if not tips:
            return [], []
        if exclusions is None:
            return self._walk_changes([*tips, "--not", "--all"], stdin=False)
        return self._walk_changes([*tips, *exclusions], stdin=True)

    def blob_to_file(self, sha: str, target: Path) -> None:
        """Write a blob's content to `target` without holding it in memory."""
        with target.open("wb") as out:
            for chunk in self.stream_blob(sha):
                out.write(chunk)

    def new_objects(self, tips: list[str], *, exclusions: list[str] | None = None) -> list[tuple[str, str]]:
        """(sha, path) of objects reachable from `tips` and not from `exclusions` (given as
        ^sha; None: from no ref yet)."""
        if not tips:
            return []
        if exclusions is None:
            out = self._run("rev-list", "--objects", *tips, "--not", "--all")
        else:
            out = self._run(
                "rev-list", "--objects", "--stdin", stdin="\n".join([*tips, *exclusions]).encode() + b"\n"
            )
        found = []
        # A path git took as bytes that are not UTF-8 is read as the walk reads it.
        for line in out.decode(errors="surrogateescape").splitlines():
            sha, _, path = line.partition(" ")
            found.append((sha, path))
        return found

    def read_blobs(self, shas: Iterable[str]) -> dict[str, bytes]:
        """The content of several (small) blobs, in one git process."""
        wanted = list(dict.fromkeys(shas))
        if not wanted:
            return {}
        out = self._run("cat-file", "--batch", stdin="\n".join(wanted).encode() + b"\n")
        found: dict[str, bytes] = {}
        position = 0
        while position < len(out):
            header_end = out.index(b"\n", position)
            parts = out[position:header_end].split()
            position = header_end + 1
            if len(parts) != 3:  # "<sha> missing"
                continue
            size = int(parts[2])
            if parts[1] == b"blob":
                found[parts[0].decode()] = out[position : position + size]
            position += size + 1
        return found

    def object_types_and_sizes(self, shas: Iterable[str]) -> dict[str, tuple[str, int]]:
        wanted = list(dict.fromkeys(shas))
        if not wanted:
            return {}
        out = self._text(
            "cat-file",
            "--batch-check=%(objectname) %(objecttype) %(objectsize)",
            stdin="\n".join(wanted).encode() + b"\n",
        )
        info = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3:
                info[parts[0]] = (parts[1], int(parts[2]))
        return info

    def paths_changed_by(self, commits: list[str]) -> list[str]:
        """Every path the given commits add or change, in one git process."""
        if not commits:
            return []
        out = self._run(
            "diff-tree",
            "--stdin",
            "-r",
            "-z",
            "--name-only",
            "--no-commit-id",
            "--root",
            "-m",
            stdin="\n".join(commits).encode() + b"\n",
        )
        return [p for p in dict.fromkeys(out.decode(errors="replace").split("\0")) if p]

    def refs(self) -> dict[str, str]:
        """Every ref and the object it holds, as `git for-each-ref` lists them. Read from
        the ref files when they plainly hold them (a mirror's refresh reads them after each
        fetch: a process costs more than the files); git is asked otherwise."""
        found = _refs_from_files(self.path)
        if found is not None:
            return found
        # git takes any bytes in a name: one that is not UTF-8 keeps its bytes as surrogates,
        # as the files' names do, for the rules to refuse by name (push_rules).
        out = self._run("for-each-ref", "--format=%(refname) %(objectname)").decode(errors="surrogateescape")
        return {name: sha for name, sha in (line.split(" ", 1) for line in out.splitlines() if line)}

    def upkeep_due(self) -> bool:
        """Whether the object store has piled up enough for `upkeep`: more than
        UPKEEP_PACKS packs (a mirror's refresh or a large push adds one each), or about
        git's own `gc.auto` count of loose objects (a commit from the web writes a few),
        estimated as git estimates it, from one of the 256 folders. Two listings, no
        process: asked after every ref move."""
        objects = self.path / "objects"
        try:
            with os.scandir(objects / "pack") as entries:
                packs = sum(1 for entry in entries if entry.name.endswith(".pack"))
        except FileNotFoundError:
            packs = 0
        if packs > UPKEEP_PACKS:
            # A long history's packs may stay many once rolled up (each at least twice the
            # next): due again only once half as many more have come as UPKEEP_PACKS.
            return packs - self._packs_left_by_upkeep() > UPKEEP_PACKS // 2
        try:
            with os.scandir(objects / "17") as entries:
                return sum(1 for _ in entries) > UPKEEP_LOOSE_IN_ONE_FOLDER
        except FileNotFoundError:
            return False

    def upkeep(self) -> bool:
        """Roll the small packs and the loose objects up into few packs (`git repack -d
        --geometric=2`: each pack at least twice the size of the next, the large one left
        as it is), so that every reader of the repository searches few. Nothing is
        dropped: every object of the packs rolled up, reachable or not, is in the new
        pack before the old ones go, and git's readers, a push or a fetch running
        meanwhile, find objects whose pack went in the new one. False, doing nothing, if
        another upkeep of this repository is running (a lock held while git runs; a
        worker killed outright lets it go while its git may still run, and two roll-ups
        at once lose nothing either)."""
        with open(self.path / UPKEEP_LOCK, "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            # -n: no `info/refs` and `objects/info/packs` for dumb HTTP, which the hub never serves.
            self._run("repack", "-d", "-n", "-q", "--geometric=2")
            # How many packs it left, for `upkeep_due`: in the lock file, written under it.
            lock.truncate(0)
            lock.write(str(len(list((self.path / "objects" / "pack").glob("*.pack")))))
        return True

    def _packs_left_by_upkeep(self) -> int:
        """How many packs the last `upkeep` left (0 if none ran or it cannot be read)."""
        try:
            return int((self.path / UPKEEP_LOCK).read_text() or 0)
        except (OSError, ValueError):
            return 0

    def refresh_commit_graph(self) -> None:
        """Add new commits to the commit-graph, with changed-path Bloom filters.

        Counting history and filtering it by path read the graph instead of every commit
        object: on 10,000 commits, 27 ms → 5 ms and 14 ms → 5 ms. `--split` appends a
        small layer for the new commits only (~2 ms). Purely an optimisation: a writer
        that loses the graph's lock to a concurrent one simply skips.
        """
        with self.commit_graph_refreshed():
            pass

    @contextmanager
    def commit_graph_refreshed(self) -> Iterator[None]:
        """`refresh_commit_graph` while the block runs, on the other core: git writes the
        graph's new layer while the block does what needs no graph (a ref move's other
        follow-ups). The block's end waits for git; GitError if git failed otherwise than
        by losing the lock (an exception of the block goes on instead)."""
        # Started by a thread of the process's own: the caller is held until git runs
        # (Python starts processes with vfork), ~0.5 ms on an idle machine and 1.5-3 ms
        # on a busy one, which the block spends on its own work instead (the start
        # releases the GIL). A thread made for it would hold the caller until it runs.
        starting = _git_starter().submit(
            subprocess.Popen,
            [
                git_binary(),
                "commit-graph",
                "write",
                "--reachable",
                "--changed-paths",
                "--split",
                "--no-progress",
            ],
            cwd=self.path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=_git_env(self.quarantine),
        )
        try:
            yield
        finally:
            try:
                proc: subprocess.Popen[bytes] = starting.result()
            except OSError as exc:
                failed: OSError | None = exc
            else:
                failed = None
                err = proc.communicate()[1]
        if failed is not None:
            raise GitError(f"git cannot start: {failed}")
        if proc.returncode not in (0, 128, 255):
            raise GitError(f"git commit-graph failed: {err.decode(errors='replace').strip()}")

    def depth(self, commit: str) -> int | None:
        """The number of commits on the longest line from `commit` down to a root, itself
        included, as the commit-graph records it (its topological level): `commit`'s
        history holds at least that many. Read from the graph's files, without a process;
        None when no graph holds `commit` (a commit since the last refresh_commit_graph)."""
        return _graph_level(self.path / "objects" / "info", commit)

    def fsck(self) -> tuple[bool, str]:
        status, out, err = self._execute("fsck", "--strict", "--no-progress")
        return status == 0, f"{out.decode(errors='replace')}\n{err}".strip()

    # -- merging and comparing across branches and repositories ---------------------------

    def merge_base(self, a: str, b: str, *, other: Repository | None = None) -> str | None:
        """The best common ancestor of `a` and `b`; `b` may live in `other`, whose objects
        are read in place (an alternate object directory), nothing is copied."""
        env = None
        if other is not None and other.path != self.path:
            env = {**os.environ, "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(other.path / "objects")}
        out = self._run("merge-base", a, b, env=env, ok_codes=(0, 1))
        return out.decode().strip() or None

    def merge_tree(self, ours: str, theirs: str, *, attributes_file: Path | None = None) -> MergeResult:
        """Merge two commits into a tree with `git merge-tree --write-tree`: no working copy,
        no index, nothing but new objects. The tree of a conflicted merge holds conflict
        markers and is only useful to say which paths conflict.

        `attributes_file` (a gitattributes file of the hub's) is how files are chosen to
        conflict as whole files (`merge=binary`): a bare repository reads no attributes
        from its trees, but it does read core.attributesFile.
        """
        env = None
        if attributes_file is not None:
            env = {
                **os.environ,
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": "core.attributesFile",
                "GIT_CONFIG_VALUE_0": str(attributes_file),
            }
        out = self._run("merge-tree", "--write-tree", "-z", ours, theirs, env=env, ok_codes=(0, 1))
        return _parse_merge_tree(out.decode(errors="replace"))

    def ahead_behind(self, ours: str, theirs: str, *, other: Repository | None = None) -> tuple[int, int]:
        """(commits only in `ours`, commits only in `theirs`). `theirs` may live in `other`:
        its objects are read in place (an alternate object directory), nothing is copied."""
        env = None
        if other is not None and other.path != self.path:
            env = {**os.environ, "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(other.path / "objects")}
        out = self._text("rev-list", "--left-right", "--count", f"{ours}...{theirs}", env=env)
        ahead, behind = out.split()
        return int(ahead), int(behind)

    def update_refs(
        self, updates: list[tuple[str, str | None, str | None]], *, message: str = "fabhub"
    ) -> None:
        """Apply (ref, new or None to delete, old or None if it must not exist) updates in
        one transaction: all of them, or none and RefMoved."""
        if not updates:
            return
        try:
            self._run("update-ref", "-m", message, "--stdin", stdin=_update_ref_input(updates))
        except GitError as exc:
            raise RefMoved(updates[0][0]) from exc

    def fetch_local(self, source: Repository, refspecs: list[str]) -> None:
        """Fetch from another repository of this hub (a fork's branch into its upstream)."""
        self._run(
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--no-recurse-submodules",
            "--end-of-options",
            str(source.path),
            *refspecs,
        )

    # -- remotes (addresses checked by designs.remotes) ---------------------------------------

    def _run_remote(
        self,
        access: RemoteAccess,
        *args: str,
        ok_codes: tuple[int, ...] = (0,),
        env: dict[str, str] | None = None,
        config: list[tuple[str, str]] | None = None,
    ) -> tuple[int, str, str]:
        proc = self._start_remote(access, *args, env=env, config=config)
        return _remote_result(proc, access, args[0], ok_codes)

    def _start_remote(
        self,
        access: RemoteAccess,
        *args: str,
        env: dict[str, str] | None = None,
        config: list[tuple[str, str]] | None = None,
    ) -> subprocess.Popen[bytes]:
        """`git <args>` talking to a remote, started; `_remote_result` waits for it."""
        return subprocess.Popen(
            [git_binary(), "--git-dir", str(self.path), *args],
            env={**remote_env(access, config=config), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )

    def fetch_remote(self, access: RemoteAccess, refspecs: list[str], *, prune: bool = True) -> None:
        """Fetch `refspecs` from a remote. Nothing is written to the repository's config:
        the address and any credential exist only for this one command."""
        args = ["fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--no-recurse-submodules"]
        if prune:
            args.append("--prune")
        self._run_remote(access, *args, "--end-of-options", access.url, *refspecs)

    @contextmanager
    def fetch_quarantined(
        self, access: RemoteAccess, refspecs: list[str], *, publish_message: str
    ) -> Iterator[FetchQuarantine]:
        """Fetch `refspecs` from a remote, holding the objects that arrive in a quarantine
        (as git's receive-pack does for a push) until the caller `admit`s them: a
        Repository reading them is `.repo`. Not admitted, they are deleted when the block
        ends, and the refs the fetch moved point at nothing: the caller puts them back
        (a crash leaves its folder behind, `QUARANTINE_PREFIX`, for the next fetch to see).
        The block's `.walk` lists the new commits and their changes, its `.reader` reads
        them, and its `.publish` moves this repository's refs once they are admitted (an
        update-ref logging `publish_message`; not asked, it moves none): all three started
        just after the fetch, their start-up hidden by its wait.
        """
        objects = self.path / "objects"
        with tempfile.TemporaryDirectory(prefix=QUARANTINE_PREFIX, dir=objects) as tmp, ExitStack() as ends:
            env = {"GIT_OBJECT_DIRECTORY": tmp, "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(objects)}
            quarantined = Repository(self.path, quarantine=env)
            args = ["fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--no-recurse-submodules"]
            fetch = self._start_remote(
                access,
                *args,
                "--prune",
                "--end-of-options",
                access.url,
                *refspecs,
                env=env,
                # The alternate is this repository itself, whose refs the fetch reads
                # anyway: git would start `for-each-ref` in it twice more (for its
                # negotiation and its connectivity check) to learn the same tips.
                config=[("core.alternateRefsCommand", NO_ALTERNATE_REFS)],
            )
            ends.callback(_stopped, fetch)  # if starting the others fails; else it has ended
            # Started while the fetch waits for the remote, their start-up costs no wait;
            # they read the pack the fetch writes (git looks for new packs when an object
            # is missing), and end before the quarantine goes.
            walk = ends.enter_context(ChangeWalk(quarantined))
            reader = ends.enter_context(quarantined.object_reader())
            publish = ends.enter_context(RefUpdates(self, publish_message))
            _remote_result(fetch, access, "fetch", (0,))
            yield FetchQuarantine(quarantined, Path(tmp), objects, walk, reader, publish)

    def left_quarantines(self) -> list[Path]:
        """Folders of fetches that ended without cleaning up (a killed process)."""
        return sorted((self.path / "objects").glob(f"{QUARANTINE_PREFIX}*"))

    def push_remote(self, access: RemoteAccess, refspecs: list[str]) -> tuple[list[PushedRef], str]:
        """Push `refspecs` (never forced unless a refspec says +); return what the remote
        did with each ref, and the remote's own messages."""
        _, out, err = self._run_remote(
            access, "push", "--porcelain", "--end-of-options", access.url, *refspecs, ok_codes=(0, 1)
        )
        pushed = []
        for line in out.splitlines():
            flag, tab, rest = line.partition("\t")
            if not tab or len(flag) != 1:
                continue
            refs, _, summary = rest.partition("\t")
            pushed.append(PushedRef(ref=refs.rpartition(":")[2], ok=flag != "!", summary=summary))
        remote_says = "\n".join(
            line[len("remote: ") :] for line in err.splitlines() if line.startswith("remote: ")
        )
        return pushed, remote_says.strip()

    def remote_default_branch(self, access: RemoteAccess) -> str | None:
        """The branch the remote's HEAD names, or None."""
        _, out, _ = self._run_remote(access, "ls-remote", "--symref", "--end-of-options", access.url, "HEAD")
        for line in out.splitlines():
            if line.startswith("ref: refs/heads/") and line.endswith("\tHEAD"):
                return line[len("ref: refs/heads/") : -len("\tHEAD")]
        return None

    # -- bundles as streams (account archives: designs/services/archives.py) --------------

    @contextmanager
    def bundle_stream(self) -> Iterator[IO[bytes] | None]:
        """`git bundle create -` of every branch and tag, read as it is written (no file
        on disk), or None when there is no branch or tag (git writes no empty bundle);
        GitError when the block ends if git failed."""
        # Only a repository with no ref file at all is asked (a process) whether it is empty.
        if not _has_ref_files(self.path) and not self.ref_names("refs/heads/", "refs/tags/"):
            yield None
            return
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(
                [git_binary(), "--git-dir", str(self.path), "bundle", "create", "--quiet", "-"]
                + ["--branches", "--tags"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
            )
            assert proc.stdout is not None  # stdout=PIPE
            try:
                yield proc.stdout
            finally:
                if proc.poll() is None and proc.stdout.read(1):
                    proc.kill()  # the reader stopped early
                proc.stdout.close()
                status = proc.wait()
            if status != 0:
                err.seek(0)
                raise GitError(f"git bundle failed: {_tail(err.read().decode(errors='replace'))}")

    def index_pack(self, pack: IO[bytes], *, meanwhile: Callable[[], None] | None = None) -> None:
        """Store the pack read from `pack` (a bundle's body), checking every object with
        git's strict checks as it is indexed, and that every object one links to is in
        the pack (`index-pack --strict`, what receive.fsckObjects runs on a push): one
        pass where fetching a bundle and `fsck --strict` made two. GitError naming what
        the checks refuse.

        `meanwhile` runs once git has the whole pack, while it resolves deltas and checks
        objects (most of its time): an import stores the design's LFS objects then. If
        it raises, git is stopped and the exception goes on."""
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(
                [git_binary(), "--git-dir", str(self.path), "index-pack", "--strict", "--stdin"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
            assert proc.stdin is not None  # stdin=PIPE
            try:
                try:
                    while chunk := pack.read(1024 * 1024):
                        proc.stdin.write(chunk)
                    proc.stdin.close()
                except BrokenPipeError:
                    pass  # git stopped reading: its status and messages say why
                else:
                    if meanwhile is not None:
                        meanwhile()
            except BaseException:
                proc.kill()
                raise
            finally:
                status = proc.wait()
            if status != 0:
                err.seek(0)
                text = err.read().decode(errors="replace")
                found = re.findall(r"^(?:error|fatal): (.+)$", text, flags=re.M)
                raise GitError(
                    "; ".join(line[:300] for line in list(dict.fromkeys(found))[:5]) or _tail(text)
                )

    def object_inventory(
        self, tips: Iterable[str], *, meanwhile: Callable[[], None] | None = None
    ) -> ObjectInventory:
        """Every object the repository holds, against what `tips` reach: how many of each,
        the commits reached, and each blob reached (sha, the first path it was met at,
        size). Two git processes at once, `rev-list --objects` walking from the tips and
        `cat-file --batch-all-objects` listing every object's type and size; `meanwhile`
        runs while they work (an import sets its refs to the tips then). If it raises,
        git is stopped and the exception goes on."""
        with (
            tempfile.TemporaryFile() as wanted,
            tempfile.TemporaryFile() as reached,
            tempfile.TemporaryFile() as every,
            tempfile.TemporaryFile() as err,
        ):
            wanted.write("".join(f"{tip}\n" for tip in tips).encode())
            wanted.seek(0)
            git = [git_binary(), "--git-dir", str(self.path)]
            procs = [
                subprocess.Popen(
                    [*git, "rev-list", "--objects", "--stdin"], stdin=wanted, stdout=reached, stderr=err
                ),
                subprocess.Popen(
                    [*git, "cat-file", "--batch-all-objects", "--unordered"]
                    + ["--batch-check=%(objectname) %(objecttype) %(objectsize)"],
                    stdin=subprocess.DEVNULL,
                    stdout=every,
                    stderr=err,
                ),
            ]
            try:
                if meanwhile is not None:
                    meanwhile()
            except BaseException:
                for proc in procs:
                    proc.kill()
                raise
            finally:
                failed = [proc.wait() for proc in procs] != [0, 0]
            if failed:
                err.seek(0)
                raise GitError(
                    f"git could not list the objects: {_tail(err.read().decode(errors='replace'))}"
                )
            every.seek(0)
            kinds: dict[bytes, tuple[bytes, int]] = {}
            for line in every:
                name, kind, size = line.split()
                kinds[name] = (kind, int(size))
            inventory = ObjectInventory(objects=len(kinds))
            reached.seek(0)
            for line in reached:
                sha, _, path = line.rstrip(b"\n").partition(b" ")
                if sha not in kinds:
                    raise GitError(f"git rev-list reached {sha[:40]!r}, which the repository does not hold")
                kind, length = kinds[sha]
                inventory.reachable += 1
                if kind == b"commit":
                    inventory.commits.append(sha.decode())
                elif kind == b"blob":
                    inventory.blobs.append((sha.decode(), path.decode(errors="replace"), length))
        return inventory


@dataclass
class ObjectInventory:
    """What `Repository.object_inventory` found."""

    objects: int
    reachable: int = 0
    commits: list[str] = field(default_factory=list)
    blobs: list[tuple[str, str, int]] = field(default_factory=list)


# Requests written before their answers are read: well under a pipe's buffer, so writing
# never waits for git, which may itself be waiting for its answers to be read.
REQUEST_CHUNK_BYTES = 16 * 1024
ONE_WORD = re.compile(r"\S+")


class ObjectReader:
    """One `git cat-file --batch-command` process (git ≥ 2.36; `merge_tree` already needs
    2.38) asked for objects in turn: a commit's files listed by reading its trees, blobs
    read only when they fit a limit (their size asked first), the releases. What reading
    one commit of a design takes, in one git process instead of one per question.

    Open it with `Repository.object_reader()`; it is a context manager that always ends
    the process."""

    def __init__(self, path: Path, *, env: dict[str, str] | None = None) -> None:
        self.path = path
        self._stderr = tempfile.TemporaryFile()
        # Started by the process's git-starting thread: the caller goes on meanwhile
        # (Python's vfork holds it until git runs) and meets git at its first question.
        self._starting = _git_starter().submit(
            subprocess.Popen,
            [git_binary(), "cat-file", "--batch-command"],
            cwd=path,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env={**os.environ, **env} if env else None,
        )
        self._pipes: tuple[IO[bytes], IO[bytes]] | None = None
        # One commit's files at a time, by its id (a commit's content never changes): a
        # mirror's refresh lists its new head twice (its rules, then `listing`), and the
        # rules list every tip, so every listing kept would hold one per tag at once.
        self._listed: tuple[str, list[tuple[bytes, str, str]]] | None = None
        self._keep: str | None = None

    def __enter__(self) -> ObjectReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """End the process (again: nothing happens)."""
        try:
            proc = self._starting.result()
        except OSError:
            self._stderr.close()
            return  # never started
        # The reading end closed first: a git still writing an answer nobody reads stops
        # (a broken pipe) rather than wait; with its input closed too, it ends.
        for pipe in (proc.stdout, proc.stdin):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass
        proc.wait()
        self._stderr.close()

    def _started(self) -> tuple[IO[bytes], IO[bytes]]:
        """git's input and output, once it runs; GitError if it could not start."""
        if self._pipes is None:
            try:
                proc = self._starting.result()
            except OSError as exc:
                raise GitError(f"git cannot start: {exc}") from exc
            assert proc.stdin is not None and proc.stdout is not None  # PIPE
            self._pipes = proc.stdin, proc.stdout
        return self._pipes

    def _failed(self) -> GitError:
        self._stderr.seek(0)
        return GitError(f"git cat-file stopped: {_tail(self._stderr.read().decode(errors='replace'))}")

    def _ask(self, verb: str, names: list[str]) -> list[tuple[str, str, bytes | int] | None]:
        """git's answer to `<verb> <name>` for each name, in order: (sha, type, content) for
        "contents", (sha, type, size) for "info", None when there is no such object."""
        if not all(ONE_WORD.fullmatch(name) for name in names):
            raise GitError("an object name must be one word")
        answers: list[tuple[str, str, bytes | int] | None] = []
        stdin, _ = self._started()
        at = 0
        while at < len(names):
            chunk: list[bytes] = []
            size = 0
            while at < len(names) and size < REQUEST_CHUNK_BYTES:
                chunk.append(f"{verb} {names[at]}\n".encode())
                size += len(chunk[-1])
                at += 1
            try:
                stdin.write(b"".join(chunk))
                stdin.flush()
            except OSError as exc:
                raise self._failed() from exc
            answers += [self._answer(verb) for _ in chunk]
        return answers

    def _answer(self, verb: str) -> tuple[str, str, bytes | int] | None:
        _, stdout = self._started()
        header = stdout.readline()
        if not header.endswith(b"\n"):
            raise self._failed()
        parts = header.split()
        if len(parts) != 3 or not parts[2].isdigit():  # "<name> missing", "<name> ambiguous"
            return None
        sha, kind, size = parts[0].decode(), parts[1].decode(), int(parts[2])
        if verb == "info":
            return sha, kind, size
        data = stdout.read(size)
        if len(data) != size or stdout.read(1) != b"\n":
            raise self._failed()
        return sha, kind, data

    def _contents(self, names: list[str]) -> list[tuple[str, str, bytes] | None]:
        answers = self._ask("contents", names)
        return [(a[0], a[1], a[2]) if a is not None and isinstance(a[2], bytes) else None for a in answers]

    def tree_entries(self, commit: str) -> list[TreeEntry]:
        """Every file and submodule at `commit`, as `Repository.tree_entries` lists them
        (without sizes: `blob_sizes` asks for the few that matter), each tree read once."""
        return [
            TreeEntry(
                path=path.decode(errors="replace"),
                mode=mode,
                kind="submodule" if mode == SUBMODULE_MODE else "blob",
                sha=sha,
                size=None,
            )
            for path, mode, sha in self._files(commit)
        ]

    def all_paths(self, commit: str) -> list[str]:
        """`Repository.all_paths(commit)` read by this process: the same paths in the same
        order, bytes that are not UTF-8 kept as surrogates."""
        return [path.decode(errors="surrogateescape") for path, _, _ in self._files(commit)]

    def listing(self, commit: str) -> bytes:
        """What `git ls-tree -z --full-tree -r <commit>` prints (`Repository._listing`),
        read by this process: for `Repository.keep_listing`."""
        return b"".join(
            b"%s %s %s\t%s\0"
            % (mode.encode(), b"commit" if mode == SUBMODULE_MODE else b"blob", sha.encode(), path)
            for path, mode, sha in self._files(commit)
        )

    def keep_files(self, commit: str) -> None:
        """Keep `commit`'s files once they are read, until the reader closes, rather than
        the last commit's listed: what a caller will list again after listing others (a
        mirror's new head, read by its rules among every tip, then by `listing`)."""
        self._keep = commit

    def _files(self, commit: str) -> list[tuple[bytes, str, str]]:
        """(path, mode, sha) of every file and submodule at `commit`, in `ls-tree -r`'s order.
        One listing is held at most: the commit `keep_files` named, or else the last read."""
        if not _SHA_RE.fullmatch(commit):
            return self._read_files(commit)  # a name that may move
        if self._listed is not None and self._listed[0] == commit:
            return self._listed[1]
        files = self._read_files(commit)
        if self._keep is None or self._keep == commit:
            self._listed = commit, files
        return files

    def _read_files(self, commit: str) -> list[tuple[bytes, str, str]]:
        ((root, items),) = self._root_trees([commit])
        trees = {root: items}
        pending = [root]
        while pending:
            wanted = [
                sha
                for parent in pending
                for mode, _, sha in trees[parent]
                if mode == TREE_MODE and sha not in trees
            ]
            trees.update(self._trees(wanted))
            pending = list(dict.fromkeys(wanted))
        # Depth first in git's order, without recursion: a hostile tree may nest deep.
        files = []
        stack: list[tuple[bytes, Iterator[tuple[str, bytes, str]]]] = [(b"", iter(trees[root]))]
        while stack:
            prefix, entries = stack[-1]
            item = next(entries, None)
            if item is None:
                stack.pop()
                continue
            mode, name, sha = item
            if mode == TREE_MODE:
                stack.append((prefix + name + b"/", iter(trees[sha])))
            else:
                files.append((prefix + name, mode, sha))
        return files

    def tree_changes(self, old: str, new: str) -> dict[str, tuple[str | None, str | None]]:
        """The files and submodules whose entry differs between commits `old` and `new`,
        as path → (mode at `old`, mode at `new`), None where there is none: what
        `git diff-tree -r old new` lists. Only the trees whose ids differ are read."""
        changes: dict[str, tuple[str | None, str | None]] = {}
        (old_root, old_items), (new_root, new_items) = self._root_trees([old, new])
        trees = {old_root: old_items, new_root: new_items}
        # (folder, its tree at old, at new), None where the folder is no tree there.
        level: list[tuple[bytes, str | None, str | None]] = [(b"", old_root, new_root)]
        while level:
            below = []
            for folder, old_tree, new_tree in level:
                before = {name: (mode, sha) for mode, name, sha in trees.get(old_tree or "", [])}
                after = {name: (mode, sha) for mode, name, sha in trees.get(new_tree or "", [])}
                for name in dict.fromkeys([*before, *after]):
                    was, now = before.get(name), after.get(name)
                    if was == now:
                        continue
                    path = folder + name
                    old_sub = was[1] if was is not None and was[0] == TREE_MODE else None
                    new_sub = now[1] if now is not None and now[0] == TREE_MODE else None
                    if old_sub is not None or new_sub is not None:
                        below.append((path + b"/", old_sub, new_sub))
                    old_mode = was[0] if was is not None and old_sub is None else None
                    new_mode = now[0] if now is not None and new_sub is None else None
                    if old_mode is not None or new_mode is not None:
                        changes[path.decode(errors="surrogateescape")] = (old_mode, new_mode)
            trees.update(self._trees([sha for _, *pair in below for sha in pair if sha and sha not in trees]))
            level = below
        return changes

    def _root_trees(self, commits: list[str]) -> list[tuple[str, list[tuple[str, bytes, str]]]]:
        """(sha, entries) of the root tree of each of `commits`, read in one request."""
        roots = []
        for commit, found in zip(commits, self._contents([f"{c}^{{tree}}" for c in commits]), strict=True):
            if found is None or found[1] != "tree":
                raise GitError(f"no commit {commit}")
            roots.append((found[0], _tree_items(found[2], len(found[0]) // 2)))
        return roots

    def _trees(self, shas: list[str]) -> dict[str, list[tuple[str, bytes, str]]]:
        """The entries of each tree of `shas`, read in one request."""
        wanted = list(dict.fromkeys(shas))
        trees = {}
        for sha, found in zip(wanted, self._contents(wanted), strict=True):
            if found is None or found[1] != "tree":
                raise GitError(f"tree {sha} is missing")
            trees[sha] = _tree_items(found[2], len(sha) // 2)
        return trees

    def peeled_types(self, names: list[str]) -> list[str | None]:
        """The type of the object each of `names` peels to (a tag followed to what it
        tags, as `name^{}` is), in order; None where there is no such object."""
        answers = self._ask("info", [f"{name}^{{}}" for name in names])
        return [answer[1] if answer is not None else None for answer in answers]

    def blob_sizes(self, shas: Iterable[str]) -> dict[str, int]:
        """The size of each blob among `shas`, without reading it."""
        wanted = list(dict.fromkeys(shas))
        return {
            sha: found[2]
            for sha, found in zip(wanted, self._ask("info", wanted), strict=True)
            if found is not None and found[1] == "blob" and isinstance(found[2], int)
        }

    def read_blobs(self, limits: dict[str, int]) -> dict[str, bytes | None]:
        """The content of each blob of `limits` (sha → its limit in bytes) that is no
        larger than its limit; None for a larger one, which git is never asked to read.
        Missing ones are left out."""
        sizes = self.blob_sizes(limits)
        small = [sha for sha, size in sizes.items() if size <= limits[sha]]
        found: dict[str, bytes | None] = dict.fromkeys(sizes)
        for sha, answer in zip(small, self._contents(small), strict=True):
            if answer is not None:
                found[sha] = answer[2]
        return found

    def tags(self) -> list[Tag]:
        """What `Repository.tags()` answers — the same releases, in the same order — with
        the names read from the ref files and each tag object from this process."""
        names = _tag_names(self.path)
        tags: list[tuple[int, str, Tag]] = []
        for name, found in zip(names, self._contents([f"refs/tags/{name}" for name in names]), strict=True):
            if found is None:
                continue  # a broken ref: for-each-ref leaves it out too
            sha, kind, data = found
            headers, _, body = data.partition(b"\n\n")
            fields = {
                key: value
                for key, _, value in (
                    line.partition(" ") for line in headers.decode(errors="replace").split("\n")
                )
            }
            message = body.decode(errors="replace").strip() if kind in ("tag", "commit") else ""
            if kind == "tag":
                # One level, as for-each-ref's %(*objectname) peels.
                target = fields.get("object", sha)
                person, created = _ident(fields.get("tagger", ""))
                tagger = person if person is not None and person.name else None
                tag = Tag(name=name, target=target, message=message, tagger=tagger, tagged_at=created)
            else:
                _, created = _ident(fields.get("committer", "")) if kind == "commit" else (None, None)
                tag = Tag(name=name, target=sha, message=message, tagger=None, tagged_at=None)
            tags.append((int(created.timestamp()) if created else 0, f"refs/tags/{name}", tag))

        # --sort=-v:refname --sort=-creatordate: newest first, then newest version first.
        def order(a: tuple[int, str, Tag], b: tuple[int, str, Tag]) -> int:
            return (b[0] > a[0]) - (b[0] < a[0]) or _versioncmp(b[1], a[1])

        return [tag for _, _, tag in sorted(tags, key=cmp_to_key(order))]


TREE_MODE = "040000"


WALK_ARGS = (
    "log",
    "--format=%x01%H",
    "-z",
    "--raw",
    "--no-abbrev",
    "--root",
    "-m",
    "--no-renames",
    "--no-show-signature",
)


def _walked_changes(out: bytes) -> tuple[list[str], list[tuple[str, str, str, str]]]:
    """`Repository._walk_changes`'s answer from the output of `git <WALK_ARGS>`."""
    # A path git took as bytes that are not UTF-8 keeps them as surrogates, for the
    # rules to refuse by name (paths.clean_path), as ref names do (Repository.refs).
    tokens = out.decode(errors="surrogateescape").split("\0")
    commits, changes = [], []
    i = 0
    while i < len(tokens):
        token = tokens[i].lstrip("\n")
        if token.startswith("\x01"):
            commits.append(token[1:])  # a merge comes once per parent (-m)
            i += 1
        elif token.startswith(":") and i + 1 < len(tokens):
            _, new_mode, _, new_sha, status = token[1:].split()
            changes.append((status[0], new_mode, new_sha, tokens[i + 1]))
            i += 2
        else:
            i += 1
    return list(dict.fromkeys(commits)), changes


class _StartedGit:
    """A git process started before its input is known, so that git's start-up (~1 ms of
    CPU) runs while the caller does something else (a mirror's refresh: waits for its
    fetch, checks what it brought): given its input once (`_finish`), or stopped unasked
    by `close`. Started by `_git_starter`'s thread: the caller is not held while it
    starts."""

    def __init__(self, path: Path, args: list[str], env: dict[str, str] | None) -> None:
        self._starting = _git_starter().submit(
            subprocess.Popen,
            [git_binary(), *args],
            cwd=path,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_git_env(env),
        )
        self._done = False

    def _process(self) -> subprocess.Popen[bytes]:
        try:
            return self._starting.result()
        except OSError as exc:
            raise GitError(f"git cannot start: {exc}") from exc

    def _finish(self, stdin: bytes) -> tuple[int, bytes, str]:
        if self._done:
            raise GitError("this git process has been asked already")
        self._done = True
        proc = self._process()
        out, err = proc.communicate(stdin)
        return proc.returncode, out, err.decode(errors="replace")

    def close(self) -> None:
        self._done = True
        try:
            proc = self._process()
        except GitError:
            return  # never started: nothing to end
        if proc.poll() is None:
            # Never given input, it has done nothing yet (an update-ref takes no lock
            # before its first command), and what it would do with none is not wanted
            # (a walk would walk HEAD); given part of it (the caller was interrupted), it
            # must not act on that part. Stopped, as subprocess.run stops its process.
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ChangeWalk(_StartedGit):
    """`Repository.commits_and_changes(tips, exclusions=…)` by a `git log --stdin` started
    before the tips are known (`Repository.fetch_quarantined` starts one while it fetches,
    for the rules that check what the fetch brings)."""

    def __init__(self, repo: Repository) -> None:
        super().__init__(repo.path, [*WALK_ARGS, "--stdin"], repo.quarantine)
        self._begun: tuple[list[str], list[str]] | None = None

    def begin(self, tips: list[str], *, exclusions: list[str]) -> None:
        """Give git the tips now and go on: it walks while the caller asks other processes
        (the rules read the new tips' trees meanwhile); `commits_and_changes`, asked with
        the same tips, collects the answer."""
        if tips and not self._done:
            self._done = True
            proc = self._process()
            assert proc.stdin is not None  # stdin=PIPE
            try:
                proc.stdin.write(_walk_input(tips, exclusions))
                proc.stdin.close()
            except BrokenPipeError:
                # git stopped reading (a bad revision, or it died): its status and message
                # tell why when the answer is collected, as communicate() would.
                pass
            proc.stdin = None  # given: communicate() has nothing more to send
            self._begun = (tips, exclusions)

    def commits_and_changes(
        self, tips: list[str], *, exclusions: list[str] | None = None
    ) -> tuple[list[str], list[tuple[str, str, str, str]]]:
        if exclusions is None:
            raise GitError("a started walk takes its exclusions as ^<sha>")
        if not tips:
            self.close()  # with no revision on its input, git would walk HEAD
            return [], []
        if self._begun is not None:
            if self._begun != (tips, exclusions):
                raise GitError("this walk was begun with other tips")
            proc = self._process()
            out, err_bytes = proc.communicate()
            status, err = proc.returncode, err_bytes.decode(errors="replace")
        else:
            status, out, err = self._finish(_walk_input(tips, exclusions))
        if status != 0:
            raise GitError(f"git log failed: {err.strip()}")
        return _walked_changes(out)


def _stopped(proc: subprocess.Popen[bytes]) -> None:
    """`proc` ended unless it was waited for already: killed, its pipes read and closed."""
    if proc.returncode is None:
        proc.kill()
        proc.communicate()


def _walk_input(tips: list[str], exclusions: list[str]) -> bytes:
    return ("\n".join([*tips, *exclusions]) + "\n").encode()


class RefUpdates(_StartedGit):
    """`Repository.update_refs` by a `git update-ref --stdin` started before the updates
    are known (a mirror's refresh starts one as it checks what its fetch brought).
    Ended unasked, it updates nothing."""

    def __init__(self, repo: Repository, message: str) -> None:
        super().__init__(repo.path, ["update-ref", "-m", message, "--stdin"], repo.quarantine)

    def apply(self, updates: list[tuple[str, str | None, str | None]]) -> None:
        """`Repository.update_refs(updates)`: all of them, or none and RefMoved."""
        if not updates:
            self.close()
            return
        status, _, _ = self._finish(_update_ref_input(updates))
        if status != 0:
            raise RefMoved(updates[0][0])


def _remote_result(
    proc: subprocess.Popen[bytes], access: RemoteAccess, command: str, ok_codes: tuple[int, ...]
) -> tuple[int, str, str]:
    """(status, stdout, stderr) of a `Repository._start_remote` process once it ends; stopped
    after the remote's time limit. GitError if it failed."""
    try:
        out_bytes, err_bytes = proc.communicate(timeout=access.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise GitError(
            f"git {command} took longer than {access.timeout} s and was stopped.", retryable=True
        ) from None
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    out, err = (
        out_bytes.decode(errors="replace"),
        without_alternate_refs_complaint(err_bytes.decode(errors="replace")),
    )
    if proc.returncode not in ok_codes:
        raise GitError(f"git {command} failed: {_tail(err)}", retryable=_retryable(err))
    return proc.returncode, out, err


def without_alternate_refs_complaint(err: str) -> str:
    """git's messages without its "cannot run" about `NO_ALTERNATE_REFS` (no reason worth
    showing): only that line, never one that merely names it (a remote's address may)."""
    complaint = f"error: cannot run {NO_ALTERNATE_REFS}: "
    return "".join(line for line in err.splitlines(True) if not line.startswith(complaint))


_STARTER: ThreadPoolExecutor | None = None
_STARTER_LOCK = threading.Lock()


def _git_starter() -> ThreadPoolExecutor:
    """The thread that starts git processes a caller need not wait for (one per process)."""
    global _STARTER
    with _STARTER_LOCK:
        if _STARTER is None:
            _STARTER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fabhub-git-start")
        return _STARTER


def _forget_git_starter() -> None:
    """In a forked child (gunicorn --preload, a worker pool), the parent's starter thread
    does not exist: work submitted to its executor would wait for it forever. The child
    makes its own; the lock too, as a thread of the parent may have held it at the fork."""
    global _STARTER, _STARTER_LOCK
    _STARTER = None
    _STARTER_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_forget_git_starter)


def _update_ref_input(updates: list[tuple[str, str | None, str | None]]) -> bytes:
    """`git update-ref --stdin`'s commands for (ref, new or None to delete, old or None if
    it must not exist) updates."""
    lines = []
    for ref, new, old in updates:
        if new is None:
            lines.append(f"delete {ref} {old or ''}".rstrip())
        else:
            lines.append(f"update {ref} {new} {old or ZERO_SHA}")
    # A name git took as bytes that are not UTF-8 (kept as surrogates) goes back as them.
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")


def _tree_items(data: bytes, oid_length: int) -> list[tuple[str, bytes, str]]:
    """(mode, name, sha) of a raw tree object's entries; modes as ls-tree shows them."""
    items, at = [], 0
    try:
        while at < len(data):
            space = data.index(b" ", at)
            nul = data.index(b"\0", space)
            sha = data[nul + 1 : nul + 1 + oid_length]
            if len(sha) != oid_length:
                raise ValueError("short entry")
            items.append((_canonical_mode(int(data[at:space], 8)), data[space + 1 : nul], sha.hex()))
            at = nul + 1 + oid_length
    except ValueError as exc:
        raise GitError(f"a tree git cannot have written: {exc}") from exc
    return items


def _canonical_mode(mode: int) -> str:
    # git's canon_mode(): any mode it does not know is read as a gitlink.
    kind = mode & 0o170000
    if kind == 0o100000:
        return "100755" if mode & 0o100 else "100644"
    return {0o120000: "120000", 0o040000: TREE_MODE}.get(kind, SUBMODULE_MODE)


def _has_ref_files(git_dir: Path) -> bool:
    """Whether a branch or tag is written in the repository's ref files, loose or packed
    (whatever git makes of it: a broken one counts too)."""
    for kind in ("heads", "tags"):
        for _, dirs, files in os.walk(git_dir / "refs" / kind):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            if any(not f.startswith(".") and not f.endswith(".lock") for f in files):
                return True
    try:
        with (git_dir / "packed-refs").open("rb") as packed:
            return any(b" refs/heads/" in line or b" refs/tags/" in line for line in packed)
    except FileNotFoundError:
        return False


_SHA_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
# Branch names that git could read as nothing else: no revision syntax (~ ^ @ : ..), not
# a full object id (which git takes before any ref of that name).
_PLAIN_BRANCH_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/+-]*")


def _packed_refs(git_dir: Path) -> dict[str, str]:
    try:
        lines = (git_dir / "packed-refs").read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return {}
    refs = {}
    for line in lines:
        sha, _, ref = line.partition(" ")
        if ref and not line.startswith(("#", "^")):
            refs[ref] = sha
    return refs


def _refs_from_files(git_dir: Path) -> dict[str, str] | None:
    """Every ref under refs/ and the object id it holds, from the loose ref files, then
    packed-refs (a loose file wins): read in that order, a ref that `git pack-refs` moves
    meanwhile is found in one or the other. None (ask git) for anything unusual: a
    symbolic or unreadable ref, a name git would not take, a reftable repository."""
    if (git_dir / "reftable").exists():
        return None
    loose: dict[str, str] = {}
    root = git_dir / "refs"
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for file in files:
            if file.endswith(".lock"):
                continue
            name = "refs/" + Path(folder, file).relative_to(root).as_posix()
            try:
                value = Path(folder, file).read_text(errors="replace").strip()
            except FileNotFoundError:  # deleted, or packed, since the listing: read below
                continue
            except OSError:
                return None
            if not _SHA_RE.fullmatch(value) or not _git_accepts_ref(name.encode("utf-8", "surrogateescape")):
                return None
            loose[name] = value
    packed = {ref: sha for ref, sha in _packed_refs(git_dir).items() if ref.startswith("refs/")}
    if not all(_SHA_RE.fullmatch(sha) for sha in packed.values()):
        return None
    return dict(sorted({**packed, **loose}.items()))


def _ref_from_files(git_dir: Path, ref: str, packed: dict[str, str] | None = None) -> str | None:
    """The object id the full ref name `ref` holds in the ref files (loose, else packed),
    or None when it is not plainly there (absent, symbolic, a reftable repository): the
    caller then asks git. Both files are replaced by rename, so a read never sees half."""
    if not ref.startswith("refs/") or not _git_accepts_ref(ref.encode()) or (git_dir / "reftable").exists():
        return None
    try:
        value = (git_dir / ref).read_text(errors="replace").strip()
    except FileNotFoundError:
        value = (_packed_refs(git_dir) if packed is None else packed).get(ref, "")
    except OSError:  # a folder of that name (refs/heads/a when a/b exists), unreadable
        return None
    return value if _SHA_RE.fullmatch(value) else None


def _branch_from_files(git_dir: Path, name: str) -> str | None:
    """The commit branch `name` points to, when `git rev-parse name` would surely find
    that branch: git tries NAME, refs/NAME, refs/tags/NAME, then refs/heads/NAME, and
    takes the first that exists. None (ask git) for anything else: another kind of
    revision, a name an earlier rule also finds, an unusual ref. A branch always holds a
    commit (git refuses anything else under refs/heads/)."""
    if not _PLAIN_BRANCH_RE.fullmatch(name) or _SHA_RE.fullmatch(name):
        return None
    if not _git_accepts_ref(f"refs/heads/{name}".encode()) or (git_dir / "reftable").exists():
        return None
    packed = _packed_refs(git_dir)
    for shadow in (name, f"refs/{name}", f"refs/tags/{name}"):
        if shadow in packed or os.path.lexists(git_dir / shadow):
            return None
    return _ref_from_files(git_dir, f"refs/heads/{name}", packed)


def _graph_files(info: Path) -> tuple[Path, ...]:
    """The commit-graph files git reads, as it picks them: the single file when there is
    one, else the layers of the split chain (which refresh_commit_graph writes), newest
    first: a new head is in the newest layer, and a commit is in one layer only."""
    single = info / "commit-graph"
    if single.is_file():
        return (single,)
    chain = info / "commit-graphs" / "commit-graph-chain"
    try:
        stat = chain.stat()
    except OSError:
        return ()
    # git replaces the chain file (a new one renamed into place) whenever it adds or merges
    # layers, so its inode, time and size say whether the list read before still holds.
    # A stale list could only lose the depth (a layer gone: None), never make it wrong.
    identity = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    key = str(chain)
    with _GRAPH_CHAINS_LOCK:
        kept = _GRAPH_CHAINS.get(key)
        if kept is not None and kept[0] == identity:
            _GRAPH_CHAINS.move_to_end(key)
            return kept[1]
    try:
        names = chain.read_text().split()
    except (OSError, UnicodeDecodeError):
        return ()
    if not all(_SHA_RE.fullmatch(name) for name in names):
        return ()  # not what git writes (git refuses such a chain too)
    layers = tuple(chain.parent / f"graph-{name}.graph" for name in reversed(names))
    with _GRAPH_CHAINS_LOCK:
        _GRAPH_CHAINS[key] = (identity, layers)
        while len(_GRAPH_CHAINS) > GRAPH_CHAINS_KEPT:
            _GRAPH_CHAINS.popitem(last=False)
    return layers


# Each repository's commit-graph layers, as _graph_files last read them from its chain
# file (kept per process, for the most recently read chains).
_GRAPH_CHAINS: OrderedDict[str, tuple[tuple[int, int, int], tuple[Path, ...]]] = OrderedDict()
_GRAPH_CHAINS_LOCK = threading.Lock()
GRAPH_CHAINS_KEPT = 256


def _graph_level(info: Path, commit: str) -> int | None:
    if not _SHA_RE.fullmatch(commit):
        return None
    oid = bytes.fromhex(commit)
    for path in _graph_files(info):
        try:
            with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as graph:
                level = _level_in_graph(graph, oid)
        except (OSError, ValueError, struct.error):  # gone (a refresh merged layers), short, empty
            return None
        if level is not None:
            return level
    return None


def _level_in_graph(graph: mmap.mmap, oid: bytes) -> int | None:
    """The topological level of the commit `oid` in one commit-graph file, in git's format
    (gitformat-commit-graph(5)): a header, a table of chunks, the ids' fan-out (OIDF),
    the sorted ids (OIDL), and per commit its tree, parents, level and time (CDAT). None
    when the file does not hold `oid` or records no level (0, from old versions of git)."""
    signature, version, hash_version, chunk_count = struct.unpack_from(">4sBBB", graph)
    if signature != b"CGPH" or version != 1 or len(oid) != {1: 20, 2: 32}.get(hash_version):
        return None
    chunks = dict(struct.unpack_from(">4sQ", graph, 8 + 12 * n) for n in range(chunk_count))
    if not {b"OIDF", b"OIDL", b"CDAT"} <= chunks.keys():
        return None
    fanout, ids, data = chunks[b"OIDF"], chunks[b"OIDL"], chunks[b"CDAT"]
    # The commits whose ids start with oid's first byte sit at [low, high) in OIDL.
    low = struct.unpack_from(">I", graph, fanout + 4 * (oid[0] - 1))[0] if oid[0] else 0
    high = struct.unpack_from(">I", graph, fanout + 4 * oid[0])[0]
    size = len(oid)
    while low < high:
        middle = (low + high) // 2
        found = graph[ids + size * middle : ids + size * (middle + 1)]
        if found == oid:
            # The entry: tree id, two parent positions, then the level in the top 30 bits.
            (word,) = struct.unpack_from(">I", graph, data + (size + 16) * middle + size + 8)
            return (word >> 2) or None
        if found < oid:
            low = middle + 1
        else:
            high = middle
    return None


def _tag_names(git_dir: Path) -> list[str]:
    """The names under refs/tags/, loose and packed, as for-each-ref finds them."""
    names = set()
    root = git_dir / "refs" / "tags"
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for file in files:
            if not file.startswith(".") and not file.endswith(".lock"):
                names.add(Path(folder, file).relative_to(root).as_posix())
    try:
        packed = (git_dir / "packed-refs").read_text(errors="replace").splitlines()
    except FileNotFoundError:
        packed = []
    for line in packed:
        _, _, ref = line.partition(" ")
        if not line.startswith(("#", "^")) and ref.startswith("refs/tags/"):
            names.add(ref.removeprefix("refs/tags/"))
    return sorted(names)


def _ident(line: str) -> tuple[Person | None, datetime | None]:
    """`Name <email> 1700000000 +0200` (a tagger or committer line) as git reads it."""
    name, bracket, rest = line.partition(" <")
    email, closing, stamp = rest.partition(">")
    if not bracket or not closing:
        return None, None
    parts = stamp.split()
    if not parts or not parts[0].isdigit():
        return Person(name, email), None
    offset = timedelta(0)
    if len(parts) > 1 and re.fullmatch(r"[+-]\d{4}", parts[1]):
        zone = parts[1]
        offset = (-1 if zone[0] == "-" else 1) * timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
    return Person(name, email), datetime.fromtimestamp(int(parts[0]), timezone(offset))


# git's versioncmp() (versioncmp.c, as glibc's strverscmp), for `--sort=v:refname`.
_S_N, _S_I, _S_F, _S_Z = 0, 3, 6, 9
_CMP, _LEN = 2, 3
_NEXT_STATE = (_S_N, _S_I, _S_Z, _S_N, _S_I, _S_I, _S_N, _S_F, _S_F, _S_N, _S_F, _S_Z)
# fmt: off
_RESULT_TYPE = (
    _CMP, _CMP, _CMP, _CMP, _LEN, _CMP, _CMP, _CMP, _CMP,
    _CMP, -1, -1, +1, _LEN, _LEN, +1, _LEN, _LEN,
    _CMP, _CMP, _CMP, _CMP, _CMP, _CMP, _CMP, _CMP, _CMP,
    _CMP, +1, +1, -1, _CMP, _CMP, -1, _CMP, _CMP,
)
# fmt: on


def _versioncmp(a: str, b: str) -> int:
    s1, s2 = a.encode() + b"\0", b.encode() + b"\0"

    def digit(c: int) -> bool:
        return 48 <= c <= 57

    def kind(c: int) -> int:
        return (c == 48) + digit(c)

    at = 0
    c1, c2 = s1[0], s2[0]
    state = _S_N + kind(c1)
    while (diff := c1 - c2) == 0:
        if c1 == 0:
            return 0
        state = _NEXT_STATE[state]
        at += 1
        c1, c2 = s1[at], s2[at]
        state += kind(c1)
    result = _RESULT_TYPE[state * 3 + kind(c2)]
    if result == _CMP:
        return diff
    if result != _LEN:
        return result
    # The longer run of digits is the larger number.
    i = j = at + 1
    while digit(s1[i]):
        i += 1
        if not digit(s2[j]):
            return 1
        j += 1
    return -1 if digit(s2[j]) else diff


def remote_env(access: RemoteAccess, *, config: list[tuple[str, str]] | None = None) -> dict[str, str]:
    """The whole environment of a git command that talks to a remote.

    Nothing from the server's own git configuration applies (no url.insteadOf, no
    credential helper): only http(s) and ssh transports, no redirects, connections to the
    checked addresses only, no prompts, and objects checked as they arrive. `config`:
    more (key, value) settings for this one command, after those.
    """

    settings = [
        ("protocol.allow", "never"),
        ("protocol.http.allow", "always"),
        ("protocol.https.allow", "always"),
        ("protocol.ssh.allow", "always"),
        ("http.followRedirects", "false"),
        ("credential.helper", ""),
        ("core.askPass", ""),
        ("transfer.fsckObjects", "true"),
        ("maintenance.auto", "false"),
        ("gc.auto", "0"),
        ("http.lowSpeedLimit", "1000"),
        ("http.lowSpeedTime", "60"),
    ]
    if access.resolve:
        settings.append(("http.curloptResolve", access.resolve))
    if access.auth_header:
        # In the environment, not on the command line: other users can read a process's
        # arguments, not its environment.
        settings.append(("http.extraHeader", access.auth_header))
    settings += config or []
    ssh = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new", "-o", "ConnectTimeout=30"]
    if access.ssh_host_alias:
        ssh += ["-o", f"HostKeyAlias={access.ssh_host_alias}"]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C",
        "LC_ALL": "C",
        "GIT_ALLOW_PROTOCOL": "http:https:ssh",
        "GIT_PROTOCOL_FROM_USER": "0",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_SSH_VARIANT": "ssh",
        "GIT_SSH_COMMAND": shlex.join(ssh),
        "GIT_CONFIG_COUNT": str(len(settings)),
    }
    for index, (key, value) in enumerate(settings):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


def _tail(err: str, lines: int = 12, limit: int = 2000) -> str:
    kept = [line for line in err.strip().splitlines() if line.strip()][-lines:]
    return "\n".join(kept)[-limit:] or "no message"


# Failures that may pass by themselves; anything else (refused credentials, a missing
# repository, a bad address) needs a person.
RETRYABLE_GIT_ERRORS = (
    "could not resolve host",
    "connection refused",
    "connection timed out",
    "timed out",
    "operation too slow",
    "the remote end hung up",
    "early eof",
    "rpc failed",
    "returned error: 5",
    "returned error: 429",
    "connection reset",
    "failed to connect",
    "couldn't connect",
    "temporary failure",
    "ssl_error",
    "gnutls",
)


def _retryable(err: str) -> bool:
    lowered = err.lower()
    return any(marker in lowered for marker in RETRYABLE_GIT_ERRORS)


CONFLICT_KINDS = {
    "contents": "content",
    "binary": "binary",
    "modify/delete": "modify/delete",
    "add/add": "add/add",
    "file/directory": "file/directory",
    "directory/file": "file/directory",
    "distinct types": "file/directory",
    "rename/delete": "rename",
    "rename/rename": "rename",
    "rename/add": "rename",
    "rename involved in collision": "rename",
    "submodule": "other",
}
# The most telling kind wins when git reports several for one path.
KIND_ORDER = ("binary", "modify/delete", "rename", "add/add", "file/directory", "content", "other")


def _parse_merge_tree(out: str) -> MergeResult:
    """Parse `merge-tree --write-tree -z`: the tree, then conflicted entries
    ("<mode> <sha> <stage>\t<path>"), an empty field, then messages
    (<count>, that many paths, a type, a message)."""
    tokens = out.split("\0")
    tree = tokens[0].strip()
    stages: dict[str, dict[int, str]] = {}
    i = 1
    while i < len(tokens) and tokens[i]:
        meta, _, path = tokens[i].partition("\t")
        parts = meta.split()
        if len(parts) == 3 and parts[2].isdigit():
            stages.setdefault(path, {})[int(parts[2])] = parts[1]
        i += 1
    i += 1
    kinds: dict[str, list[tuple[str, str]]] = {}
    while i < len(tokens):
        count = tokens[i].strip()
        if not count.isdigit():
            i += 1
            continue
        n = int(count)
        paths = tokens[i + 1 : i + 1 + n]
        kind_text = tokens[i + 1 + n] if i + 1 + n < len(tokens) else ""
        message = tokens[i + 2 + n].strip() if i + 2 + n < len(tokens) else ""
        i += n + 3
        if not kind_text.startswith("CONFLICT ("):
            continue
        label = kind_text[len("CONFLICT (") :].rstrip(")").strip()
        kind = CONFLICT_KINDS.get(label, "other")
        for path in paths:
            kinds.setdefault(path, []).append((kind, message))
    conflicts = []
    for path in sorted(set(stages) | set(kinds)):
        found = kinds.get(path) or [("content" if path in stages else "other", "")]
        kind, message = min(found, key=lambda pair: KIND_ORDER.index(pair[0]))
        entry = stages.get(path, {})
        conflicts.append(MergeConflict(path, kind, message, ours_sha=entry.get(2), theirs_sha=entry.get(3)))
    return MergeResult(tree=tree, conflicts=conflicts)


def _count_args(
    rev: str, path: str | None, *, exclude: str | None = None, at_most: int | None = None
) -> list[str]:
    args = ["rev-list", "--count", *([f"--max-count={at_most}"] if at_most else []), "--end-of-options"]
    args += [rev, *([f"^{exclude}"] if exclude else []), "--"]
    if path:
        args.append(path)
    return args


def _arrived_on_page(page: list[Commit], earlier: str) -> int | None:
    """How many commits a log `page` (from the head, newest first, unfiltered) shows
    before `earlier` when they are a plain chain down to it, each the only parent of the
    one before: exactly the commits the head has and `earlier` has not (none of them can
    be an ancestor of `earlier`, which descends from each). None when the page cannot tell."""
    for n, commit in enumerate(page):
        if commit.sha == earlier:
            return n
        if len(commit.parents) != 1 or (n + 1 < len(page) and page[n + 1].sha != commit.parents[0]):
            return None
        if commit.parents[0] == earlier:
            return n + 1
    return None


def _touched_on_page(page: list[Commit], new_commits: str | None, limit: int) -> str | None:
    """How many of `new_commits` (`rev-list --parents` lines: what a head has and an earlier
    head has not) touch a path, from the first page of that path's history: when they
    are a plain chain (no merge), the path's history lists those of them that touch it
    first, so the page holds them all if it also holds an older commit or is the whole
    history. None when it cannot tell (all it shows arrived, or it could not be read)."""
    if new_commits is None:
        return None
    arrived = {line.split(" ", 1)[0] for line in new_commits.splitlines() if line}
    shown = sum(1 for commit in page if commit.sha in arrived)
    if shown < len(page) or len(page) < limit:
        return str(shown)
    return None


def _outputs(procs: list[subprocess.Popen[bytes] | None]) -> list[str | None]:
    return [_output(proc) if proc is not None else None for proc in procs]


def _output(proc: subprocess.Popen[bytes]) -> str | None:
    """The stdout of a process Repository._start() started, once it ends; None if it failed."""
    out, _ = proc.communicate()
    return out.decode(errors="replace") if proc.returncode == 0 else None


# A path a request names is a path, not a pattern: without this, `*`, `:(glob)**` or
# `:(icase)...` would each match other files, and each be a history of its own to count.
LITERAL_PATHSPECS = {"GIT_LITERAL_PATHSPECS": "1"}


# For a git whose whole output is read once it ends: into a pipe, `git log` and the like
# flush after every commit (for a pager's sake), each write a wake-up of the reader's
# poll; buffered, a history page's 30 commits come in one or two writes (~0.2 ms less
# per page).
UNFLUSHED = {"GIT_FLUSH": "0"}


def _git_env(extra: dict[str, str] | None) -> dict[str, str]:
    """The environment git runs in: the process's own (a hook's quarantine variables
    included), git's messages in plain English for the parsers, then `extra`."""
    env = {**os.environ, "LANGUAGE": "C", "LC_ALL": "C"}
    if extra:
        env.update(extra)
    return env


def _is_git_dir(path: Path) -> bool:
    """Whether `path` is a repository's own folder (a bare repository, the hub's kind),
    as GitPython's is_git_dir decides it, without importing GitPython."""
    return (
        ((path / "objects").is_dir() or "GIT_OBJECT_DIRECTORY" in os.environ)
        and (path / "refs").is_dir()
        and ((path / "HEAD").is_file() or (path / "HEAD").is_symlink())
    )


def git_binary() -> str:
    """The git executable: from settings, or the environment when Django is not set up
    (a process that never sets it up does not import it for this)."""
    conf = sys.modules.get("django.conf")
    if conf is not None and conf.settings.configured:
        return conf.settings.FABHUB_GIT_BINARY
    return os.environ.get("FABHUB_GIT_BINARY", "git")


def valid_ref_name(kind: str, name: str) -> bool:
    """Whether git accepts `name` as a branch or tag (kind: 'heads' or 'tags')."""
    if not name or name.startswith("-") or name == "HEAD" or len(name) > 200:
        return False
    # Invisible and direction-changing characters make a name read as another one.
    if any(unicodedata.category(ch) == "Cf" for ch in name):
        return False
    try:
        full = f"refs/{kind}/{name}".encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return _git_accepts_ref(full)


# What git's refs.c (check_refname_format, which `git check-ref-format` runs) makes of
# each byte: 4 is refused anywhere (controls, DEL, space, ~ ^ : ? [ \\ *), 2 refused after
# another '.', 3 ('{') refused after '@'; bytes from 0x80 up are accepted.
_REF_BAD_BYTES = frozenset([*range(0x20), 0x7F, *b" ~^:?[\\*"])


def _git_accepts_ref(refname: bytes) -> bool:
    """`git check-ref-format <refname>` without options, run in Python (a process per
    name cost an import 5 per design): at least two '/'-separated components, none empty,
    none starting with '.' or ending with '.lock'; no '..', no '@{', not '@', not ending
    with '.'; no byte of _REF_BAD_BYTES (a NUL, which ends a C string, included).
    tests/designs/test_archive_ref_names.py checks it against git on generated names."""
    if refname == b"@" or refname.endswith(b".") or b".." in refname or b"@{" in refname:
        return False
    if any(byte in _REF_BAD_BYTES for byte in refname):
        return False
    components = refname.split(b"/")
    return len(components) >= 2 and all(
        component and not component.startswith(b".") and not component.endswith(b".lock")
        for component in components
    )


def _identity_env(person: Person, role: str) -> dict[str, str]:
    return {f"GIT_{role}_NAME": person.name, f"GIT_{role}_EMAIL": person.email}


def _parse_log_record(record: str) -> Commit:
    tokens = record.split("\0")
    sha, parents, an, ae, ad, cn, ce, cd, message = tokens[:9]
    rest = [t.lstrip("\n") for t in tokens[9:]]
    rest = [t for t in rest if t]
    files = []
    i = 0
    while i < len(rest):
        status = rest[i]
        letter = status[0]
        if letter in "RC":
            files.append(FileStatus(STATUS_NAMES[letter], rest[i + 2], rest[i + 1]))
            i += 3
        else:
            files.append(FileStatus(STATUS_NAMES.get(letter, letter), rest[i + 1]))
            i += 2
    return Commit(
        sha=sha,
        parents=parents.split(),
        author=Person(an, ae),
        authored_at=datetime.fromisoformat(ad),
        committer=Person(cn, ce),
        committed_at=datetime.fromisoformat(cd),
        message=message.rstrip("\n"),
        files=files,
    )


# -- smart HTTP ---------------------------------------------------------------------------

HOOKS_DIR = Path(__file__).resolve().parent / "hooks"
HIDDEN_REFS = "refs/fabhub/"
PROPOSAL_REFS = "refs/proposals/"
PIPE_CHUNK = 64 * 1024


@dataclass
class BackendResponse:
    status: int
    headers: list[tuple[str, str]]
    body: Iterator[bytes]


def http_backend(
    repo_path: Path,
    *,
    method: str,
    path_info: str,
    query: str,
    request_headers: dict[str, str],
    body: IO[bytes] | None,
    remote_user: str = "",
    hook_env: dict[str, str] | None = None,
    pass_fds: tuple[int, ...] = (),
) -> BackendResponse:
    """Run `git http-backend` for one request, streaming both bodies.

    The request body is pumped into git by a thread while the response is read, so
    neither side is ever held whole in memory (a 1 GB push costs a few buffers). Access
    control is the caller's: git serves whatever it is pointed at. `pass_fds` stay open in
    git and its hooks (the pre-receive hook's pipes to the caller).
    """

    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "GIT_PROJECT_ROOT": str(repo_path),
        "GIT_HTTP_EXPORT_ALL": "1",
        "REQUEST_METHOD": method,
        "PATH_INFO": path_info,
        "QUERY_STRING": query,
        "REMOTE_USER": remote_user,
        "REMOTE_ADDR": "127.0.0.1",
        # Hooks of the hub, not of the repository, and pushes enabled for the callers we let in.
        "GIT_CONFIG_COUNT": "5",
        "GIT_CONFIG_KEY_0": "core.hooksPath",
        "GIT_CONFIG_VALUE_0": str(HOOKS_DIR),
        "GIT_CONFIG_KEY_1": "http.receivepack",
        "GIT_CONFIG_VALUE_1": "true",
        "GIT_CONFIG_KEY_2": "uploadpack.allowFilter",
        "GIT_CONFIG_VALUE_2": "true",
        # The hub's own bookkeeping refs (a mirror's staging area, a fork's view of its
        # upstream) are neither shown nor writable; proposal heads may be fetched
        # (`git fetch origin refs/proposals/3/head`) but only the hub moves them.
        "GIT_CONFIG_KEY_3": "transfer.hideRefs",
        "GIT_CONFIG_VALUE_3": HIDDEN_REFS,
        "GIT_CONFIG_KEY_4": "receive.hideRefs",
        "GIT_CONFIG_VALUE_4": PROPOSAL_REFS,
        **(hook_env or {}),
    }
    for header, variable in (
        ("Content-Type", "CONTENT_TYPE"),
        ("Content-Length", "CONTENT_LENGTH"),
        ("Content-Encoding", "HTTP_CONTENT_ENCODING"),
        ("Git-Protocol", "HTTP_GIT_PROTOCOL"),
    ):
        if request_headers.get(header):
            env[variable] = request_headers[header]
    proc = subprocess.Popen(
        [git_binary(), "http-backend"],
        stdin=subprocess.PIPE if body is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        pass_fds=pass_fds,
    )
    stdin, stdout, stderr = proc.stdin, proc.stdout, proc.stderr
    # Both PIPEs, binary and buffered (read1 streams whatever has arrived).
    assert isinstance(stdout, io.BufferedReader) and stderr is not None
    pump_error: list[BaseException] = []

    def pump(body: IO[bytes], stdin: IO[bytes]) -> None:
        try:
            while chunk := body.read(PIPE_CHUNK):
                stdin.write(chunk)
        except (BrokenPipeError, OSError) as exc:  # git stopped reading: it will say why
            pump_error.append(exc)
        finally:
            try:
                stdin.close()
            except OSError:
                pass

    pump_thread = None
    if body is not None and stdin is not None:  # stdin is a PIPE exactly when there is a body
        pump_thread = threading.Thread(target=pump, args=(body, stdin), daemon=True)
        pump_thread.start()
    # stderr is drained by a thread too, or a chatty git could block on a full pipe.
    errors: list[bytes] = []
    err_thread = threading.Thread(target=lambda: errors.append(stderr.read()), daemon=True)
    err_thread.start()

    status, headers = _read_cgi_headers(stdout)

    def stream() -> Iterator[bytes]:
        read_to_the_end = False
        try:
            while chunk := stdout.read1(PIPE_CHUNK):
                yield chunk
            read_to_the_end = True
        finally:
            stdout.close()
            if pump_thread is not None:
                pump_thread.join()
            proc.wait()
            err_thread.join()
            # The client has had its answer (cut short, if git failed half-way): say why
            # in the log. A client that stopped reading stops git too, which is no failure.
            if read_to_the_end and proc.returncode != 0:
                logger.warning(
                    "git http-backend exited with %s: %s",
                    proc.returncode,
                    b"".join(errors)[-2000:].decode(errors="replace").strip(),
                )

    return BackendResponse(status, headers, stream())


def _read_cgi_headers(stdout: IO[bytes]) -> tuple[int, list[tuple[str, str]]]:
    status = 200
    headers = []
    while True:
        line = stdout.readline()
        if not line or line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode("latin-1").partition(":")
        value = value.strip()
        if name.lower() == "status":
            status = int(value.split()[0])
        else:
            headers.append((name.strip(), value))
    return status, headers
