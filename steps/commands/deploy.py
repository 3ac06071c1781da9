"""`docker-cd deploy`: render the application template for an environment and roll it out.

Exit 0 when the release is live, 1 when it failed and the previous release serves again,
2 for a template or option to fix, 3 when the engine or the promotion service failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from steps.commands import Step
from steps.commands.inputs.ci import JOB_URL
from steps.commands.inputs.environment import (
    HEALTH_TIMEOUT,
    UNPINNED,
    ReleaseContext,
    TargetEnvironment,
    TemplateSource,
)
from steps.commands.inputs.registry import RegistryAuth
from steps.commands.inputs.service import Service
from steps.release import Release, current, members, new_release_id, now_iso
from steps.runtime.errors import UsageError
from steps.runtime.inputs import group, option
from steps.runtime.outputs import Result
from steps.service.reports import Reporter
from steps.targets import Plan, load_template, without_overlay

if TYPE_CHECKING:
    from steps.context import Context
    from steps.runtime.log import Log
    from steps.template import Template


@dataclass(frozen=True)
class Settings:
    """The deploy step's inputs."""

    where: TargetEnvironment = group(TargetEnvironment)
    template: TemplateSource = group(TemplateSource)
    health_timeout: float = HEALTH_TIMEOUT.field()
    release: ReleaseContext = group(ReleaseContext)
    job_url: str | None = JOB_URL.field()
    auth: RegistryAuth = group(RegistryAuth)
    service: Service = group(Service)
    release_id: int | None = option(
        "The promotion service's release being deployed (its members are the CD_IMAGE_<NAME> "
        "variables; register and the service's trigger set it).", env=("CD_RELEASE_ID",),
        metavar="ID")
    unpinned: tuple[str, ...] = UNPINNED.field()
    new_environment: bool = option(
        "Create an environment that has no compose.<env>.yml overlay (without a promotion "
        "service, whose environments are the record, a deploy to such an environment is "
        "refused as a likely typo).", env=("CD_NEW_ENVIRONMENT",), default=False)


def validate(settings: Settings) -> None:
    settings.where.validate()
    if settings.health_timeout <= 0:
        raise UsageError("must be a positive number of seconds", "health_timeout")


def execute(settings: Settings, ctx: Context) -> Result:
    where, log = settings.where, ctx.log
    project, env = where.project_name, str(where.environment)
    image = settings.template.image
    template = load_template(where.target, settings.template.template_dir, env, ctx.environ,
                             image, log)
    template, built = release_members(template, ctx.environ, settings, log)
    service = ctx.service(settings.service.service_url, settings.service.credential)
    reporter = Reporter(service, settings.job_url, image, env, log, template.hash(),
                        settings.release_id)
    if template.overlay is None and not settings.new_environment and reporter.client is None:
        raise UsageError(
            f"{without_overlay(Path(settings.template.template_dir), env)}: deploying would "
            f"create a new environment from compose.yml alone. Add the overlay, or pass "
            f"--new-environment (CD_NEW_ENVIRONMENT=true) to create {env}", "environment")
    target = ctx.target(where.target, settings.auth.store())
    previous = current(target.records(project, env))
    context = settings.release
    release = Release(
        id=new_release_id(), project=project, environment=env, target=target.name,
        template=template.rendered(), template_hash=template.hash(),
        config_hashes=template.config_hashes(), commit=context.commit_sha,
        pipeline_id=context.pipeline_id, pipeline_url=context.pipeline_url, created=now_iso(),
        previous=previous.id if previous else None, image=image, members=built,
        release_id=settings.release_id)
    log.info(f"Deploying release {release.id} of {project} to {env} on the {target.name} target"
             f" (template {', '.join(template.files)}; previous release: "
             f"{release.previous or 'none'})"
             + (f"; release {settings.release_id} of the promotion service"
                if settings.release_id is not None else "")
             + (f"; members {', '.join(f'{k}={v}' for k, v in built.items())}" if built else ""))
    with reporter.deployment(f"release {release.id}", record_id=release.id):
        done = target.deploy(Plan(project, env, template, release, settings.health_timeout), log)
    log.info(f"Release {done.id} is live in {env}")
    return Result(outputs={"CD_RECORD_ID": done.id}, data={"release": done.summary()})


def release_members(template: Template, environ: Mapping[str, str], settings: Settings,
                    log: Log) -> tuple[Template, dict[str, str]]:
    """The template running the release's members (service -> repository@digest from each
    CD_IMAGE_<NAME>, built or third-party), whatever tag or variable it names them by.

    Refused (exit 2), every problem at once: a member that cannot be its service's image (a
    tag, another digest or repository), a CD_IMAGE_<NAME> naming no service, and, deploying a
    release of the promotion service (CD_RELEASE_ID), a service named by tag that the release
    does not pin and CD_UNPINNED does not name. Without a release such a service is a warning.
    """
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
        if name in settings.unpinned or settings.release_id is None:
            log.warn(f"service {name} runs {image} unpinned: by tag, not a member of the "
                     "release" + (" (CD_UNPINNED)" if name in settings.unpinned else
                                  " (no CD_RELEASE_ID: no release pins it)"))
        else:
            problems.append(
                f"service {name}: {image} is named by tag and release {settings.release_id} "
                f"does not pin it; register the release again (it pins every third-party "
                f"image of compose.yml), pin it in the template (image@sha256:...), or run "
                f"it by tag with CD_UNPINNED={name}")
    if problems:
        from steps.template import TemplateError

        raise TemplateError.of(problems)
    for name, image in found.items():
        if images[name] != image:
            log.info(f"service {name}: {images[name]} pinned to {image}, the release's member")
    return template.with_images(found), found


STEP = Step(
    name="deploy",
    help="Render the application template (compose.yml + compose.<env>.yml) and roll it out "
         "service by service; a release that does not become healthy is rolled back at once.",
    settings=Settings,
    execute=execute,
    validate=validate,
)
