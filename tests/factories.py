from __future__ import annotations

import factory
from django.core.files.base import ContentFile

from designs import services
from designs.git import FileEdit, Person, Repository
from designs.models import Design, Licence
from hub.models import User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"maker{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.django.Password("correct horse battery")


class DesignFactory(factory.Factory):
    """Creates designs through the service, so a real bare repository exists on disk."""

    class Meta:
        model = Design

    owner = factory.SubFactory(UserFactory)
    slug = factory.Sequence(lambda n: f"design-{n}")
    title = factory.LazyAttribute(lambda d: d.slug.replace("-", " ").title())
    licence = Licence.CERN_OHL_S
    visibility = Design.Visibility.PUBLIC

    @classmethod
    def _create(cls, model_class, **kwargs):
        return services.design_create(**kwargs)


def upload(path: str, content: bytes | str) -> services.Upload:
    data = content.encode() if isinstance(content, str) else content
    return services.Upload(path=path, content=ContentFile(data, name=path.rsplit("/", 1)[-1]))


def commit_files(design: Design, files: dict[str, bytes | str], message: str = "Add files", **kwargs) -> str:
    """Commit `files` to the design as its owner; return the new commit sha."""
    return services.design_commit(
        design=design,
        author=kwargs.pop("author", design.owner),
        message=message,
        uploads=[upload(p, c) for p, c in files.items()],
        **kwargs,
    )


def commit_to_repo(repo: Repository, files: dict[str, bytes]) -> str:
    """A commit on main of a bare repository (no design, no follow-ups) adding `files`."""
    who = Person(name="Ada", email="ada@example.org")
    edits = [FileEdit(path, repo.write_blob(data), "100644") for path, data in files.items()]
    head = repo.branch_head("main")
    sha = repo.commit_tree(
        repo.build_tree(head, edits), [head] if head else [], "Files", author=who, committer=who
    )
    repo.update_ref("refs/heads/main", sha, head)
    return sha
