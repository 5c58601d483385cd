"""Input and output shapes of the designs API. Inputs validate; outputs describe."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from rest_framework import serializers

from designs.models import Collaborator, Design, Licence, OkhDocumentationReadiness, OkhTechnologyReadiness
from designs.okh import hub_root, okh_url
from designs.selectors import clone_url, design_release_notes
from hub.inputs import Input
from hub.markdown import MAX_MARKDOWN_CHARS

if TYPE_CHECKING:
    from designs.git import Commit


class DesignOutput(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username")
    full_name = serializers.CharField()
    tags = serializers.SerializerMethodField()
    forked_from = serializers.SerializerMethodField()
    forked_from_url = serializers.SerializerMethodField(
        help_text="For a fork whose upstream is on another hub: the upstream's address there."
    )
    imported_from = serializers.SerializerMethodField(
        help_text="For a design imported from another hub (an account archive): its address there."
    )
    url = serializers.SerializerMethodField()
    web_url = serializers.SerializerMethodField()
    clone_url = serializers.SerializerMethodField()
    okh_url = serializers.SerializerMethodField(
        help_text="The Open Know-How manifest (okh.toml) of the default branch."
    )

    class Meta:
        model = Design
        fields = [
            "id",
            "owner",
            "slug",
            "full_name",
            "title",
            "summary",
            "licence",
            "visibility",
            "tags",
            "default_branch",
            "allow_default_branch_rewrite",
            "allow_tag_changes",
            "clone_url",
            "forked_from",
            "fork_point",
            "forked_from_url",
            "imported_from",
            "created_at",
            "updated_at",
            "url",
            "web_url",
            "okh_function",
            "okh_technology_readiness",
            "okh_documentation_readiness",
            "okh_documentation_language",
            "okh_url",
        ]

    def get_tags(self, design: Design) -> list[str]:
        return [t.name for t in design.tags.all()]

    def get_forked_from(self, design: Design) -> str | None:
        return design.forked_from_name or None

    def get_forked_from_url(self, design: Design) -> str | None:
        return design.forked_from_url or None

    def get_imported_from(self, design: Design) -> str | None:
        return design.imported_from or None

    def get_url(self, design: Design) -> str:
        path = reverse("api-design-detail", args=[design.owner.username, design.slug])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def get_clone_url(self, design: Design) -> str:
        return clone_url(design, self.context.get("request"))

    def get_okh_url(self, design: Design) -> str:
        return okh_url(design, root=hub_root(self.context.get("request")))

    def get_web_url(self, design: Design) -> str:
        path = reverse("design-detail", args=[design.owner.username, design.slug])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class DesignListOutput(DesignOutput):
    """A design in the list; with a text search (`q`), where the words were found."""

    snippet = serializers.SerializerMethodField(
        help_text="With `q`: HTML of the summary or README around the first hit, the text "
        "escaped and each hit in <mark>; empty without `q` or when only paths matched."
    )
    matched_paths = serializers.SerializerMethodField(
        help_text="With `q`: up to three files of the default branch whose paths matched, "
        "as HTML (escaped, each hit in <mark>)."
    )

    stars = serializers.IntegerField(source="social.stars")
    watchers = serializers.IntegerField(
        source="social.watchers", help_text="People watching it, not ignoring it."
    )
    forks = serializers.IntegerField(source="social.forks", help_text="Its forks that you may see.")
    makes = serializers.IntegerField(source="social.makes")

    class Meta(DesignOutput.Meta):
        fields = [
            *DesignOutput.Meta.fields,
            "snippet",
            "matched_paths",
            "stars",
            "watchers",
            "forks",
            "makes",
        ]

    def get_snippet(self, design: Design) -> str:
        return str(getattr(design, "snippet", ""))

    def get_matched_paths(self, design: Design) -> list[str]:
        return [str(path) for path in getattr(design, "matched_paths", [])]


class TagName(serializers.RegexField):
    """A design's tag: words, starting with a letter or digit (`3d-printing`, `Body panel`)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(
            r"^[^\W_][\w .+-]*$",
            max_length=50,
            error_messages={
                "invalid": "A tag starts with a letter or digit and holds words, spaces, '.', '+' or '-'."
            },
            **kwargs,
        )


