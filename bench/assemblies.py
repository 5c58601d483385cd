"""An assembly of 50 modules nested 3 deep: the hub's check, rolled-up BOM and assembly
page against reading the same files straight from git, in the same run.

The assembly: a top design pinning SUBS sub-assemblies, each pinning LEAVES leaf modules
(every one a design of its own with a bom.csv and a module.toml), as git submodules with
.gitmodules and assembly.toml — the shape of docs/assemblies.md.

- hub, cold: no stored check (the AssemblyCheck rows deleted), so `assembly_check` reads
  every repository, then `rollup.assembly_view` adds the BOM up — what the background
  check and the first page after a push do between them.
- hub, warm: the checks stored; `rollup.assembly_view` alone, the whole page through
  django.test.Client, and the rolled-up BOM as CSV.
- baseline: one `git cat-file --batch` process per repository reading its .gitmodules,
  assembly.toml, modules/ tree (the pins) and bom.csv, walking down the pins and summing
  the BOM quantities in Python. Both answers are checked to be the same.

Goals (issue 14): cold ≤ 2×, warm ≤ 1.2× the baseline; both linear or better in the
number of modules. Sizes 10, 25 and 50 show the growth. Ratios are hub / baseline.
"""

from __future__ import annotations

import csv
import io
import posixpath
import subprocess
import sys
import tomllib
from collections import Counter
from typing import TYPE_CHECKING

from _django import best_of, setup

if TYPE_CHECKING:
    from designs.models import Design

# (sub-assemblies, leaves per sub-assembly): modules = subs + subs × leaves.
SIZES = {10: (2, 4), 25: (5, 4), 50: (5, 9)}
BOM_LINES = 8
COLD_RUNS = 3
WARM_RUNS = 10


def leaf_files(sub: int, leaf: int) -> dict[str, bytes]:
    rows = ["part,qty,description"]
    rows += [
        f"part-{(sub * 7 + leaf + n) % 20:02d},{n + 1},line {n} of leaf {sub}.{leaf}"
        for n in range(BOM_LINES)
    ]
    rows.append(f"M{3 + leaf % 4} bolt,4,fastener")
    return {
        "README.md": f"# Leaf {sub}.{leaf}\n".encode(),
        "bom.csv": ("\n".join(rows) + "\n").encode(),
        "module.toml": f'[[provides]]\nname = "mount-{sub}-{leaf}"\ndescription = "A mount."\n'.encode(),
    }


def build(size: int) -> tuple[Design, str]:
    """The designs of one assembly of `size` modules; returns the top design and its repos' root."""
    from designs import services
    from designs.git import FileEdit, Person
    from hub.models import User

    subs, leaves = SIZES[size]
    owner = User.objects.get(username="bench")
    who = Person(name="Bench", email="bench@example.org")

    def commit(design, files: dict[str, bytes], pins: dict[str, tuple[object, str, int]]) -> str:
        repo = design.repo
        edits = [FileEdit(path, repo.write_blob(data)) for path, data in files.items()]
        if pins:
            gitmodules, toml = [], []
            for path, (module, pin, quantity) in pins.items():
                edits.append(FileEdit(path, pin, "160000"))
                gitmodules.append(
                    f'[submodule "{path}"]\n\tpath = {path}\n\turl = ../../bench/{module.slug}.git\n'
                )
                toml.append(
                    f'[[module]]\npath = "{path}"\nrelease = "v1"\nquantity = {quantity}\n'
                    f"position = [{len(toml) * 100}, 0, 0]\n"
                )
            edits.append(FileEdit(".gitmodules", repo.write_blob("".join(gitmodules).encode())))
            edits.append(FileEdit("assembly.toml", repo.write_blob(("\n".join(toml)).encode())))
        tree = repo.build_tree(None, edits)
        sha = repo.commit_tree(tree, [], "Bench", author=who, committer=who)
        repo.update_ref("refs/heads/main", sha, None)
        repo.create_tag("v1", sha, "v1", who)
        return sha

    def design(slug: str):
        return services.design_create(owner=owner, slug=slug, title=slug, licence="MIT", summary="", tags=[])

    sub_pins = {}
    for s in range(subs):
        leaf_pins = {}
        for n in range(leaves):
            leaf = design(f"s{size}-leaf-{s}-{n}")
            leaf_pins[f"modules/leaf-{n}"] = (leaf, commit(leaf, leaf_files(s, n), {}), 1 + n % 3)
        sub = design(f"s{size}-sub-{s}")
        sub_pins[f"modules/sub-{s}"] = (sub, commit(sub, {"README.md": b"# Sub\n"}, leaf_pins), 2)
    top = design(f"s{size}-top")
    commit(top, {"README.md": b"# Top\n"}, sub_pins)
    return top, str(top.repo_path.parent.parent)


