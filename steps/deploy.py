"""`docker-cd deploy`: render the application template for an environment and roll it out.

Exit 0 when the release is live, 1 when it failed and the previous release serves again,
2 for a template or option to fix, 3 when the engine or the promotion service failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from steps.errors import Refused
from steps.releases import Release, current, new_release_id, now_iso
from steps.reporting import Reporter
from steps.runtime import CI_CONTEXT, SERVICE, Log, Option, Result, Step
from steps.targets import (
    HEALTH_TIMEOUT,
    TARGET_OPTIONS,
    TEMPLATE_DIR,
    Plan,
    open_target,
    project_name,
    validate_common,
)

IMAGE = Option("image", "The image being released (repository@sha256:...); the template "
               "refers to it as ${CD_IMAGE}.", env=("CD_IMAGE",), metavar="IMAGE")
JOB_URL = Option("job-url", "URL of this CI job, for the promotion service.",
                 env=("CD_JOB_URL", "CI_JOB_URL", "BUILD_URL"), metavar="URL")
RELEASE_CONTEXT = tuple(o for o in CI_CONTEXT
                        if o.dest in ("commit_sha", "pipeline_id", "pipeline_url"))


@dataclass(frozen=True)
class Settings:
    environment: str | None
    target: str
    project: str | None
    template_dir: str
    image: str | None
    health_timeout: float
    commit_sha: str | None = None
    pipeline_id: str | None = None
    pipeline_url: str | None = None
    job_url: str | None = None
    service_url: str | None = None
    service_token: str | None = None
    environ: Mapping[str, str] = field(default_factory=dict)


def validate(settings: Settings) -> None:
    validate_common(settings)
    if settings.health_timeout <= 0:
        from steps.errors import UsageError

        raise UsageError("must be a positive number of seconds", "health_timeout")


def interpolation_env(settings: Settings) -> dict[str, str]:
    """The variables the template sees: the job's environment, CD_IMAGE from --image."""
    environ = dict(settings.environ)
    if settings.image:
        environ["CD_IMAGE"] = settings.image
    return environ


def execute(settings: Settings, log: Log) -> Result:
    from steps.template import load

    template = load(Path(settings.template_dir), str(settings.environment),
                    interpolation_env(settings))
    for warning in template.warnings:
        log.warn(warning)
    target = open_target(settings.target)
    template.check_supported(target.name, target.supported)
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
    reporter = Reporter(settings.service_url, settings.service_token, settings.image, env,
                        settings.job_url, log)
    reporter.deployment("started", f"release {release.id}")
    try:
        done = target.deploy(Plan(project, env, template, release, settings.health_timeout), log)
    except Refused as e:
        reporter.deployment("failed", e.message)
        raise
    reporter.deployment("succeeded", f"release {done.id}")
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