class DesignCreateInput(Input):
    slug = serializers.CharField(max_length=100)
    title = serializers.CharField(max_length=200, required=False, default="")
    summary = serializers.CharField(required=False, allow_blank=True, default="")
    licence = serializers.ChoiceField(choices=Licence.choices)
    visibility = serializers.ChoiceField(choices=Design.Visibility.choices, default=Design.Visibility.PUBLIC)
    tags = serializers.ListField(child=TagName(), required=False, default=list)
    default_branch = serializers.CharField(max_length=100, required=False, default="main")


class DesignUpdateInput(Input):
    refuse_empty = True
    allow_default_branch_rewrite = serializers.BooleanField(
        required=False, help_text="Let pushes delete or force-push the default branch."
    )
    allow_tag_changes = serializers.BooleanField(
        required=False, help_text="Let pushes, pages and the API move and delete tags (releases)."
    )
    title = serializers.CharField(max_length=200, required=False)
    summary = serializers.CharField(required=False, allow_blank=True)
    licence = serializers.ChoiceField(choices=Licence.choices, required=False)
    visibility = serializers.ChoiceField(choices=Design.Visibility.choices, required=False)
    tags = serializers.ListField(child=TagName(), required=False)
    default_branch = serializers.CharField(max_length=100, required=False)
    okh_function = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, help_text="What the design does (Open Know-How)."
    )
    okh_technology_readiness = serializers.ChoiceField(
        choices=OkhTechnologyReadiness.choices,
        required=False,
        allow_blank=True,
        help_text="Empty: not stated.",
    )
    okh_documentation_readiness = serializers.ChoiceField(
        choices=OkhDocumentationReadiness.choices,
        required=False,
        allow_blank=True,
        help_text="Empty: not stated.",
    )
    okh_documentation_language = serializers.CharField(
        max_length=35, required=False, allow_blank=True, help_text="A BCP 47 language tag, e.g. en-GB."
    )


class PersonOutput(serializers.Serializer):
    name = serializers.CharField()
    email = serializers.CharField()


class FileStatusOutput(serializers.Serializer):
    status = serializers.CharField()
    path = serializers.CharField()
    old_path = serializers.CharField(allow_null=True)


class CommitOutput(serializers.Serializer):
    sha = serializers.CharField()
    parents = serializers.ListField(child=serializers.CharField())
    author = PersonOutput()
    authored_at = serializers.DateTimeField()
    committer = PersonOutput()
    committed_at = serializers.DateTimeField()
    message = serializers.CharField()
    files = FileStatusOutput(many=True)


def commits_output(commits: Iterable[Commit]) -> list[dict[str, Any]]:
    """What `CommitOutput(commits, many=True).data` gives, built as plain dicts.

    A history page describes 30-100 commits: DRF's nested serializers (a Serializer per
    commit, per person, per file) cost more than the `git log` that read them. Keep the
    keys in CommitOutput's order; tests/designs/test_history_output.py holds the two equal.
    """
    when = _iso_8601_in(timezone.get_current_timezone() if settings.USE_TZ else None)
    return [
        {
            "sha": c.sha,
            "parents": list(c.parents),
            "author": {"name": c.author.name, "email": c.author.email},
            "authored_at": when(c.authored_at),
            "committer": {"name": c.committer.name, "email": c.committer.email},
            "committed_at": when(c.committed_at),
            "message": c.message,
            "files": [{"status": f.status, "path": f.path, "old_path": f.old_path} for f in c.files],
        }
        for c in commits
    ]


def _iso_8601_in(zone: tzinfo | None) -> Callable[[datetime], str]:
    """What DRF's DateTimeField gives for a git time (always aware), in `zone` (None: in
    UTC, as naive): ISO 8601, "Z" for UTC. The zone is looked up once per page, where a
    field looks it up for every value (60 context-local reads a page), and a time is
    converted with no field machinery; tests/designs/test_history_output.py holds the
    two equal."""

    def when(value: datetime) -> str:
        if zone is None:  # DRF makes an aware time naive in UTC
            return value.astimezone(UTC).replace(tzinfo=None).isoformat()
        text = value.astimezone(zone).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return when


