"""`docker-cd deploy`: render the application template for an environment and roll it out.

Exit 0 when the release is live, 1 when it failed and the previous release serves again (or
when the template directory is not the one the release, CD_RELEASE_ID, holds: nothing is
deployed then), 2 for a template or option to fix, 3 when the engine or the promotion service
failed. With a promotion service, a deploy refused before it starts (exit 1 or 2) is reported
as a failed deployment with the reason, so the promotion it was to deploy fails at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from steps.commands import Step
from steps.commands.inputs.ci import JOB_URL
from steps.commands.inputs.environment import (
    HEALTH_TIMEOUT,
    ReleaseContext,
    ReleaseMembers,
    TargetEnvironment,
    TemplateSource,
)
from steps.commands.inputs.registry import RegistryAuth
from steps.commands.inputs.service import Service
from steps.release import Release, current, new_release_id, now_iso
from steps.runtime.errors import UsageError
from steps.runtime.inputs import group, option
from steps.runtime.outputs import Result
from steps.service import release_template
from steps.service.release_template import COMMIT, TEMPLATE_HASH
from steps.service.reports import Reporter
from steps.targets import Plan, load_template, with_members, without_overlay

if TYPE_CHECKING:
    from steps.context import Context


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
    members: ReleaseMembers = group(ReleaseMembers)
    release_template_hash: str | None = option(
        "The template hash the release holds, compared with the template directory's before "
        "anything is deployed; asked of the promotion service when one is configured, else "
        "this (the service's trigger sets it).", env=("CD_RELEASE_TEMPLATE_HASH",),
        metavar="HASH")
    release_commit: str | None = option(
        "The commit the release was registered from (the service's trigger sets it): when the "
        "template directory differs from the release's, it is restored from this commit with "
        "git first (fetched if the checkout lacks it).", env=("CD_RELEASE_COMMIT",),
        metavar="SHA")
    new_environment: bool = option(
        "Create an environment that has no compose.<env>.yml overlay (without a promotion "
        "service, whose environments are the record, a deploy to such an environment is "
        "refused as a likely typo).", env=("CD_NEW_ENVIRONMENT",), default=False)


def validate(settings: Settings) -> None:
    settings.where.validate()
    if settings.health_timeout <= 0:
        raise UsageError("must be a positive number of seconds", "health_timeout")
    if settings.release_template_hash and not TEMPLATE_HASH.match(settings.release_template_hash):
        raise UsageError("must be sha256: and 64 hex digits (the release's template_hash)",
                         "release_template_hash")
    if settings.release_commit and not COMMIT.match(settings.release_commit):
        raise UsageError("must be a commit SHA (the release's commit_sha)", "release_commit")


def execute(settings: Settings, ctx: Context) -> Result:
    where, log = settings.where, ctx.log
    project, env = where.project_name, str(where.environment)
    image = settings.template.image
    service = ctx.service(settings.service.service_url, settings.service.credential)
    release_id = settings.members.release_id
    reporter = Reporter(service, settings.job_url, image, env, log, None, release_id)
    with reporter.before_start():  # refused here: reported failed at once, nothing deployed
        if release_id is not None:  # before anything changes: the release's template?
            release_template.ensure(
                Path(settings.template.template_dir),
                release_template.of_release(service, release_id, settings.release_template_hash,
                                            settings.release_commit),
                bool(settings.release_commit), log, settings.release.commit_sha)
        template = load_template(where.target, settings.template.template_dir, env,
                                 ctx.environ, image, log)
        template, built = with_members(template, ctx.environ, release_id,
                                       settings.members.unpinned, log)
        if template.overlay is None and not settings.new_environment and reporter.client is None:
            raise UsageError(
                f"{without_overlay(Path(settings.template.template_dir), env)}: deploying would "
                f"create a new environment from compose.yml alone. Add the overlay, or pass "
                f"--new-environment (CD_NEW_ENVIRONMENT=true) to create {env}", "environment")
        target = ctx.target(where.target, settings.auth.store())
        previous = current(target.records(project, env))
    reporter.template_hash = template.hash()  # what the deployment rolls out
    context = settings.release
    release = Release(
        id=new_release_id(), project=project, environment=env, target=target.name,
        template=template.rendered(), template_hash=template.hash(),
        config_hashes=template.config_hashes(),
        commit=settings.release_commit or context.commit_sha,  # the release's, not the head's
        pipeline_id=context.pipeline_id, pipeline_url=context.pipeline_url, created=now_iso(),
        previous=previous.id if previous else None, image=image, members=built,
        release_id=release_id)
    log.info(f"Deploying release {release.id} of {project} to {env} on the {target.name} target"
             f" (template {', '.join(template.files)}; previous release: "
             f"{release.previous or 'none'})"
             + (f"; release {release_id} of the promotion service"
                if release_id is not None else "")
             + (f"; members {', '.join(f'{k}={v}' for k, v in built.items())}" if built else ""))
    with reporter.deployment(f"release {release.id}", record_id=release.id):
        done = target.deploy(Plan(project, env, template, release, settings.health_timeout), log)
    log.info(f"Release {done.id} is live in {env}")
    return Result(outputs={"CD_RECORD_ID": done.id}, data={"release": done.summary()})


STEP = Step(
    name="deploy",
    help="Render the application template (compose.yml + compose.<env>.yml) and roll it out "
         "service by service; a release that does not become healthy is rolled back at once.",
    settings=Settings,
    execute=execute,
    validate=validate,
)
