"""Watching and starring designs, and who is told what happens to a design
(hub.notifications; docs/notifications.md).

Who hears of what:
- a proposal opened: the design's owner and write collaborators, and those watching it
  with level `all`;
- a comment: the proposal's participants (its author and everyone who commented) and
  the `all` watchers;
- a proposal merged or closed: its participants;
- an @mention in a proposal's description or a comment: the person named, if they exist
  and may see the design (instead of the other notice of the same event);
- a new release: the owner and those watching with `all` or `releases`; the owners of
  the assemblies that pin the design as a module hear of it as a module upgrade;
- a fork: the owner of the design forked.
`ignore` silences what comes from watching, and the owner's own notices of their design
(they watch it implicitly), never what is addressed to the person (their proposal, a
mention). Nobody hears of their own act, and nobody hears of a design they may not see.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse

from designs.models import ChangeProposal, Collaborator, Design, ModuleUse, ProposalComment, Star, Watch
from designs.selectors import DESIGN_TARGET, designs_visible_to
from hub import notifications
from hub.exceptions import NotFound, PermissionDenied, ValidationError
from hub.models import NotificationKind, User

Kind = NotificationKind
Level = Watch.Level

# @name as the hub spells usernames (hub.models.User); not inside an e-mail address.
MENTION_RE = re.compile(r"(?<![\w.@/-])@([A-Za-z0-9][A-Za-z0-9._-]{0,38})")
MAX_MENTIONS = 50


# -- watching and starring ------------------------------------------------------------------


def _require_visible(design: Design, user: User) -> None:
    if not user.is_authenticated:
        raise PermissionDenied("Log in first.")
    if not designs_visible_to(user).filter(pk=design.pk).exists():
        raise NotFound(f"No design {design.full_name}.")


def watch_set(*, design: Design, user: User, level: str) -> Watch:
    """Watch `design` at `level` (all, releases, ignore)."""
    _require_visible(design, user)
    if level not in Level.values:
        raise ValidationError(f"level must be one of {', '.join(Level.values)}.", field="level")
    watch, _ = Watch.objects.update_or_create(user=user, design=design, defaults={"level": level})
    return watch


def watch_remove(*, design: Design, user: User) -> None:
    """Stop watching: back to the default (an owner watches their design implicitly)."""
    _require_visible(design, user)
    Watch.objects.filter(user=user, design=design).delete()


def watch_auto(*, design: Design, user: User) -> None:
    """`user` starts watching `design` with level `all`, unless they chose a level before
    (an `ignore` stays ignore). Owners and proposal authors are watched in this way."""
    if not user.is_authenticated:
        return
    try:
        with transaction.atomic():
            Watch.objects.get_or_create(user=user, design=design, defaults={"level": Level.ALL})
    except IntegrityError:
        pass  # the same row written meanwhile: it is there, which is all this asks


def star_add(*, design: Design, user: User) -> None:
    _require_visible(design, user)
    try:
        with transaction.atomic():
            Star.objects.get_or_create(user=user, design=design)
    except IntegrityError:
        pass  # starred twice at once: one star


def star_remove(*, design: Design, user: User) -> None:
    _require_visible(design, user)
    Star.objects.filter(user=user, design=design).delete()


# -- who hears of what ----------------------------------------------------------------------


def _visible_only(design: Design, users: Iterable[User]) -> list[User]:
    """`users` who may see `design` (a private design: its owner and collaborators)."""
    users = [u for u in users if u is not None]
    if design.visibility == Design.Visibility.PUBLIC:
        return users
    allowed = {design.owner_id} | set(
        Collaborator.objects.filter(design=design).values_list("user_id", flat=True)
    )
    return [u for u in users if u.pk in allowed]


def _ignoring(design: Design) -> set[int]:
    return set(Watch.objects.filter(design=design, level=Level.IGNORE).values_list("user_id", flat=True))


def _watchers(design: Design, levels: Iterable[str]) -> list[User]:
    """Those watching `design` at one of `levels`, and its owner unless they ignore it."""
    rows = Watch.objects.filter(design=design, level__in=list(levels)).select_related("user")
    people = [row.user for row in rows]
    if design.owner_id not in _ignoring(design):
        people.append(design.owner)
    return people


def _participants(proposal: ChangeProposal) -> list[User]:
    commenters = ProposalComment.objects.filter(proposal=proposal, author__isnull=False).values("author_id")
    people = list(User.objects.filter(pk__in=commenters))
    if proposal.author is not None:
        people.insert(0, proposal.author)
    return people


def _proposal_link(proposal: ChangeProposal) -> str:
    target = proposal.target
    return reverse("design-proposal", args=[target.owner.username, target.slug, proposal.number])


def _design_link(design: Design) -> str:
    return reverse("design-detail", args=[design.owner.username, design.slug])


def _mentioned(design: Design, text: str, *, actor: User) -> list[User]:
    """The existing people `text` @mentions who may see `design`, the actor left out."""
    names = {match.lower() for match in MENTION_RE.findall(text or "")}
    if not names:
        return []
    query = Q()
    for name in sorted(names)[:MAX_MENTIONS]:
        query |= Q(username__iexact=name)
    people = [u for u in User.objects.filter(query, is_active=True) if u.pk != actor.pk]
    return _visible_only(design, people)


def _tell(
    people: Iterable[User],
    *,
    design: Design,
    kind: str,
    subject: str,
    body: str,
    actor: User | None,
    link: str,
    but: frozenset[int] | set[int] = frozenset(),
) -> set[int]:
    """Notify the distinct `people` who may see `design`, except `but`; their ids."""
    told = [u for u in _visible_only(design, people) if u.pk not in but]
    notes = notifications.notify_each(
        recipients=told,
        kind=kind,
        subject=subject,
        body=body,
        actor=actor,
        link=link,
        target_type=DESIGN_TARGET,
        target_id=design.pk,
    )
    return {note.recipient_id for note in notes}


def _tell_mentions(design: Design, text: str, *, actor: User, subject: str, body: str, link: str) -> set[int]:
    return _tell(
        _mentioned(design, text, actor=actor),
        design=design,
        kind=Kind.MENTION,
        subject=subject,
        body=body,
        actor=actor,
        link=link,
    )


def proposal_opened_notify(*, proposal: ChangeProposal, actor: User) -> None:
    design = proposal.target
    watch_auto(design=design, user=actor)
    link = _proposal_link(proposal)
    title = f"#{proposal.number} {proposal.title}"
    mentioned = _tell_mentions(
        design,
        proposal.description,
        actor=actor,
        subject=f"{actor.username} mentioned you in {design.full_name} {title}",
        body=proposal.description[:2000],
        link=link,
    )
    ignoring = _ignoring(design)
    writers = User.objects.filter(
        collaborations__design=design, collaborations__role=Collaborator.Role.WRITE
    ).exclude(pk__in=ignoring)
    _tell(
        [*_watchers(design, [Level.ALL]), *writers],
        design=design,
        kind=Kind.PROPOSAL_OPENED,
        subject=f"{actor.username} opened {title} on {design.full_name}",
        body=proposal.description[:2000],
        actor=actor,
        link=link,
        but=mentioned,
    )


def proposal_comment_notify(*, comment: ProposalComment) -> None:
    proposal, actor = comment.proposal, comment.author
    if actor is None:
        return
    design = proposal.target
    link = _proposal_link(proposal)
    title = f"#{proposal.number} {proposal.title}"
    mentioned = _tell_mentions(
        design,
        comment.body,
        actor=actor,
        subject=f"{actor.username} mentioned you on {design.full_name} {title}",
        body=comment.body[:2000],
        link=link,
    )
    _tell(
        [*_participants(proposal), *_watchers(design, [Level.ALL])],
        design=design,
        kind=Kind.PROPOSAL_COMMENT,
        subject=f"{actor.username} commented on {design.full_name} {title}",
        body=comment.body[:2000],
        actor=actor,
        link=link,
        but=mentioned,
    )


def proposal_decided_notify(*, proposal: ChangeProposal, actor: User | None) -> None:
    """Merged or closed: its author and everyone who commented. No actor: its commits
    reached the target branch by a push, not by the hub's merge."""
    design = proposal.target
    merged = proposal.status == ChangeProposal.Status.MERGED
    done = "merged" if merged else "closed"
    title = f"{design.full_name} #{proposal.number} {proposal.title}"
    _tell(
        _participants(proposal),
        design=design,
        kind=Kind.PROPOSAL_MERGED if merged else Kind.PROPOSAL_CLOSED,
        subject=f"{actor.username} {done} {title}" if actor is not None else f"{title} was {done}",
        body="",
        actor=actor,
        link=_proposal_link(proposal),
    )


