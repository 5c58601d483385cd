"""Designs in account archives (designs/services/archives.py): a person's designs leave with
every git object, ref, release and LFS byte, their lineage and settings, and come back in
another account all or nothing, once; a bundle or design.json that is not what an export
writes is refused, naming it."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from designs import services
from designs.lfs_store import OLD_POINTER_VERSION, lfs_store, pointer_text, resolve_pointer
from designs.models import Design, DesignLfsObject
from designs.services.archives import MIN_POINTER_BYTES
from hub import archives, records
from hub.models import AccountArchive, ArchiveImport, ImportedRecord
from tests.factories import DesignFactory, UserFactory, commit_files

pytestmark = pytest.mark.django_db

KB = 1024
HUB = "http://hub-a.test:8000/"


@pytest.fixture(autouse=True)
def hub_settings(settings):
    settings.FABHUB_PUBLIC_URL = HUB.rstrip("/")
    settings.FABHUB_TRUSTED_ISSUERS = {}
    settings.FABHUB_ARCHIVE_ONLINE_CHECKS = False
    settings.FABHUB_LFS_THRESHOLD_BYTES = 4 * KB


def no_fetch(url):
    raise AssertionError(f"fetched {url}")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


def objects(design: Design) -> set[str]:
    return set(git(design.repo_path, "rev-list", "--objects", "--all").split())


def export(user) -> Path:
    archive = AccountArchive.objects.create(owner=user)
    assert archives.archive_build(archive_id=archive.pk)
    return archives.archive_path(archive)


def import_into(account, path: Path) -> ArchiveImport:
    job = ArchiveImport.objects.create(account=account)
    shutil.copy(path, archives.import_path(job))
    archives.archive_import_run(import_id=job.pk, fetch=no_fetch)
    job.refresh_from_db()
    return job


@pytest.fixture
def people(db):
    return UserFactory(username="ada"), UserFactory(username="bea"), UserFactory(username="cy")


@pytest.fixture
def ada_designs(people):
    """ada has a public car with an LFS file, a branch and a release, a private design, an
    empty one, and a fork of cy's gauge, on which she proposed and commented; she made one."""
    ada, bea, cy = people
    car = DesignFactory(owner=ada, slug="car", title="Car", summary="Four wheels")
    big = os.urandom(6 * KB)
    commit_files(car, {"body.step": big, "README.md": "# Car\n"}, "Body")
    services.branch_create(design=car, user=ada, name="dev")
    commit_files(car, {"notes.txt": "dev work\n"}, "Notes", branch="dev")
    services.tag_create(design=car, user=ada, name="v0.1", target=None, notes="First *release*")
    services.design_update(design=car, tags=["vehicle", "kit"], allow_tag_changes=True, okh_function="Drives")
    services.collaborator_set(design=car, actor=ada, user=cy, role="write")
    secret = DesignFactory(owner=ada, slug="secret", visibility=Design.Visibility.PRIVATE)
    commit_files(secret, {"plan.txt": "hidden\n"})
    empty = DesignFactory(owner=ada, slug="empty")
    gauge = DesignFactory(owner=cy, slug="gauge")
    commit_files(gauge, {"gauge.scad": "cube(1);\n"})
    fork = services.design_fork(design=gauge, user=ada)
    commit_files(fork, {"gauge.scad": "cube(2);\n"}, "Bigger")
    proposal = services.proposals.proposal_create(
        target=gauge, user=ada, source=fork, source_branch="main", title="Make it bigger"
    )
    services.proposals.proposal_comment(proposal=proposal, user=ada, body="Measured twice.")
    services.make_create(
        design=gauge, maker=ada, commit_sha=gauge.repo.resolve("main"), where="Lyon", photo=png_photo()
    )
    return {
        "car": car,
        "secret": secret,
        "empty": empty,
        "fork": fork,
        "gauge": gauge,
        "oid": hashlib.sha256(big).hexdigest(),
        "big": big,
    }


def png_photo() -> io.BytesIO:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(out, "PNG")
    out.seek(0)
    return out


def imported(account, slug: str) -> Design:
    return Design.objects.select_related("owner").get(owner=account, slug=slug)