class CommitPageOutput(serializers.Serializer):
    """One page of a history: the shape of the API's other paginated lists, but `count` is
    null while a long history is being counted (in the background; a later request has it)."""

    count = serializers.IntegerField(allow_null=True)
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = CommitOutput(many=True)


class CommitCreated(serializers.Serializer):
    sha = serializers.CharField()
    branch = serializers.CharField()


class WriteInput(Input):
    message = serializers.CharField(max_length=10000)
    branch = serializers.CharField(max_length=200, required=False)
    parent = serializers.RegexField(  # type: ignore[assignment]  # a declared field, not Field.parent
        r"^[0-9a-f]{40}$", required=False, help_text="Expected head of the branch; 409 if it moved."
    )


class UploadInput(WriteInput):
    files = serializers.ListField(child=serializers.FileField(allow_empty_file=True), allow_empty=False)
    folder = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="Folder to put the files in."
    )
    paths = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="Paths for the files, in order (instead of their upload names).",
    )

    def validate(self, data):
        if "paths" in data and len(data["paths"]) != len(data["files"]):
            raise serializers.ValidationError("Give one path per file, or none.")
        return data


class DeleteInput(WriteInput):
    paths = serializers.ListField(child=serializers.CharField(), allow_empty=False)


class RenameInput(WriteInput):
    from_path = serializers.CharField()
    to_path = serializers.CharField()


class TreeEntryOutput(serializers.Serializer):
    path = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.CharField()
    mode = serializers.CharField()
    sha = serializers.CharField()
    size = serializers.IntegerField(allow_null=True)


class TreeOutput(serializers.Serializer):
    commit = serializers.CharField()
    path = serializers.CharField()
    entries = TreeEntryOutput(many=True)


class BranchOutput(serializers.Serializer):
    name = serializers.CharField()
    head = serializers.CharField()
    default = serializers.BooleanField()


class BranchCreateInput(Input):
    name = serializers.CharField(max_length=200)
    start = serializers.CharField(
        max_length=200, required=False, help_text="Branch, tag or sha; default branch if absent."
    )


class TagOutput(serializers.Serializer):
    name = serializers.CharField()
    target = serializers.CharField()
    notes = serializers.CharField(source="message")
    notes_html = serializers.SerializerMethodField(help_text="The notes as sanitised HTML (Markdown).")
    tagger = PersonOutput(allow_null=True)
    tagged_at = serializers.DateTimeField(allow_null=True)

    def get_notes_html(self, tag) -> str:
        return design_release_notes(self.context["design"], tag)


class TagCreateInput(Input):
    name = serializers.CharField(max_length=200)
    target = serializers.CharField(
        max_length=200,
        help_text="The branch, tag or commit sha to tag.",
        error_messages={"required": "Say what to tag: a branch, tag or commit sha, e.g. main."},
    )
    notes = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=MAX_MARKDOWN_CHARS, help_text="Markdown."
    )


class FileDiffOutput(serializers.Serializer):
    status = serializers.CharField()
    path = serializers.CharField()
    old_path = serializers.CharField(allow_null=True)
    old_sha = serializers.CharField(allow_null=True)
    new_sha = serializers.CharField(allow_null=True)
    old_size = serializers.IntegerField(allow_null=True)
    new_size = serializers.IntegerField(allow_null=True)
    size_delta = serializers.IntegerField()
    kind = serializers.CharField()
    detail = serializers.DictField()


class DiffOutput(serializers.Serializer):
    base = serializers.CharField(allow_null=True)
    head = serializers.CharField()
    files = FileDiffOutput(many=True)


class ReadmeOutput(serializers.Serializer):
    commit = serializers.CharField()
    path = serializers.CharField(allow_null=True)
    html = serializers.CharField()


class ForkInput(Input):
    slug = serializers.CharField(max_length=100, required=False)


class CollaboratorOutput(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")

    class Meta:
        model = Collaborator
        fields = ["username", "role", "created_at"]


class CollaboratorInput(Input):
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=Collaborator.Role.choices)


