"""Writes to designs themselves: creating, updating, deleting, forking, sharing."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from designs.git import GitError, Repository, valid_ref_name
from designs.models import (
    Collaborator,
    Design,
    DesignLfsObject,
    OkhDocumentationReadiness,
    OkhTechnologyReadiness,
    Tag,
    repo_path,
    slug_validator,
)
from designs.okh import valid_language_tag
from designs.selectors import design_role
from designs.services import search, watches
from hub.exceptions import Conflict, PermissionDenied, ValidationError
from hub.models import User
from hub.queue import enqueue


def _clean_tags(names: Sequence[str]) -> list[Tag]:
    tags = []
    for name in names:
        slug = name.strip().lower().replace(" ", "-")
        if slug:
            tags.append(Tag.objects.get_or_create(name=slug[:50])[0])
    return tags


def check_slug(slug: str) -> None:
    try:
        slug_validator(slug)
    except DjangoValidationError as exc:
        raise ValidationError(f"Invalid design name {slug!r}: {exc.messages[0]}") from exc
    if slug.endswith(".git"):
        raise ValidationError("A design name cannot end in '.git'.")


def design_create(
    *,
    owner: User,
    slug: str,
    title: str,
    licence: str,
    summary: str = "",
    visibility: str = Design.Visibility.PUBLIC,
    tags: Sequence[str] = (),
    default_branch: str = "main",
) -> Design:
    check_slug(slug)
    if not valid_ref_name("heads", default_branch):
        raise ValidationError(f"{default_branch!r} is not a valid branch name.")
    if Design.objects.filter(owner=owner, slug__iexact=slug).exists():
        raise Conflict(f"You already have a design named {slug!r}.")
    path = repo_path(owner.username, slug)
    if path.exists():
        raise Conflict(f"A repository for {owner.username}/{slug} already exists on disk.")
    design = Design(
        owner=owner,
        slug=slug,
        title=title or slug,
        summary=summary,
        licence=licence,
        visibility=visibility,
        default_branch=default_branch,
    )
    try:
        with transaction.atomic():
            design.save()
            design.tags.set(_clean_tags(tags))
            Repository.init_bare(path, default_branch=default_branch)
    except IntegrityError as exc:
        shutil.rmtree(path, ignore_errors=True)
        raise Conflict(f"You already have a design named {slug!r}.") from exc
    except Exception:
        shutil.rmtree(path, ignore_errors=True)
        raise
    search.search_words_update(design=design)
    enqueue("designs.tasks.search_index_refresh", design.pk)
    watches.watch_auto(design=design, user=owner)
    return design


def design_update(
    *,
    design: Design,
    title: str | None = None,
    summary: str | None = None,
    licence: str | None = None,
    visibility: str | None = None,
    tags: Sequence[str] | None = None,
    default_branch: str | None = None,
    allow_default_branch_rewrite: bool | None = None,
    allow_tag_changes: bool | None = None,
    okh_function: str | None = None,
    okh_technology_readiness: str | None = None,
    okh_documentation_readiness: str | None = None,
    okh_documentation_language: str | None = None,
) -> Design:
    _check_okh(
        function=okh_function,
        technology_readiness=okh_technology_readiness,
        documentation_readiness=okh_documentation_readiness,
        documentation_language=okh_documentation_language,
    )
    if visibility == Design.Visibility.PUBLIC and design.visibility != visibility:
        hidden = private_upstreams(design)
        if hidden:
            raise ValidationError(
                f"This fork stays private while {hidden[0].full_name}, which it was forked from, is private.",
                field="visibility",
            )
    if licence is not None and licence != design.licence and design.is_fork:
        raise ValidationError(
            f"A fork keeps the licence of the design it was forked from ({design.licence})."
        )
    if default_branch is not None and default_branch != design.default_branch:
        if design.repo.branch_head(default_branch) is None:
            raise ValidationError(f"There is no branch {default_branch!r}.")
        design.repo.set_default_branch(default_branch)
        design.default_branch = default_branch
    for name, value in (
        ("title", title),
        ("summary", summary),
        ("licence", licence),
        ("visibility", visibility),
        ("allow_default_branch_rewrite", allow_default_branch_rewrite),
        ("allow_tag_changes", allow_tag_changes),
        ("okh_function", okh_function),
        ("okh_technology_readiness", okh_technology_readiness),
        ("okh_documentation_readiness", okh_documentation_readiness),
        ("okh_documentation_language", okh_documentation_language),
    ):
        if value is not None:
            setattr(design, name, value)
    design.updated_at = timezone.now()
    design.save()
    if tags is not None:
        design.tags.set(_clean_tags(tags))
    search.search_words_update(design=design)
    enqueue("designs.tasks.search_index_refresh", design.pk)
    return design


def _check_okh(
    *,
    function: str | None,
    technology_readiness: str | None,
    documentation_readiness: str | None,
    documentation_language: str | None,
) -> None:
    """The Open Know-How settings: each may be empty (not stated)."""
    if function is not None and len(function) > 2000:
        raise ValidationError("The function takes at most 2,000 characters.", field="okh_function")
    if technology_readiness and technology_readiness not in OkhTechnologyReadiness.values:
        raise ValidationError(
            f"Technology readiness is one of {', '.join(OkhTechnologyReadiness.values)}.",
            field="okh_technology_readiness",
        )
    if documentation_readiness and documentation_readiness not in OkhDocumentationReadiness.values:
        raise ValidationError(
            f"Documentation readiness is one of {', '.join(OkhDocumentationReadiness.values)}.",
            field="okh_documentation_readiness",
        )
    if documentation_language and not valid_language_tag(documentation_language):
        raise ValidationError(
            f"{documentation_language!r} is not a BCP 47 language tag, e.g. en or en-GB.",
            field="okh_documentation_language",
        )


def design_delete(*, design: Design) -> None:
    path = design.repo_path
    design.delete()
    transaction.on_commit(lambda: shutil.rmtree(path, ignore_errors=True))


def designs_of_leaving_account(user: User) -> None:
    """An account is being deleted (hub.accounts): its designs and repositories go with it.

    Forks others made keep their history and name the upstream by `forked_from_name`;
    proposals the person opened on others' designs stay, with no author. Their folder of
    repositories is removed once the deletion commits.
    """
    for design in Design.objects.filter(owner=user):
        design_delete(design=design)
    folder = Path(settings.REPOS_DIR) / user.username
    transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))


# -- private means private, forks included -------------------------------------------------
#
# A fork's access is always a subset of its upstream's: a fork of a private design is
# private and stays so while that upstream is private; only people who can see the
# upstream may be given access to the fork; and whoever loses access to a private design
# loses its forks too (theirs are deleted, as GitHub does; their collaborations on others'
# forks end). docs/architecture.md, "Private forks".

MAX_FORK_DEPTH = 100


def private_upstreams(design: Design) -> list[Design]:
    """The private designs `design` descends from by forking, nearest first."""
    found: list[Design] = []
    current = design.forked_from
    for _ in range(MAX_FORK_DEPTH):
        if current is None:
            break
        if current.visibility == Design.Visibility.PRIVATE:
            found.append(current)
        current = current.forked_from
    return found


def _fork_descendants(design: Design) -> list[Design]:
    """Every design forked, directly or through other forks, from `design`."""
    found: list[Design] = []
    level = [design.pk]
    for _ in range(MAX_FORK_DEPTH):
        children = list(Design.objects.filter(forked_from_id__in=level).select_related("owner"))
        if not children:
            break
        found += children
        level = [child.pk for child in children]
    return found


def _access_lost(design: Design, user: User) -> None:
    """`user` can no longer see the private `design`: what they held below it goes."""
    for descendant in _fork_descendants(design):
        if descendant.visibility != Design.Visibility.PRIVATE:
            continue  # forked while public: its content was theirs to copy then
        if descendant.owner_id == user.pk:
            design_delete(design=descendant)
        else:
            Collaborator.objects.filter(design=descendant, user=user).delete()


def design_fork(*, design: Design, user: User, slug: str | None = None) -> Design:
    """Clone `design` with its whole history into `user`'s namespace, keeping attribution.

    A fork of a private design (or of a fork of one) is private."""
    slug = slug or design.slug
    check_slug(slug)
    if Design.objects.filter(owner=user, slug__iexact=slug).exists():
        raise Conflict(f"You already have a design named {slug!r}; pick another name for the fork.")
    fork_point = design.repo.resolve(design.default_branch)
    if fork_point is None:
        raise ValidationError("An empty design cannot be forked: it has no commits yet.")
    path = repo_path(user.username, slug)
    if path.exists():
        raise Conflict(f"A repository for {user.username}/{slug} already exists on disk.")
    fork = Design(
        owner=user,
        slug=slug,
        title=design.title,
        summary=design.summary,
        licence=design.licence,
        visibility=(
            Design.Visibility.PRIVATE
            if design.visibility == Design.Visibility.PRIVATE or private_upstreams(design)
            else design.visibility
        ),
        default_branch=design.default_branch,
        forked_from=design,
        forked_from_name=design.full_name,
        fork_point=fork_point,
        cover_blob_sha=design.cover_blob_sha,
    )
    try:
        with transaction.atomic():
            fork.save()
            fork.tags.set(design.tags.all())
            _share_lfs_objects(source=design, fork=fork)
            Repository.clone_bare(design.repo, path).refresh_commit_graph()
    except IntegrityError as exc:
        shutil.rmtree(path, ignore_errors=True)
        raise Conflict(f"You already have a design named {slug!r}.") from exc
    except GitError:
        shutil.rmtree(path, ignore_errors=True)
        raise
    search.search_words_update(design=fork)
    enqueue("designs.tasks.search_index_refresh", fork.pk)
    watches.watch_auto(design=fork, user=user)
    watches.design_forked_notify(design=design, fork=fork, actor=user)
    return fork


def _share_lfs_objects(*, source: Design, fork: Design) -> None:
    """The fork may serve the LFS objects its source serves; the bytes are not copied.

    Rows of its own rather than a walk up `forked_from` at read time: the fork keeps its
    files if the upstream is deleted (`forked_from` becomes NULL), and it does not gain
    objects the upstream adds after the fork (perhaps once made private).
    """
    object_ids = source.lfs_links.values_list("lfs_object_id", flat=True)
    DesignLfsObject.objects.bulk_create(
        (DesignLfsObject(design=fork, lfs_object_id=object_id) for object_id in object_ids.iterator()),
        batch_size=500,
        ignore_conflicts=True,
    )


def collaborator_set(*, design: Design, actor: User, user: User, role: str) -> Collaborator:
    if design.owner_id != actor.pk:
        raise PermissionDenied("Only the owner manages collaborators.")
    if user.pk == design.owner_id:
        raise ValidationError("The owner is not a collaborator of their own design.")
    if design.visibility == Design.Visibility.PRIVATE:
        hidden = next((up for up in private_upstreams(design) if design_role(up, user) is None), None)
        if hidden is not None:
            raise ValidationError(
                f"{user.username} cannot see {hidden.full_name}, which this fork comes from: "
                f"its owner must give them access first.",
                field="username",
            )
    collaborator, _ = Collaborator.objects.update_or_create(design=design, user=user, defaults={"role": role})
    return collaborator


def collaborator_remove(*, design: Design, actor: User, user: User) -> None:
    if design.owner_id != actor.pk:
        raise PermissionDenied("Only the owner manages collaborators.")
    with transaction.atomic():
        removed, _ = Collaborator.objects.filter(design=design, user=user).delete()
        if removed and design.visibility == Design.Visibility.PRIVATE:
            _access_lost(design, user)