def test_a_design_comes_back_with_every_object_ref_release_and_lfs_byte(people, ada_designs):
    ada, bea, _ = people
    job = import_into(bea, export(ada))
    assert job.status == ArchiveImport.Status.DONE, job.error
    car, copy = ada_designs["car"], imported(bea, "car")
    assert objects(copy) == objects(car)
    assert copy.repo.refs() == car.repo.refs()
    assert [t.message for t in copy.repo.tags()] == ["First *release*"]
    oid = ada_designs["oid"]
    assert DesignLfsObject.objects.filter(design=copy, lfs_object__oid=oid).exists()
    with lfs_store().open(oid) as stored:
        assert stored.read() == ada_designs["big"]
    assert copy.imported_from == f"{HUB}ada/car/"
    assert (copy.title, copy.summary, copy.licence, copy.visibility) == (
        "Car",
        "Four wheels",
        car.licence,
        "public",
    )
    assert sorted(t.name for t in copy.tags.all()) == ["kit", "vehicle"]
    assert copy.allow_tag_changes and copy.okh_function == "Drives"
    assert copy.created_at == car.created_at


def test_the_archive_holds_each_design_its_history_and_makes_with_their_photos(people, ada_designs):
    ada = people[0]
    with zipfile.ZipFile(export(ada)) as archive:
        names = set(archive.namelist())
        make = json.loads(archive.read("designs/makes.json"))[0]
        car = ada_designs["car"]
        document = json.loads(archive.read(f"designs/{car.pk}/design.json"))
        releases = json.loads(archive.read(f"designs/{car.pk}/releases.json"))
        refs = json.loads(archive.read(f"designs/{car.pk}/refs.json"))
    assert make["photo"] == f"designs/makes/{make['id']}.jpg" and make["photo"] in names
    assert make["design_url"] == f"{HUB}cy/gauge/" and make["where"] == "Lyon"
    for design in ("car", "secret", "fork"):
        assert f"designs/{ada_designs[design].pk}/repo.bundle" in names
    assert f"designs/{ada_designs['empty'].pk}/repo.bundle" not in names
    assert f"designs/{car.pk}/lfs/{ada_designs['oid']}" in names
    assert {"designs/history/proposals.json", "designs/history/comments.json"} <= names
    assert document["url"] == f"{HUB}ada/car/" and document["bundle"] == "repo.bundle"
    assert document["collaborators"] == [{"username": "cy", "url": f"{HUB}cy/", "role": "write"}]
    assert refs == car.repo.refs()
    assert [(r["name"], r["message"], r["target"]) for r in releases] == [
        ("v0.1", "First *release*", car.repo.resolve("main"))
    ]


def test_a_private_design_stays_private_and_an_empty_one_stays_empty(people, ada_designs):
    ada, bea, _ = people
    import_into(bea, export(ada))
    secret = imported(bea, "secret")
    assert secret.visibility == Design.Visibility.PRIVATE
    assert objects(secret) == objects(ada_designs["secret"])
    empty = imported(bea, "empty")
    assert empty.repo.is_empty() and empty.repo.refs() == {}


def test_a_fork_keeps_its_lineage_to_the_design_it_came_from(people, ada_designs):
    ada, bea, _ = people
    import_into(bea, export(ada))
    copy, fork = imported(bea, "gauge"), ada_designs["fork"]
    assert copy.forked_from_url == f"{HUB}cy/gauge/"
    assert copy.forked_from == ada_designs["gauge"] and copy.forked_from_name == "cy/gauge"
    assert copy.fork_point == fork.fork_point
    assert copy.imported_from == f"{HUB}ada/gauge/"
    assert objects(copy) == objects(fork)


def test_the_report_counts_designs_and_keeps_proposals_and_comments_as_history(people, ada_designs):
    ada, bea, _ = people
    job = import_into(bea, export(ada))
    counts = job.report["counts"]
    assert (counts["designs"], counts["proposals"], counts["comments"], counts["makes"]) == (4, 1, 1, 1)
    proposal = ImportedRecord.objects.get(account=bea, kind=ImportedRecord.Kind.PROPOSAL)
    assert proposal.data["title"] == "Make it bigger" and proposal.data["design_url"] == f"{HUB}cy/gauge/"
    comment = ImportedRecord.objects.get(account=bea, kind=ImportedRecord.Kind.COMMENT)
    assert comment.data["body"] == "Measured twice." and comment.data["proposal_number"] == 1
    notes = "\n".join(job.report["notes"])
    assert "collaborators on http://hub-a.test:8000/ (cy) were not added" in notes
    assert "Makes in the archive: 1. They are not made again here" in notes