class MeshFileOutput(serializers.Serializer):
    path = serializers.CharField()
    blob_sha = serializers.CharField()
    size = serializers.IntegerField(allow_null=True)
    status = serializers.CharField(help_text="pending, running, done, failed or not-analysed")
    figures = serializers.DictField(allow_null=True)
    reason = serializers.CharField(allow_blank=True, help_text="Why the analysis failed, in words.")
    thumbnail_url = serializers.CharField(allow_null=True)
    fits = serializers.BooleanField(
        allow_null=True, help_text="Fits the build_volume given, rotation allowed."
    )


class MeshListOutput(serializers.Serializer):
    commit = serializers.CharField()
    files = MeshFileOutput(many=True)


# -- proposals, sync with upstream, mirrors ------------------------------------------------


class ConflictOutput(serializers.Serializer):
    path = serializers.CharField()
    kind = serializers.CharField(
        help_text="content, binary, lfs, modify/delete, add/add, rename, file/directory, other"
    )
    message = serializers.CharField()


class ProposalOutput(serializers.Serializer):
    number = serializers.IntegerField()
    title = serializers.CharField()
    description = serializers.CharField()
    status = serializers.CharField()
    author = serializers.CharField(source="author.username", allow_null=True, default=None)
    source = serializers.CharField(source="source_name")  # type: ignore[assignment]  # a declared field, not Field.source
    source_branch = serializers.CharField()
    target = serializers.CharField(source="target.full_name")
    target_branch = serializers.CharField()
    head = serializers.CharField(source="head_sha", help_text="The source branch's head the figures are for.")
    target_head = serializers.CharField(
        source="target_sha", help_text="The target branch's head they are for."
    )
    merge_base = serializers.CharField()
    merge_state = serializers.CharField(help_text="fast-forward, clean, conflict, missing or unknown")
    conflicts = ConflictOutput(many=True)
    commit_count = serializers.IntegerField()
    merged_sha = serializers.CharField()
    merged_by = serializers.CharField(source="merged_by.username", allow_null=True, default=None)
    merged_at = serializers.DateTimeField(allow_null=True)
    closed_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ProposalCreateInput(Input):
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    source = serializers.CharField(  # type: ignore[assignment]  # a declared field, not Field.source
        max_length=250,
        required=False,
        help_text="owner/slug of the design to merge from; this design if absent.",
    )
    source_branch = serializers.CharField(max_length=200)
    target_branch = serializers.CharField(
        max_length=200, required=False, help_text="Default branch if absent."
    )


class ProposalUpdateInput(Input):
    refuse_empty = True
    title = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=["open", "closed"], required=False, help_text="Close or reopen.")


class ProposalMergeInput(Input):
    expected_head = serializers.RegexField(
        r"^[0-9a-f]{40}$", required=False, help_text="The source head you reviewed; 409 if it moved."
    )
    expected_target = serializers.RegexField(
        r"^[0-9a-f]{40}$", required=False, help_text="The target head you reviewed; 409 if it moved."
    )
    message = serializers.CharField(max_length=10000, required=False, allow_blank=True)


class ProposalMergedOutput(serializers.Serializer):
    sha = serializers.CharField(help_text="The target branch's new head.")
    proposal = ProposalOutput()


class CommentOutput(serializers.Serializer):
    id = serializers.IntegerField()
    author = serializers.CharField(source="author.username", allow_null=True, default=None)
    body = serializers.CharField()
    created_at = serializers.DateTimeField()


class CommentInput(Input):
    body = serializers.CharField(max_length=20000)


class UpstreamOutput(serializers.Serializer):
    upstream = serializers.CharField(source="upstream.full_name")
    branch = serializers.CharField()
    upstream_branch = serializers.CharField()
    head = serializers.CharField(allow_null=True)
    upstream_head = serializers.CharField(allow_null=True)
    ahead = serializers.IntegerField(help_text="Commits only this fork's branch has.")
    behind = serializers.IntegerField(help_text="Commits only the upstream's branch has.")
    can_fast_forward = serializers.BooleanField()


