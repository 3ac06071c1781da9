"""`docker-cd rollback`: back to the last release that succeeded before the current one, or to
--to RELEASE, from what the target recorded (no checkout of the application needed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from steps.commands import Step
from steps.commands.inputs.ci import JOB_URL
from steps.commands.inputs.environment import HEALTH_TIMEOUT, ReleaseContext, TargetEnvironment
from steps.commands.inputs.registry import RegistryAuth
from steps.commands.inputs.service import Service
from steps.release import Release, current, new_release_id, now_iso, rollback_source
from steps.runtime.inputs import group, option
from steps.runtime.outputs import Result
from steps.service.reports import Reporter
from steps.targets import RestorePlan

if TYPE_CHECKING:
    from steps.context import Context


@dataclass(frozen=True)
class Settings:
    """The rollback step's inputs."""

    where: TargetEnvironment = group(TargetEnvironment)
    to: str | None = option(
        "Release id to go back to [default: the last one that succeeded before the current "
        "one].", env=("CD_ROLLBACK_TO",), metavar="RELEASE")
    health_timeout: float = HEALTH_TIMEOUT.field()
    release: ReleaseContext = group(ReleaseContext)
    job_url: str | None = JOB_URL.field()
    auth: RegistryAuth = group(RegistryAuth)
    service: Service = group(Service)


def validate(settings: Settings) -> None:
    settings.where.validate()


def execute(settings: Settings, ctx: Context) -> Result:
    log = ctx.log
    target = ctx.target(settings.where.target, settings.auth.store())
    project, env = settings.where.project_name, str(settings.where.environment)
    records = target.records(project, env)
    source = rollback_source(records, settings.to)
    now = current(records)
    release = Release(
        id=new_release_id(), project=project, environment=env, target=target.name,
        commit=source.commit, pipeline_id=settings.release.pipeline_id,
        pipeline_url=settings.release.pipeline_url, created=now_iso(),
        previous=now.id if now else None, kind="rollback", rollback_of=source.id,
        image=source.image)
    log.info(f"Rolling {project} in {env} back from {release.previous} to {source.id} "
             f"(created {source.created}, commit {(source.commit or '?')[:12]})")
    service = ctx.service(settings.service.service_url, settings.service.service_token)
    reporter = Reporter(service, settings.job_url, source.image, env, log,
                        source.template_hash or None)
    with reporter.deployment(f"rollback {release.id} to release {source.id}"):
        done = target.restore(source, RestorePlan(release, settings.health_timeout), log)
    log.info(f"Release {done.id} (a copy of {source.id}) is live in {env}")
    return Result(outputs={"CD_RELEASE_ID": done.id},
                  data={"release": done.summary(), "restored": source.id})


STEP = Step(
    name="rollback",
    help="Roll an environment back to the last release that succeeded before the current one "
         "(or --to RELEASE), from the target's own records.",
    settings=Settings,
    execute=execute,
    validate=validate,
)