def state(account) -> tuple:
    designs = Design.objects.filter(owner=account).order_by("slug")
    return (
        [(d.pk, d.slug, d.repo.refs()) for d in designs],
        ImportedRecord.objects.filter(account=account).count(),
        DesignLfsObject.objects.filter(design__owner=account).count(),
    )


def repo_folders(account) -> list[str]:
    folder = Path(Design(owner=account, slug="x").repo_path).parent
    return sorted(p.name for p in folder.iterdir())


def test_a_second_import_changes_nothing(people, ada_designs):
    ada, bea, _ = people
    path = export(ada)
    import_into(bea, path)
    before, folders = state(bea), repo_folders(bea)
    job = import_into(bea, path)
    assert job.status == ArchiveImport.Status.DONE
    assert state(bea) == before and repo_folders(bea) == folders
    assert job.report["counts"]["designs_already_imported"] == 4
    assert "designs" not in job.report["counts"]


def test_a_colliding_slug_gets_a_new_name_and_a_second_import_still_changes_nothing(people, ada_designs):
    ada, bea, _ = people
    own = DesignFactory(owner=bea, slug="car")
    path = export(ada)
    job = import_into(bea, path)
    assert "you already have a design named 'car'; it was imported as 'car-2'" in "\n".join(
        job.report["notes"]
    )
    copy = imported(bea, "car-2")
    assert objects(copy) == objects(ada_designs["car"])
    assert own.repo.is_empty()
    before, folders = state(bea), repo_folders(bea)
    import_into(bea, path)
    assert state(bea) == before and repo_folders(bea) == folders


# -- archives an export did not write -------------------------------------------------------


def design_document(**changes) -> dict:
    document = {
        "id": 7,
        "owner": "ada",
        "slug": "bracket",
        "url": f"{HUB}ada/bracket/",
        "title": "Bracket",
        "summary": "",
        "licence": "CERN-OHL-S-2.0",
        "tags": [],
        "visibility": "public",
        "default_branch": "main",
        "allow_default_branch_rewrite": False,
        "allow_tag_changes": False,
        "okh_function": "",
        "okh_technology_readiness": "",
        "okh_documentation_readiness": "",
        "okh_documentation_language": "",
        "created_at": "2024-05-01T10:00:00+00:00",
        "bundle": "repo.bundle",
        "collaborators": [],
        "fork": None,
        "imported_from": None,
        "modules": [],
        "lfs_missing": [],
    }
    return {**document, **changes}


def write_archive(path: Path, members: dict[str, bytes | Path]) -> Path:
    writer = archives.ArchiveWriter(path)
    for name, content in members.items():
        if isinstance(content, Path):
            writer.add_file(name, content)
        else:
            writer.add_bytes(name, content)
    writer.finish(
        {
            "format": archives.FORMAT,
            "version": archives.FORMAT_VERSION,
            "hub": records.hub_root(),
            "account": {"username": "ada", "url": records.account_url("ada")},
            "parts": ["account", "designs"],
        }
    )
    return path


@pytest.fixture
def source(people, tmp_path):
    """A design with two branches, and its bundle of both."""
    design = DesignFactory(owner=people[0], slug="bracket")
    commit_files(design, {"a.txt": "a\n"})
    services.branch_create(design=design, user=people[0], name="dev")
    bundle = tmp_path / "both.bundle"
    git(design.repo_path, "bundle", "create", str(bundle), "--branches", "--tags")
    return design, bundle


