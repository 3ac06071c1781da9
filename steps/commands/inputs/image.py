"""The image a step builds or pushes: its repository, its tags, the engine, the retries."""

from __future__ import annotations

from dataclasses import dataclass

from steps.commands.inputs.registry import RETRIES
from steps.images.reference import TAG, parse_reference
from steps.runtime.errors import UsageError
from steps.runtime.inputs import option


@dataclass(frozen=True)
class ImagePush:
    """The image a step builds or pushes: its repository, its tags, the engine, the retries."""

    image_repository: str | None = option(
        "Repository the image is named in (registry/path).",
        env=("CD_IMAGE_REPOSITORY", "CI_REGISTRY_IMAGE"), metavar="REPOSITORY")
    tag: tuple[str, ...] = option("Tags of the image; default: the commit SHA and the ref slug.",
                                  env=("CD_TAGS",), default=())
    docker_host: str | None = option(
        "Docker engine to use (unix:///..., tcp://docker:2375) [default: DOCKER_HOST with "
        "DOCKER_TLS_VERIFY/DOCKER_CERT_PATH, else the local socket].", env=("CD_DOCKER_HOST",),
        metavar="URL")
    retries: int = RETRIES.field()

    def repository(self) -> str:
        """The image repository, checked: registry/path without tag or digest."""
        if not self.image_repository:
            raise UsageError("the image repository is required, e.g. registry.example.com/group/"
                             "app (GitLab sets CI_REGISTRY_IMAGE)", "image_repository")
        try:
            ref = parse_reference(self.image_repository)
        except ValueError as e:
            raise UsageError(str(e), "image_repository") from None
        if ref.tag or ref.digest:
            raise UsageError("give the repository without a tag or digest; tags go in --tag",
                             "image_repository")
        return self.image_repository

    def tags(self, commit_sha: str | None, ref_slug: str | None) -> list[str]:
        """The tags asked for, else the commit SHA and the ref slug; UsageError when none."""
        tags = list(self.tag) or [t for t in (commit_sha, ref_slug) if t]
        if not tags:
            raise UsageError("no tag: give --tag, or run in CI (CI_COMMIT_SHA / CD_COMMIT_SHA "
                             "gives the default tags)", "tag")
        for tag in tags:
            if not TAG.fullmatch(tag):
                raise UsageError(f"{tag!r} is not a valid tag ([A-Za-z0-9_.-], up to 128, not "
                                 "starting with . or -)", "tag")
        return list(dict.fromkeys(tags))

    def validate(self, commit_sha: str | None, ref_slug: str | None) -> None:
        """The checks of every step that names and pushes an image."""
        self.repository()
        self.tags(commit_sha, ref_slug)
        if self.retries < 0:
            raise UsageError("must be 0 or more", "retries")
