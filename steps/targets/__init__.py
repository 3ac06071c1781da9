"""Deploy targets: where a release runs. One interface, one module per target.

    docker  steps.targets.docker.DockerTarget   one engine (DOCKER_HOST), blue-green per service
    swarm   steps.targets.swarm.SwarmTarget     Docker Swarm services, update/rollback config

The contract (model, Plan, Release, labels) is described in docs/deploy.md. This module also
holds what both targets share: the options, labels, names and a few Engine API helpers.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from steps.errors import UsageError
from steps.runtime import Log, Option

if TYPE_CHECKING:  # steps.releases imports this module for its options
    from steps.releases import Release
    from steps.template import Template

TARGETS = {"docker": "steps.targets.docker:DockerTarget",
           "swarm": "steps.targets.swarm:SwarmTarget"}

# Labels every target puts on what it creates.
LABEL_PROJECT = "io.docker-cd.project"
LABEL_ENVIRONMENT = "io.docker-cd.environment"
LABEL_SERVICE = "io.docker-cd.service"
LABEL_RELEASE = "io.docker-cd.release"
LABEL_ROLE = "io.docker-cd.role"          # service | release | config | secret | helper
LABEL_RECORD = "io.docker-cd.record"      # Release.to_json() on the release record object
LABEL_CONFIG_HASH = "io.docker-cd.config-hash"

ENVIRONMENT = Option("environment", "Environment to act on (test, staging, production, ...).",
                     env=("CD_ENVIRONMENT", "CD_TARGET_ENVIRONMENT", "CI_ENVIRONMENT_NAME"))
TARGET = Option("target", "Where the application runs: one Docker engine or a Docker Swarm.",
                env=("CD_DEPLOY_TARGET",), default="docker", choices=tuple(TARGETS))
PROJECT = Option("project", "Project name for resource names and labels [default: the CI "
                 "project's path slug, else the current directory's name].",
                 env=("CD_PROJECT", "CI_PROJECT_PATH_SLUG"))
TEMPLATE_DIR = Option("template-dir", "Directory holding compose.yml and compose.<env>.yml.",
                      env=("CD_TEMPLATE_DIR",), default="deploy", metavar="DIR")
HEALTH_TIMEOUT = Option("health-timeout", "Seconds to wait for a release to become healthy.",
                        env=("CD_HEALTH_TIMEOUT",), default=120.0, kind="float")
TARGET_OPTIONS = (ENVIRONMENT, TARGET, PROJECT)

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


@dataclass(frozen=True, kw_only=True)
class TargetSettings:
    """Fields behind TARGET_OPTIONS, for the Settings of a step that acts on a target."""

    environment: str | None
    target: str
    project: str | None = None


class Target(Protocol):
    """What the deploy, rollback, releases and verify steps need from a target."""

    name: str
    supported: tuple[str, ...]

    def deploy(self, plan: Plan, log: Log) -> Release:
        """Roll out plan.template; return the recorded release (status succeeded).

        On failure restore what ran before, record the release as failed and raise Refused.
        """

    def records(self, project: str, environment: str) -> list[Release]:
        """Every release recorded on the target for this project and environment."""

    def restore(self, source: Release, plan: RestorePlan, log: Log) -> Release:
        """Run `source` again from what the target stored for it (no repo needed)."""

    def exec(self, project: str, environment: str, service: str, command: list[str],
             timeout: float) -> tuple[int, str]:
        """Run a verify command inside a running container of the service: (exit code, output)."""


@dataclass(frozen=True)
class Plan:
    """A deploy: the template and the pre-filled release record the target completes."""

    project: str
    environment: str
    template: Template
    release: Release
    health_timeout: float = 120.0


@dataclass(frozen=True)
class RestorePlan:
    """A rollback: the new record (kind rollback) the target completes."""

    release: Release
    health_timeout: float = 120.0


def slug(text: str) -> str:
    """A name safe in container, network and volume names: [a-z0-9-], 63 chars."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:63].strip("-")


def name_prefix(project: str, environment: str) -> str:
    """`shop-staging`: every container, network, volume and swarm object of an environment
    starts with it."""
    return f"{project}-{environment}"


def project_name(settings: TargetSettings) -> str:
    """--project (CD_PROJECT, CI_PROJECT_PATH_SLUG), else the current directory's name, slugged."""
    return slug(settings.project or Path.cwd().name) or "app"


def label_filter(labels: Mapping[str, str | None]) -> dict[str, list[str]]:
    """An Engine API `filters` value: objects carrying every one of `labels` (None: any value)."""
    return {"label": [f"{k}={v}" for k, v in labels.items() if v is not None]}


def exec_in(api: Any, container_id: str, command: list[str]) -> tuple[int, str]:
    """`docker exec` through the Engine API: the exit code (1 when unknown) and the output."""
    exec_id = api.exec_create(container_id, command)["Id"]
    output = api.exec_start(exec_id).decode(errors="replace")
    code = api.exec_inspect(exec_id)["ExitCode"]
    return int(code if code is not None else 1), output


def untagged(ref: str) -> str:
    """`registry:5000/app:v1` -> `registry:5000/app`: the repository an image was tagged in."""
    name, _, tag = ref.rpartition(":")
    return name if name and "/" not in tag else ref


def digest_reference(ref: str, repo_digests: Iterable[str]) -> str | None:
    """`ref` as `repository@sha256:...`, picked from the image's RepoDigests, if it has one."""
    wanted = untagged(ref)
    return next((d for d in repo_digests if d.partition("@")[0] == wanted), None)


def validate_common(settings: TargetSettings) -> None:
    """Checks every deploy-side step shares: an environment and a usable project name."""
    if not settings.environment:
        raise UsageError("required; name the environment, e.g. --environment staging",
                         "environment")
    if not _NAME.fullmatch(settings.environment):
        raise UsageError(f"{settings.environment!r} is not a valid environment name; use lower "
                         "case letters, digits, '-' and '_'", "environment")
    if settings.project is not None and not slug(settings.project):
        raise UsageError(f"{settings.project!r} gives an empty name; use letters or digits",
                         "project")


def target_class(name: str) -> type:
    """The class of the target called `name` (its `supported` keys need no engine)."""
    module, _, cls = TARGETS[name].partition(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except (ModuleNotFoundError, AttributeError) as e:
        raise UsageError(f"the {name} target is not available in this version ({e})",
                         "target") from e


def open_target(name: str) -> Target:
    """The target called `name`, with a client for the Docker engine (DOCKER_HOST; exit 3
    when it does not answer)."""
    from steps.engine import docker_client

    return target_class(name)(docker_client())