def test_a_bundle_holding_a_ref_refs_json_does_not_list_refuses_the_archive_naming_it(
    people, source, tmp_path
):
    design, bundle = source
    refs = {"refs/heads/main": design.repo.branch_head("main")}
    path = write_archive(
        tmp_path / "a.zip",
        {
            "designs/7/design.json": json.dumps(design_document()).encode(),
            "designs/7/refs.json": json.dumps(refs).encode(),
            "designs/7/repo.bundle": bundle,
        },
    )
    job = import_into(people[1], path)
    assert job.status == ArchiveImport.Status.FAILED
    assert "designs/7/repo.bundle holds refs refs.json does not list (refs/heads/dev)" in job.error
    assert not Design.objects.filter(owner=people[1]).exists()
    assert not Design(owner=people[1], slug="bracket").repo_path.exists()


def test_the_same_archive_with_every_ref_listed_imports(people, source, tmp_path):
    design, bundle = source
    path = write_archive(
        tmp_path / "a.zip",
        {
            "designs/7/design.json": json.dumps(design_document()).encode(),
            "designs/7/refs.json": json.dumps(design.repo.refs()).encode(),
            "designs/7/repo.bundle": bundle,
        },
    )
    job = import_into(people[1], path)
    assert job.status == ArchiveImport.Status.DONE, job.error
    assert imported(people[1], "bracket").repo.refs() == design.repo.refs()


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"slug": "../x"}, "Invalid design name '../x'"),
        ({"slug": "x.git"}, "cannot end in '.git'"),
        ({"title": "t" * 10 * 1024 * 1024}, "designs/7/design.json is larger than 1 MB"),
        ({"title": "t" * 201}, "title is longer than 200 characters"),
        ({"title": 5}, "title must be text, not int"),
        ({"tags": "kit"}, "tags must be a list"),
        ({"allow_tag_changes": "yes"}, "allow_tag_changes must be true or false"),
        ({"licence": "proprietary"}, "licence 'proprietary' is not one this hub knows"),
        ({"default_branch": "-x"}, "not a valid branch name"),
        ({"url": "http://elsewhere.test/ada/bracket/"}, "is not an address of http://hub-a.test:8000/"),
        ({"fork": {"upstream": "x", "fork_point": "0" * 40}}, "fork.upstream must be the address"),
        ({"okh_technology_readiness": "OTRL-9"}, "Technology readiness is one of"),
        ({"created_at": "yesterday"}, "created_at 'yesterday' is not a date"),
    ],
    ids=lambda value: str(value)[:30],
)
def test_a_hostile_design_json_is_refused_with_a_note_and_leaves_no_design(people, tmp_path, changes, said):
    bea = people[1]
    path = write_archive(
        tmp_path / "a.zip",
        {
            "designs/7/design.json": json.dumps(design_document(**changes)).encode(),
            "designs/7/refs.json": b"{}",
        },
    )
    job = import_into(bea, path)
    assert job.status == ArchiveImport.Status.DONE, job.error
    notes = "\n".join(job.report["notes"])
    assert said in notes and "The design was not imported." in notes
    assert not Design.objects.filter(owner=bea).exists()
    folder = Design(owner=bea, slug="x").repo_path.parent
    assert not folder.exists() or list(folder.iterdir()) == []


def test_a_fork_of_a_design_on_another_hub_names_it_with_its_hub(people, tmp_path):
    fork = {"upstream": "http://hub-c.test/zoe/gauge/", "fork_point": "a" * 40}
    path = write_archive(
        tmp_path / "a.zip",
        {
            "designs/7/design.json": json.dumps(design_document(fork=fork)).encode(),
            "designs/7/refs.json": b"{}",
        },
    )
    import_into(people[1], path)
    copy = imported(people[1], "bracket")
    assert copy.forked_from is None and copy.forked_from_name == "zoe/gauge (on hub-c.test)"
    assert copy.forked_from_url == "http://hub-c.test/zoe/gauge/" and copy.fork_point == "a" * 40


def test_lfs_bytes_that_do_not_match_their_oid_refuse_the_design(people, tmp_path):
    path = write_archive(
        tmp_path / "a.zip",
        {
            "designs/7/design.json": json.dumps(design_document()).encode(),
            "designs/7/refs.json": b"{}",
            f"designs/7/lfs/{'b' * 64}": b"not those bytes",
        },
    )
    job = import_into(people[1], path)
    assert "does not match object" in "\n".join(job.report["notes"])
    assert not Design.objects.filter(owner=people[1]).exists()