# -- the baseline: git cat-file --batch, one process per repository --------------------------


class CatFile:
    def __init__(self, git_dir: str) -> None:
        self.proc = subprocess.Popen(
            ["git", "--git-dir", git_dir, "cat-file", "--batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def read_all(self, names: list[str]) -> list[tuple[str, bytes] | None]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("".join(f"{name}\n" for name in names).encode())
        self.proc.stdin.close()
        found: list[tuple[str, bytes] | None] = []
        for _ in names:
            header = self.proc.stdout.readline().split()
            if header[-1] == b"missing":
                found.append(None)
                continue
            data = self.proc.stdout.read(int(header[2]))
            self.proc.stdout.read(1)
            found.append((header[1].decode(), data))
        self.proc.wait()
        return found


def gitlinks(tree: bytes, folder: str) -> dict[str, str]:
    """path → pinned commit of the submodules in a raw tree object."""
    links, at = {}, 0
    while at < len(tree):
        space, nul = tree.index(b" ", at), tree.index(b"\0", at)
        mode, name = tree[at:space], tree[space + 1 : nul].decode()
        if mode == b"160000":
            links[f"{folder}/{name}"] = tree[nul + 1 : nul + 21].hex()
        at = nul + 21
    return links


def submodule_urls(text: str) -> dict[str, str]:
    urls, path = {}, ""
    for line in text.splitlines():
        key, _, value = line.strip().partition(" = ")
        if key == "path":
            path = value
        elif key == "url":
            urls[path] = value
    return urls


def baseline(repos: str, owner: str, slug: str, commit: str, multiplier: int, totals: Counter) -> int:
    """Walk the assembly down its pins; add each BOM's quantities × quantity. Returns the
    number of modules seen."""
    gitmodules, assembly, modules, bom = CatFile(f"{repos}/{owner}/{slug}.git").read_all(
        [f"{commit}:.gitmodules", f"{commit}:assembly.toml", f"{commit}:modules", f"{commit}:bom.csv"]
    )
    if bom is not None:
        for row in csv.DictReader(io.StringIO(bom[1].decode())):
            totals[row["part"]] += float(row["qty"]) * multiplier
    if gitmodules is None or modules is None:
        return 0
    quantities = {}
    if assembly is not None:
        quantities = {m["path"]: m.get("quantity", 1) for m in tomllib.loads(assembly[1].decode())["module"]}
    seen = 0
    pins = gitlinks(modules[1], "modules")
    for path, url in submodule_urls(gitmodules[1].decode()).items():
        module_owner, module_git = (
            posixpath.normpath(posixpath.join(f"/{owner}/{slug}.git", url)).strip("/").split("/")
        )
        quantity = multiplier * quantities.get(path, 1)
        seen += 1 + baseline(repos, module_owner, module_git[: -len(".git")], pins[path], quantity, totals)
    return seen


# -- the run -------------------------------------------------------------------------------------


def main() -> None:
    setup()
    from django.contrib.auth.models import AnonymousUser
    from django.test import Client

    from designs import git, rollup
    from designs.models import AssemblyCheck, Design
    from designs.services import assemblies
    from hub.models import User

    User.objects.create_user("bench", password="bench-password")
    processes = Counter()
    execute, status = git.Repository._execute, git.Repository._status

    def counted_execute(self, *args, **kwargs):
        processes[args[0]] += 1
        return execute(self, *args, **kwargs)

    def counted_status(self, *args):
        processes[args[0]] += 1
        return status(self, *args)

    reader = git.ObjectReader.__init__

    def counted_reader(self, *args, **kwargs):
        processes["cat-file --batch-command"] += 1
        return reader(self, *args, **kwargs)

    git.Repository._execute = counted_execute
    git.Repository._status = counted_status
    git.ObjectReader.__init__ = counted_reader

    client = Client()
    viewer = AnonymousUser()
    results = {}
    for size in SIZES:
        top, repos = build(size)
        head = top.repo.branch_head("main")
        designs = Design.objects.filter(owner__username="bench", slug__startswith=f"s{size}-")

        def base(top=top, head=head, repos=repos, size=size) -> Counter:
            totals: Counter = Counter()
            assert baseline(repos, "bench", top.slug, head, 1, totals) == size
            return totals

        def cold(top=top, head=head) -> rollup.AssemblyView:
            check = assemblies.assembly_check(top, commit=head)
            return rollup.assembly_view(top, check=check, viewer=viewer)

        def warm(top=top, head=head) -> rollup.AssemblyView:
            check = AssemblyCheck.objects.get(design=top, commit_sha=head)
            return rollup.assembly_view(top, check=check, viewer=viewer)

        def page(top=top) -> None:
            response = client.get(f"/bench/{top.slug}/assembly/")
            assert response.status_code == 200 and b"data-assembly-bom" in response.content

        def bom_csv(top=top) -> None:
            response = client.get(f"/bench/{top.slug}/assembly/bom.csv")
            assert response.status_code == 200

        totals = base()
        cold_times = []
        for _ in range(COLD_RUNS):
            AssemblyCheck.objects.filter(design__in=designs).delete()
            processes.clear()
            cold_times.append(best_of(1, cold))
        cold_processes = dict(processes)
        view = warm()
        assert view.problems == [] and len(view.rows) == size, view.problems
        assert {row.key: row.quantity for row in view.bom} == dict(totals), "the hub and git disagree"
        page()  # the first request in a process loads templates and URL modules
        results[size] = {
            "baseline": best_of(WARM_RUNS, base),
            "cold": min(cold_times),
            "warm": best_of(WARM_RUNS, warm),
            "page": best_of(WARM_RUNS, page),
            "csv": best_of(WARM_RUNS, bom_csv),
            "processes": cold_processes,
        }

    print(
        f"assemblies: {', '.join(f'{s} modules ({a} × {b} leaves)' for s, (a, b) in SIZES.items())}, 3 levels"
    )
    header = f"{'':<40}" + "".join(f"{f'{size} modules':>22}" for size in SIZES)
    print(header)
    rows = [
        ("baseline: git cat-file --batch", "baseline"),
        ("hub cold: assembly_check + assembly_view", "cold"),
        ("hub warm: assembly_view", "warm"),
        ("hub warm: assembly page (Client)", "page"),
        ("hub warm: rolled-up BOM CSV (Client)", "csv"),
    ]
    for label, key in rows:
        cells = []
        for size in SIZES:
            figure = results[size][key]
            ratio = "" if key == "baseline" else f" {figure / results[size]['baseline']:5.2f}x"
            cells.append(f"{figure * 1000:9.1f}ms{ratio:>7}")
        print(f"{label:<40}" + "".join(f"{cell:>22}" for cell in cells))
    print(
        f"{'git processes, cold':<40}"
        + "".join(f"{sum(results[size]['processes'].values()):>22}" for size in SIZES)
    )
    print(f"{'git processes, baseline':<40}" + "".join(f"{size + 1:>22}" for size in SIZES))
    small, large = min(SIZES), max(SIZES)
    print(f"growth {small} → {large} modules (×{large / small:g}):", end="")
    for _, key in rows:
        print(f"  {key} ×{results[large][key] / results[small][key]:.1f}", end="")
    print()
    by_command = sorted(results[large]["processes"].items(), key=lambda item: -item[1])
    print(
        f"git processes of a cold check of {large} modules, by command:",
        ", ".join(f"{c} {n}" for c, n in by_command),
    )
    cold_ratio = results[large]["cold"] / results[large]["baseline"]
    warm_ratio = max(results[large][key] for key in ("warm", "page", "csv")) / results[large]["baseline"]
    print(
        f"goals at {large} modules: cold {cold_ratio:.2f}x (≤ 2x: {'met' if cold_ratio <= 2 else 'missed'}), "
        f"warm {warm_ratio:.2f}x (≤ 1.2x: {'met' if warm_ratio <= 1.2 else 'missed'})"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
