"""`docker-cd deploy`: render the application template for an environment and roll it out.

Exit 0 when the release is live, 1 when it failed and the previous release serves again,
2 for a template or option to fix, 3 when the engine or the promotion service failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from steps.errors import UsageError
from steps.releases import Release, current, new_release_id, now_iso
from steps.reporting import Reporter
from steps.runtime import (
    CI_CONTEXT,
    JOB_URL,
    SERVICE,
    CIContextSettings,
    Log,
    Option,
    Result,
    ServiceSettings,
    Step,
)
from steps.targets import (
    HEALTH_TIMEOUT,
    TARGET_OPTIONS,
    TEMPLATE_DIR,
    Plan,
    TargetSettings,
    open_target,
    project_name,
    target_class,
    validate_common,
)

if TYPE_CHECKING:
    from steps.template import Template

IMAGE = Option("image", "The image being released (repository@sha256:...); the template "
               "refers to it as ${CD_IMAGE}.", env=("CD_IMAGE",), metavar="IMAGE")
RELEASE_CONTEXT = tuple(o for o in CI_CONTEXT
                        if o.dest in ("commit_sha", "pipeline_id", "pipeline_url"))


@dataclass(frozen=True, kw_only=True)
class TemplateSettings(TargetSettings):
    """What reading the template takes: also `template render`'s Settings."""

    template_dir: str
    image: str | None
    environ: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Settings(TemplateSettings, ServiceSettings, CIContextSettings):
    health_timeout: float


def validate(settings: Settings) -> None:
    validate_common(settings)
    if settings.health_timeout <= 0:
        raise UsageError("must be a positive number of seconds", "health_timeout")


def load_template(settings: TemplateSettings, log: Log) -> Template:
    """The template for the environment, its warnings logged and every key checked against the
    target: what deploy rolls out is what `template render` shows."""
    from steps.template import load

    environ = dict(settings.environ)
    if settings.image:
        environ["CD_IMAGE"] = settings.image
    template = load(Path(settings.template_dir), str(settings.environment), environ)
    for warning in template.warnings:
        log.warn(warning)
    template.check_supported(settings.target, target_class(settings.target).supported)
    return template


def execute(settings: Settings, log: Log) -> Result:
    template = load_template(settings, log)
    target = open_target(settings.target)
    project, env = project_name(settings), str(settings.environment)
    previous = current(target.records(project, env))
    release = Release(
        id=new_release_id(), project=project, environment=env, target=target.name,
        template=template.rendered(), template_hash=template.hash(),
        config_hashes=template.config_hashes(), commit=settings.commit_sha,
        pipeline_id=settings.pipeline_id, pipeline_url=settings.pipeline_url, created=now_iso(),
        previous=previous.id if previous else None, image=settings.image)
    log.info(f"Deploying release {release.id} of {project} to {env} on the {target.name} target"
             f" (template {', '.join(template.files)}; previous release: "
             f"{release.previous or 'none'})")
    with Reporter(settings, settings.image, env, log).deployment(f"release {release.id}"):
        done = target.deploy(Plan(project, env, template, release, settings.health_timeout), log)
    log.info(f"Release {done.id} is live in {env}")
    return Result(outputs={"CD_RELEASE_ID": done.id}, data={"release": done.summary()})


STEP = Step(
    name="deploy",
    help="Render the application template (compose.yml + compose.<env>.yml) and roll it out "
         "service by service; a release that does not become healthy is rolled back at once.",
    options=(*TARGET_OPTIONS, TEMPLATE_DIR, IMAGE, HEALTH_TIMEOUT, *RELEASE_CONTEXT, JOB_URL,
             *SERVICE),
    settings=Settings,
    execute=execute,
    validate=validate,
)