def test_export_and_import_stream_large_files_in_bounded_memory(people, settings):
    ada, bea, _ = people
    design = DesignFactory(owner=ada, slug="hull")
    commit_files(design, {"hull.stl": os.urandom(24 * 1024 * KB)})
    tracemalloc.start()
    try:
        path = export(ada)
        job = import_into(bea, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert job.status == ArchiveImport.Status.DONE, job.error
    assert peak < 12 * 1024 * KB, f"peak {peak / 1024 / KB:.1f} MB"


def smuggling_archive(design: Design, tmp_path: Path, **more: bytes) -> Path:
    """An archive of `design` whose bundle carries a blob no listed ref reaches (and the
    members `more`, by name under designs/7/)."""
    head = design.repo.branch_head("main")
    smuggled = design.repo.write_blob(b"not reachable from any ref\n")
    listing = git(design.repo_path, "rev-list", "--objects", "refs/heads/main").split("\n")
    wanted = "\n".join([line.split(" ")[0] for line in listing if line] + [smuggled]) + "\n"
    pack = subprocess.run(
        ["git", "--git-dir", str(design.repo_path), "pack-objects", "--stdout"],
        input=wanted.encode(),
        capture_output=True,
        check=True,
    ).stdout
    bundle = tmp_path / "smuggling.bundle"
    bundle.write_bytes(f"# v2 git bundle\n{head} refs/heads/main\n\n".encode() + pack)
    return write_archive(
        tmp_path / "a.zip",
        {
            "designs/7/design.json": json.dumps(design_document()).encode(),
            "designs/7/refs.json": json.dumps({"refs/heads/main": head}).encode(),
            "designs/7/repo.bundle": bundle,
            **{f"designs/7/{name}": content for name, content in more.items()},
        },
    )


def test_a_bundle_carrying_objects_no_listed_ref_reaches_refuses_the_archive(people, source, tmp_path):
    design, _ = source
    path = smuggling_archive(design, tmp_path)
    job = import_into(people[1], path)
    assert job.status == ArchiveImport.Status.FAILED
    assert "designs/7/repo.bundle carries objects that no ref of refs.json reaches (1)" in job.error
    assert not Design.objects.filter(owner=people[1]).exists()
    assert not Design(owner=people[1], slug="bracket").repo_path.exists()


def test_a_design_refused_while_its_lfs_objects_are_saved_stops_the_saving(
    people, source, tmp_path, monkeypatch
):
    """The LFS objects are saved beside git's checks; once the design is refused, the
    saver stops at its next object instead of hashing and syncing every one to the end."""
    design, _ = source
    blobs = [f"LFS object {n}\n".encode() for n in range(20)]
    path = smuggling_archive(
        design, tmp_path, **{f"lfs/{hashlib.sha256(blob).hexdigest()}": blob for blob in blobs}
    )
    store, saved = lfs_store(), []

    class SlowStore:
        """The real store, its first save taking long enough for the refusal to come."""

        def __getattr__(self, name):
            return getattr(store, name)

        def save(self, oid, size, stream):
            if not saved:
                time.sleep(3)
            saved.append(oid)
            store.save(oid, size, stream)

    monkeypatch.setattr("designs.services.archives.lfs_store", SlowStore)
    job = import_into(people[1], path)
    assert "carries objects that no ref of refs.json reaches" in job.error
    assert len(saved) == 1, f"{len(saved)} of 20 LFS objects saved after the refusal"


def test_a_bundle_with_an_object_git_strict_checks_refuse_leaves_no_design(people, tmp_path):
    bundle, commit = bundle_of_names(tmp_path, [b".git"])
    path = archive_of_one_design(tmp_path, bundle, commit)
    job = import_into(people[1], path)
    assert job.status == ArchiveImport.Status.DONE, job.error
    assert "designs/7/repo.bundle: git's object checks refuse it" in " ".join(job.report["notes"])
    assert "hasDotgit" in " ".join(job.report["notes"])
    assert not Design.objects.filter(owner=people[1]).exists()
    assert not Design(owner=people[1], slug="bracket").repo_path.exists()


def test_the_pointer_check_skips_only_blobs_too_small_to_be_a_pointer():
    shortest = pointer_text("a" * 64, 0)
    old = shortest.replace(b"git-lfs.github.com", OLD_POINTER_VERSION[8:].split(b"/")[0])
    assert resolve_pointer(old) is not None
    assert min(len(shortest), len(old)) == MIN_POINTER_BYTES


def archive_of_one_design(tmp_path: Path, bundle: Path, commit: str) -> Path:
    """An archive of one design whose history is `bundle`, its main branch at `commit`."""
    return write_archive(
        tmp_path / "a.zip",
        {
            "designs/7/design.json": json.dumps(design_document()).encode(),
            "designs/7/refs.json": json.dumps({"refs/heads/main": commit}).encode(),
            "designs/7/repo.bundle": bundle,
        },
    )


def bundle_of_names(tmp_path: Path, names: list[bytes], *, data: bytes = b"x\n") -> tuple[Path, str]:
    """A bundle of one commit whose tree holds a file under each of `names` (bytes, as
    git takes them), written with plumbing that checks nothing."""
    repo = tmp_path / "names.git"
    subprocess.run(["git", "init", "--bare", "-q", str(repo)], check=True)
    env = {**os.environ, "GIT_AUTHOR_NAME": "M", "GIT_AUTHOR_EMAIL": "m@x"}
    env.update(GIT_COMMITTER_NAME="M", GIT_COMMITTER_EMAIL="m@x")

    def plumbing(*args: str, given: bytes = b"") -> str:
        command = ["git", "--git-dir", str(repo), *args]
        return (
            subprocess.run(command, input=given, env=env, capture_output=True, check=True)
            .stdout.decode()
            .strip()
        )

    blob = plumbing("hash-object", "-w", "--stdin", given=data)
    entries = b"".join(b"100644 blob %s\t%s\0" % (blob.encode(), name) for name in names)
    tree = plumbing("mktree", "-z", given=entries)
    commit = plumbing("commit-tree", tree, "-m", "x")
    git(repo, "update-ref", "refs/heads/main", commit)
    bundle = tmp_path / "names.bundle"
    git(repo, "bundle", "create", str(bundle), "--branches")
    return bundle, commit


@pytest.mark.parametrize(
    ("names", "said"),
    [
        ([b"caf\xe9.scad"], "File names must be UTF-8 text: 'caf\\xe9.scad'"),
        ([b"CON.txt"], "The name 'CON.txt' is reserved on Windows"),
        (["invoice\u202etxt.exe".encode()], "invisible or direction-changing characters"),
        ([b"Bracket.stl", b"bracket.stl"], "bracket.stl"),
    ],
    ids=["not-utf8", "windows-reserved", "direction-override", "names-collide"],
)
def test_a_bundle_whose_history_a_push_would_be_refused_for_leaves_no_design(people, tmp_path, names, said):
    """An archive is an upload path: the push rules (designs/push_rules.py) hold for it."""
    bundle, commit = bundle_of_names(tmp_path, names)
    path = archive_of_one_design(tmp_path, bundle, commit)
    job = import_into(people[1], path)
    assert job.status == ArchiveImport.Status.DONE, job.error
    notes = " ".join(job.report["notes"])
    assert "designs/7/repo.bundle holds what this hub refuses in a push" in notes
    assert said in notes
    assert not Design.objects.filter(owner=people[1]).exists()
    assert not Design(owner=people[1], slug="bracket").repo_path.exists()


def test_a_bundle_holding_a_blob_over_the_size_limit_leaves_no_design(people, tmp_path, settings):
    settings.FABHUB_MAX_GIT_BLOB_BYTES = 1024
    bundle, commit = bundle_of_names(tmp_path, [b"big.stl"], data=b"x" * 4096)
    path = archive_of_one_design(tmp_path, bundle, commit)
    job = import_into(people[1], path)
    assert job.status == ArchiveImport.Status.DONE, job.error
    assert "big.stl is 0.0 MB, over the 0 MB limit" in " ".join(job.report["notes"])
    assert not Design.objects.filter(owner=people[1]).exists()
