"""Inputs of the deploy-side steps: the environment on its target, the application template, and
what a release record keeps of the pipeline that made it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from steps.commands.inputs.ci import COMMIT_SHA, PIPELINE_ID, PIPELINE_URL
from steps.runtime.errors import UsageError
from steps.runtime.inputs import Input, option
from steps.targets import TARGETS, project_name, slug

ENVIRONMENT = Input("Environment to act on (test, staging, production, ...).",
                    env=("CD_ENVIRONMENT", "CD_TARGET_ENVIRONMENT", "CI_ENVIRONMENT_NAME"))
TARGET = Input("Where the application runs: one Docker engine or a Docker Swarm.",
               env=("CD_DEPLOY_TARGET",), default="docker", choices=tuple(TARGETS))
HEALTH_TIMEOUT = Input("Seconds to wait for a release to become healthy.",
                       env=("CD_HEALTH_TIMEOUT",), default=120.0)
UNPINNED = Input(
    "Third-party services left out of a release of several images: each runs the tag the "
    "template names (register does not ask its registry for the digest; deploy runs it by tag "
    "with a warning instead of refusing it).", env=("CD_UNPINNED",), default=(),
    metavar="SERVICE")
RELEASE_ID = Input(
    "The promotion service's release being deployed (its members are the CD_IMAGE_<NAME> "
    "variables; register and the service's trigger set it).", env=("CD_RELEASE_ID",),
    metavar="ID")
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


@dataclass(frozen=True)
class ReleaseMembers:
    """The release whose members (CD_IMAGE_<NAME>) the template runs, and the services left
    out of it."""

    release_id: int | None = RELEASE_ID.field()
    unpinned: tuple[str, ...] = UNPINNED.field()


@dataclass(frozen=True)
class ReleaseContext:
    """What a release record keeps of the pipeline that made it."""

    commit_sha: str | None = COMMIT_SHA.field()
    pipeline_id: str | None = PIPELINE_ID.field()
    pipeline_url: str | None = PIPELINE_URL.field()
