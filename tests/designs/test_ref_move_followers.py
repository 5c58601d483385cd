"""`selectors.ref_move_followers`: what a ref move must tell (push mirrors, open proposals,
assembly ties), read in one hand-written statement. Each part is checked against the
rows that must and must not count, on SQLite and PostgreSQL (CI runs both)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from designs.models import AssemblyCheck, ChangeProposal, ModuleUse, PushMirror
from designs.selectors import RefMoveFollowers, ref_move_followers
from tests.factories import DesignFactory

pytestmark = pytest.mark.django_db

HEAD = "a" * 40


def proposal(target, number: int, *, source=None, status=ChangeProposal.Status.OPEN) -> ChangeProposal:
    return ChangeProposal.objects.create(
        target=target,
        number=number,
        target_branch="main",
        source=source,
        source_name="x",
        source_branch=f"branch-{number}",
        title=f"Proposal {number}",
        status=status,
        head_sha=HEAD,
    )


def test_a_design_nothing_follows_reads_nothing_and_costs_one_statement():
    design = DesignFactory()
    with CaptureQueriesContext(connection) as queries:
        followers = ref_move_followers(design_id=design.pk, head_before=HEAD)
    assert len(queries) == 1
    assert followers == RefMoveFollowers(
        push_mirror_ids=[], proposal_ids=[], in_assemblies=False, was_assembly=False
    )


def test_only_the_designs_enabled_push_mirrors_in_id_order():
    design, other = DesignFactory(), DesignFactory()
    first = PushMirror.objects.create(design=design, url="https://example.org/a.git")
    PushMirror.objects.create(design=design, url="https://example.org/b.git", enabled=False)
    PushMirror.objects.create(design=other, url="https://example.org/c.git")
    last = PushMirror.objects.create(design=design, url="https://example.org/d.git")
    followers = ref_move_followers(design_id=design.pk, head_before=None)
    assert followers.push_mirror_ids == [first.pk, last.pk]


def test_open_proposals_it_is_the_target_or_the_source_of_the_newest_hundred():
    design, fork, elsewhere = DesignFactory(), DesignFactory(), DesignFactory()
    as_target = [proposal(design, n, source=fork) for n in range(1, 106)]
    as_source = proposal(fork, 50, source=design)
    merged = proposal(design, 200)
    ChangeProposal.objects.filter(pk=merged.pk).update(status=ChangeProposal.Status.MERGED, merged_sha=HEAD)
    proposal(design, 201, status=ChangeProposal.Status.CLOSED)
    proposal(elsewhere, 300, source=fork)
    ids = ref_move_followers(design_id=design.pk, head_before=None).proposal_ids
    # The hundred highest numbers among the open ones: 7-105 targeting it, and the one
    # it is the source of (50); 1-6 are left out.
    assert sorted(ids) == sorted([p.pk for p in as_target[6:]] + [as_source.pk])


def test_assembly_ties_are_read_only_when_asked():
    design = DesignFactory()
    followers = ref_move_followers(design_id=design.pk, head_before=None)
    assert followers.in_assemblies is None and followers.was_assembly is None


@pytest.mark.parametrize("role", ["assembly", "module"])
def test_a_design_using_or_used_as_a_module_is_in_assemblies(role):
    design, other = DesignFactory(), DesignFactory()
    assembly, module = (design, other) if role == "assembly" else (other, design)
    ModuleUse.objects.create(assembly=assembly, module=module, path="modules/x", commit_sha=HEAD)
    followers = ref_move_followers(design_id=design.pk, head_before=HEAD)
    assert followers.in_assemblies is True and followers.was_assembly is False
    unrelated = DesignFactory()
    assert ref_move_followers(design_id=unrelated.pk, head_before=HEAD).in_assemblies is False


def test_was_assembly_only_for_the_head_before_and_only_if_it_read_as_one():
    design = DesignFactory()
    AssemblyCheck.objects.create(design=design, commit_sha="b" * 40, is_assembly=True)
    AssemblyCheck.objects.create(design=design, commit_sha="c" * 40, is_assembly=False)
    AssemblyCheck.objects.create(design=DesignFactory(), commit_sha=HEAD, is_assembly=True)
    assert ref_move_followers(design_id=design.pk, head_before=HEAD).was_assembly is False
    assert ref_move_followers(design_id=design.pk, head_before="c" * 40).was_assembly is False
    assert ref_move_followers(design_id=design.pk, head_before="b" * 40).was_assembly is True
