"""Inputs several commands share, each declared once: single inputs (a commit SHA, the job URL)
that a command takes as its own field, and groups a command nests whole (registry credentials,
the promotion service, the environment on its target).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from steps.images.credentials import CredentialStore
from steps.images.reference import TAG, parse_reference
from steps.runtime.errors import UsageError
from steps.runtime.inputs import Input, option
from steps.targets import TARGETS, project_name, slug

# ---------------------------------------------------------------- the CI pipeline

COMMIT_SHA = Input("Commit the image is built from.",
                   env=("CD_COMMIT_SHA", "CI_COMMIT_SHA", "GIT_COMMIT"))
REF_SLUG = Input("Branch or tag name, slugged (lower case, [a-z0-9-], 63 chars).",
                 env=("CD_REF_SLUG", "CI_COMMIT_REF_SLUG", "BRANCH_NAME"))
GIT_TAG = Input("Git tag of the pipeline, if any (v1.2.3 gives semver tags).",
                env=("CD_GIT_TAG", "CI_COMMIT_TAG", "TAG_NAME"))
PIPELINE_ID = Input("CI pipeline (or Jenkins build) id.",
                    env=("CD_PIPELINE_ID", "CI_PIPELINE_ID", "BUILD_NUMBER"))
PIPELINE_URL = Input("CI pipeline (or Jenkins build) URL.",
                     env=("CD_PIPELINE_URL", "CI_PIPELINE_URL", "BUILD_URL"))
JOB_URL = Input("URL of this CI job, recorded by the promotion service.",
                env=("CD_JOB_URL", "CI_JOB_URL", "BUILD_URL"), metavar="URL")


@dataclass(frozen=True)
class Pipeline:
    """The CI pipeline a step runs in, from GitLab's CI_* or Jenkins' variables."""

    commit_sha: str | None = COMMIT_SHA.field()
    ref_slug: str | None = REF_SLUG.field()
    git_tag: str | None = GIT_TAG.field()
    pipeline_id: str | None = PIPELINE_ID.field()
    pipeline_url: str | None = PIPELINE_URL.field()
    project_url: str | None = option("Web URL of the project's repository.",
                                     env=("CD_PROJECT_URL", "CI_PROJECT_URL", "GIT_URL"))
    project_path: str | None = option("Path of the project (group/name).",
                                      env=("CD_PROJECT_PATH", "CI_PROJECT_PATH", "JOB_NAME"))


@dataclass(frozen=True)
class ReleaseContext:
    """What a release record keeps of the pipeline that made it."""

    commit_sha: str | None = COMMIT_SHA.field()
    pipeline_id: str | None = PIPELINE_ID.field()
    pipeline_url: str | None = PIPELINE_URL.field()


# ---------------------------------------------------------------- registries and images

RETRIES = Input("Retries of a transient registry failure (5xx, connection reset), with "
                "backoff.", env=("CD_RETRIES",), default=3)


@dataclass(frozen=True)
class RegistryAuth:
    """Where a step finds registry credentials (see steps.images.credentials)."""

    registry: str | None = option("Registry host the CI system logs in to.",
                                  env=("CD_REGISTRY", "CI_REGISTRY"))
    registry_user: str | None = option("User for --registry.",
                                       env=("CD_REGISTRY_USER", "CI_REGISTRY_USER"))
    registry_password: str | None = option(
        "Password or token for --registry.", env=("CD_REGISTRY_PASSWORD", "CI_REGISTRY_PASSWORD"),
        secret=True)
    docker_auth_config: str | None = option(
        "Docker config JSON with registry credentials.", env=("DOCKER_AUTH_CONFIG",),
        secret=True, metavar="JSON")
    docker_config: str | None = option("Directory holding the Docker config.json.",
                                       env=("DOCKER_CONFIG",), metavar="DIR")

    def store(self) -> CredentialStore:
        """The places these inputs name, in the order credentials are looked for."""
        return CredentialStore(registry=self.registry, registry_user=self.registry_user,
                               registry_password=self.registry_password,
                               docker_auth_config=self.docker_auth_config,
                               docker_config=self.docker_config)


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


# ---------------------------------------------------------------- the promotion service


@dataclass(frozen=True)
class Service:
    """The promotion service a step reports to (or asks)."""

    service_url: str | None = option(
        "Promotion service base URL; reporting is skipped when unset.", env=("CD_SERVICE_URL",),
        metavar="URL")
    service_token: str | None = option("Bearer token for the promotion service.",
                                       env=("CD_SERVICE_TOKEN",), secret=True)


# ---------------------------------------------------------------- environments and targets

ENVIRONMENT = Input("Environment to act on (test, staging, production, ...).",
                    env=("CD_ENVIRONMENT", "CD_TARGET_ENVIRONMENT", "CI_ENVIRONMENT_NAME"))
TARGET = Input("Where the application runs: one Docker engine or a Docker Swarm.",
               env=("CD_DEPLOY_TARGET",), default="docker", choices=tuple(TARGETS))
HEALTH_TIMEOUT = Input("Seconds to wait for a release to become healthy.",
                       env=("CD_HEALTH_TIMEOUT",), default=120.0)
_ENVIRONMENT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def check_environment(environment: str | None) -> str:
    """The environment's name, checked: given, and usable in resource names."""
    if not environment:
        raise UsageError("required; name the environment, e.g. --environment staging",
                         "environment")
    if not _ENVIRONMENT_NAME.fullmatch(environment):
        raise UsageError(f"{environment!r} is not a valid environment name; use lower "
                         "case letters, digits, '-' and '_'", "environment")
    return environment


@dataclass(frozen=True)
class TargetEnvironment:
    """Where a deploy-side step acts: which environment of which project, on which target."""

    environment: str | None = ENVIRONMENT.field()
    target: str = TARGET.field()
    project: str | None = option(
        "Project name for resource names and labels [default: the CI project's path slug, else "
        "the current directory's name].", env=("CD_PROJECT", "CI_PROJECT_PATH_SLUG"))

    def validate(self) -> None:
        """An environment, and a project that gives a usable name."""
        check_environment(self.environment)
        if self.project is not None and not slug(self.project):
            raise UsageError(f"{self.project!r} gives an empty name; use letters or digits",
                             "project")

    @property
    def project_name(self) -> str:
        """--project (CD_PROJECT, CI_PROJECT_PATH_SLUG), else the current directory's name,
        slugged."""
        return project_name(self.project)


@dataclass(frozen=True)
class TemplateSource:
    """The application template and the image it releases."""

    template_dir: str = option("Directory holding compose.yml and compose.<env>.yml.",
                               env=("CD_TEMPLATE_DIR",), default="deploy", metavar="DIR")
    image: str | None = option(
        "The image being released (repository@sha256:...); the template refers to it as "
        "${CD_IMAGE}.", env=("CD_IMAGE",), metavar="IMAGE")