def design_forked_notify(*, design: Design, fork: Design, actor: User) -> None:
    # Filed against the fork, which it names: a private fork not shared with the owner
    # is never named to them, and a fork made private later leaves their inbox.
    _tell(
        [design.owner],
        design=fork,
        kind=Kind.FORKED,
        subject=f"{actor.username} forked {design.full_name} as {fork.full_name}",
        body="",
        actor=actor,
        link=_design_link(fork),
    )


def tags_added(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The tags (releases) in refs `after` that refs `before` lacks, by name."""
    return sorted(
        ref.removeprefix("refs/tags/") for ref in after if ref.startswith("refs/tags/") and ref not in before
    )


def release_notify(*, design: Design, tags: list[str], actor: User | None) -> None:
    """New releases (tags) of `design`: its watchers, and the owners of the assemblies
    that pin it as a module (they may upgrade)."""
    if not tags:
        return
    names = ", ".join(tags[:5]) + (f" and {len(tags) - 5} more" if len(tags) > 5 else "")
    by = f" by {actor.username}" if actor is not None else ""
    link = reverse("design-tags", args=[design.owner.username, design.slug])
    _tell(
        _watchers(design, [Level.ALL, Level.RELEASES]),
        design=design,
        kind=Kind.RELEASE,
        subject=f"{design.full_name} released {names}",
        body=f"New release{'s' if len(tags) > 1 else ''} of {design.full_name}{by}: {names}.",
        actor=actor,
        link=link,
    )
    uses = ModuleUse.objects.filter(module=design).select_related("assembly__owner")
    for use in uses:
        assembly = use.assembly
        pinned = use.release or use.commit_sha[:10]
        # Filed against the module, which it names: it reaches, and stays with, only an
        # assembly owner who may see the module (their own assembly they always see).
        _tell(
            [assembly.owner],
            design=design,
            kind=Kind.MODULE_UPGRADE,
            subject=f"{design.full_name} released {names}: {assembly.full_name} pins {pinned}",
            body=f"{assembly.full_name} uses {design.full_name} at {use.path}; the assembly page offers the upgrade.",
            actor=actor,
            link=_design_link(assembly),
        )