class SyncInput(Input):
    branch = serializers.CharField(max_length=200, required=False, help_text="Default branch if absent.")
    merge = serializers.BooleanField(
        default=False, help_text="Make a merge commit if the fork has commits of its own (else 409)."
    )


class SyncOutput(serializers.Serializer):
    outcome = serializers.CharField(help_text="up-to-date, fast-forward or merged")
    head = serializers.CharField(allow_null=True)
    ahead = serializers.IntegerField()
    behind = serializers.IntegerField()


class PullMirrorOutput(serializers.Serializer):
    url = serializers.CharField()
    has_credential = serializers.SerializerMethodField()
    username = serializers.CharField()
    interval = serializers.IntegerField(help_text="Seconds between scheduled refreshes.")
    refreshing = serializers.SerializerMethodField()
    next_refresh_at = serializers.DateTimeField()
    last_attempt_at = serializers.DateTimeField(allow_null=True)
    last_success_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField(help_text="Why the last refresh failed; empty if it worked.")
    warning = serializers.CharField()
    failures = serializers.IntegerField(help_text="Failed refreshes in a row.")

    def get_has_credential(self, mirror) -> bool:
        return bool(mirror.credential)

    def to_representation(self, mirror) -> dict:
        data = super().to_representation(mirror)
        # The remote's own words (addresses, server messages) are for the design's owner.
        if data["last_error"] and not self.context.get("show_remote_text"):
            data["last_error"] = "The last refresh failed."
        return data

    def get_refreshing(self, mirror) -> bool:
        return mirror.refreshing_since is not None


class MirrorCreateInput(Input):
    slug = serializers.CharField(max_length=100)
    url = serializers.CharField(max_length=2000, help_text="http(s):// or ssh:// address of the repository.")
    licence = serializers.ChoiceField(
        choices=Licence.choices, help_text="The licence of the mirrored design."
    )
    title = serializers.CharField(max_length=200, required=False, default="")
    summary = serializers.CharField(required=False, allow_blank=True, default="")
    visibility = serializers.ChoiceField(choices=Design.Visibility.choices, default=Design.Visibility.PUBLIC)
    username = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    token = serializers.CharField(
        max_length=4096,
        required=False,
        allow_blank=True,
        default="",
        write_only=True,
        help_text="Stored encrypted, never shown again.",
    )
    interval = serializers.IntegerField(required=False, min_value=1, help_text="Seconds between refreshes.")


class MirrorCreatedOutput(serializers.Serializer):
    design = DesignOutput()
    mirror = PullMirrorOutput()


class PullMirrorUpdateInput(Input):
    refuse_empty = True
    url = serializers.CharField(max_length=2000, required=False)
    username = serializers.CharField(max_length=200, required=False, allow_blank=True)
    token = serializers.CharField(max_length=4096, required=False, allow_blank=True, write_only=True)
    clear_credential = serializers.BooleanField(required=False, default=False)
    interval = serializers.IntegerField(required=False, min_value=1)


class PushMirrorOutput(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    has_credential = serializers.SerializerMethodField()
    username = serializers.CharField()
    enabled = serializers.BooleanField()
    pending = serializers.BooleanField(help_text="Changes not pushed yet.")
    pushing = serializers.SerializerMethodField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    last_attempt_at = serializers.DateTimeField(allow_null=True)
    last_success_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField()
    failures = serializers.IntegerField()

    def get_has_credential(self, mirror) -> bool:
        return bool(mirror.credential)

    def get_pushing(self, mirror) -> bool:
        return mirror.pushing_since is not None


class PushMirrorInput(Input):
    url = serializers.CharField(max_length=2000)
    username = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    token = serializers.CharField(
        max_length=4096,
        required=False,
        allow_blank=True,
        default="",
        write_only=True,
        help_text="Stored encrypted, never shown again.",
    )


class PushMirrorUpdateInput(Input):
    refuse_empty = True
    enabled = serializers.BooleanField(required=False)
    username = serializers.CharField(max_length=200, required=False, allow_blank=True)
    token = serializers.CharField(max_length=4096, required=False, allow_blank=True, write_only=True)
