"""Deploy targets: where a release runs. One interface, one package per target.

    docker  steps.targets.docker.DockerTarget   one engine (DOCKER_HOST), blue-green per service
    swarm   steps.targets.swarm.SwarmTarget     Docker Swarm services, update/rollback config

The contract (model, Plan, Release, labels) is described in docs/deploy.md. This module also
holds what both targets share: labels, names, a few Engine API helpers, and the template as a
target reads it (every key checked against what the target supports).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from steps.runtime.errors import UsageError
from steps.runtime.log import Log

if TYPE_CHECKING:  # loaded by the targets themselves; the commands' options need only the names
    from steps.release import Release
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


class Target(Protocol):
    """What the deploy, rollback, releases, teardown and verify steps need from a target."""

    name: str
    supported: tuple[str, ...]

    @staticmethod
    def template_problems(template: Template) -> list[str]:
        """Values of a valid template this target cannot honour (no engine needed)."""

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

    def teardown(self, project: str, environment: str, volumes: bool,
                 log: Log) -> dict[str, list[str]]:
        """Remove everything deploys made for the environment, its volumes only with `volumes`;
        the names of what was removed and kept, by kind."""


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


def project_name(project: str | None) -> str:
    """The project's name in resource names: `project` slugged, else the current directory's."""
    return slug(project or Path.cwd().name) or "app"


def name_prefix(project: str, environment: str) -> str:
    """`shop-staging`: every container, network, volume and swarm object of an environment
    starts with it."""
    return f"{project}-{environment}"


def label_filter(labels: Mapping[str, str | None]) -> dict[str, list[str]]:
    """An Engine API `filters` value: objects carrying every one of `labels` (None: any value)."""
    return {"label": [f"{k}={v}" for k, v in labels.items() if v is not None]}


def exec_in(api: Any, container_id: str, command: list[str]) -> tuple[int, str]:
    """`docker exec` through the Engine API: the exit code (1 when unknown) and the output."""
    exec_id = api.exec_create(container_id, command)["Id"]
    output = api.exec_start(exec_id).decode(errors="replace")
    code = api.exec_inspect(exec_id)["ExitCode"]
    return int(code if code is not None else 1), output


def target_class(name: str) -> type:
    """The class of the target called `name` (its `supported` keys need no engine)."""
    module, _, cls = TARGETS[name].partition(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except (ModuleNotFoundError, AttributeError) as e:
        raise UsageError(f"the {name} target is not available in this version ({e})",
                         "target") from e


def load_template(target: str, directory: str, environment: str, environ: Mapping[str, str],
                  image: str | None, log: Log, lenient: bool = False,
                  warned: set[str] | None = None) -> Template:
    """The template for the environment, its warnings logged, every key and value checked
    against the target, every problem reported at once: what deploy rolls out is what
    `template render` shows. `image` is ${CD_IMAGE}; `lenient` leaves values whose variables
    are not set unchecked (`template check`); a warning already in `warned` is not repeated."""
    from steps.template import TemplateError, load

    variables = dict(environ)
    if image:
        variables["CD_IMAGE"] = image
    cls = target_class(target)
    template = load(Path(directory), environment, variables, target=target,
                    supported=cls.supported, lenient=lenient)
    warned = set() if warned is None else warned
    for warning in template.warnings:
        if warning not in warned:
            warned.add(warning)
            log.warn(warning)
    if problems := cls.template_problems(template):
        raise TemplateError.of(problems)
    return template


def with_members(template: Template, environ: Mapping[str, str], release_id: int | None,
                 unpinned: tuple[str, ...], log: Log) -> tuple[Template, dict[str, str]]:
    """The template running the release's members (service -> repository@digest from each
    CD_IMAGE_<NAME>, built or third-party), whatever tag or variable it names them by.

    Refused (exit 2), every problem at once: a member that cannot be its service's image (a
    tag, another digest or repository), a CD_IMAGE_<NAME> naming no service, and, for a release
    of the promotion service (`release_id`), a service named by tag that the release does not
    pin and `unpinned` (CD_UNPINNED) does not name. Without a release it is a warning.
    """
    from steps.release import members
    from steps.template import TemplateError

    services = template.model["services"]
    found = members.members_of(services, environ)
    if not found:  # one image (CD_IMAGE): the template names every image itself
        return template, found
    images = {name: str(spec.get("image") or "") for name, spec in services.items()}
    problems = members.pinning_problems(images, found)
    problems += [f"{var} is a member of the release, but the template has no service "
                 f"{var[len(members.PREFIX):].lower()} (services: {', '.join(sorted(services))})"
                 f"; name the service as the member is named, or unset {var}"
                 for var in members.unused(services, environ)]
    for name, image in members.by_tag(images, found).items():
        if name in unpinned or release_id is None:
            log.warn(f"service {name} runs {image} unpinned: by tag, not a member of the "
                     "release" + (" (CD_UNPINNED)" if name in unpinned else
                                  " (no CD_RELEASE_ID: no release pins it)"))
        else:
            problems.append(
                f"service {name}: {image} is named by tag and release {release_id} does not "
                f"pin it; register the release again (it pins every third-party image of "
                f"compose.yml), pin it in the template (image@sha256:...), or run it by tag "
                f"with CD_UNPINNED={name}")
    if problems:
        raise TemplateError.of(problems)
    for name, image in found.items():
        if images[name] != image:
            log.info(f"service {name}: {images[name]} pinned to {image}, the release's member")
    return template.with_images(found), found


def without_overlay(directory: Path, environment: str) -> str:
    """What to say of an environment that has no compose.<environment>.yml: maybe a typo."""
    from steps.template import did_you_mean, overlay_environments

    known = overlay_environments(directory)
    return (f"{environment} has no compose.{environment}.yml in {directory}"
            + (did_you_mean(environment, known) or "") + (
                f" (environments with an overlay: {', '.join(known)})" if known else ""))
