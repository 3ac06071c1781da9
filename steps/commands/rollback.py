"""`docker-cd rollback`: back to a release verified in the environment, restored from what the
target recorded (no checkout of the application needed): exactly its images, template and
configuration.

With a promotion service, the service says which release (the one --to or CD_ROLLBACK_TO
names, else the last verified one before the live one, of another image) and records the
rollback, claimed by this pipeline, with a hold on the environment; it refuses a release that
was never verified there; when the target has no record of the release the service chose, the
rollback is reported failed at once (exit 1, nothing changed). Without a service, the target's
records decide: --to RECORD, else the last release that succeeded before the current one (the
target cannot know which were verified).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
    from steps.runtime.log import Log
    from steps.service.client import ServiceClient


@dataclass(frozen=True)
class Settings:
    """The rollback step's inputs."""

    where: TargetEnvironment = group(TargetEnvironment)
    to: str | None = option(
        "The target's record to go back to (its id in `docker-cd releases`, e.g. "
        "20261126T171530123Z-3f2a; not the service's integer release id) [default: the "
        "service's choice, else the last one that succeeded before the current one].",
        env=("CD_ROLLBACK_TO",), metavar="RECORD")
    service_project: str | None = option(
        "Project path in the promotion service (group/name).",
        env=("CD_SERVICE_PROJECT", "CI_PROJECT_PATH", "JOB_NAME"))
    promotion_id: int | None = option(
        "The rollback promotion a pipeline the service triggered carries out.",
        env=("CD_PROMOTION_ID",))
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
    service = ctx.service(settings.service.service_url, settings.service.credential)
    if service is not None:
        to, release_id, image = claim(settings, service, env, log)
        claimed = (Reporter(service, settings.job_url, image, env, log, None, release_id)
                   if release_id is not None or image else None)
        # the target cannot restore what the service chose: the rollback fails at once
        with claimed.before_start() if claimed else contextlib.nullcontext():
            source = rollback_source(records, to, image, release_id)
    else:
        source = rollback_source(records, settings.to)
    now = current(records)
    release = Release(
        id=new_release_id(), project=project, environment=env, target=target.name,
        commit=source.commit, pipeline_id=settings.release.pipeline_id,
        pipeline_url=settings.release.pipeline_url, created=now_iso(),
        previous=now.id if now else None, kind="rollback", rollback_of=source.id,
        image=source.image, members=dict(source.members), release_id=source.release_id)
    log.info(f"Rolling {project} in {env} back from {release.previous} to {source.id} "
             f"(created {source.created}, commit {(source.commit or '?')[:12]})")
    reporter = Reporter(service, settings.job_url, source.image, env, log,
                        source.template_hash or None, source.release_id)
    with reporter.deployment(f"rollback {release.id} to release {source.id}",
                             record_id=release.id, rollback_of=source.id):
        done = target.restore(source, RestorePlan(release, settings.health_timeout), log)
    log.info(f"Release {done.id} (a copy of {source.id}) is live in {env}")
    return Result(outputs={"CD_RECORD_ID": done.id},
                  data={"release": done.summary(), "restored": source.id})


def claim(settings: Settings, service: ServiceClient, env: str,
          log: Log) -> tuple[str | None, int | None, str | None]:
    """Claim the rollback with the service: the (record id, release id, image) it goes back
    to, as far as the service knows them."""
    body: dict[str, Any] = {
        "kind": "rollback", "environment": env, "project": settings.service_project,
        "record_id": settings.to, "promotion_id": settings.promotion_id,
        "pipeline_id": int(settings.release.pipeline_id)
        if str(settings.release.pipeline_id or "").isdigit() else None,
        "job_url": settings.job_url}
    log.info(f"+ POST {service.base}/claims (rollback of {env}"
             + (f" to release {settings.to}" if settings.to else "") + ")")
    answer = service.post("claims", {k: v for k, v in body.items() if v is not None}) or {}
    promotion = answer.get("promotion") or {}
    log.info(f"The promotion service records rollback {promotion.get('id')} of {env} to "
             f"{answer.get('record_id') or answer.get('image')}"
             + (f" (release {answer['release_id']})" if answer.get("release_id") else "")
             + (f"; {env} is held ({answer['hold']['lift']})" if answer.get("hold") else ""))
    return answer.get("record_id"), answer.get("release_id"), answer.get("image")


STEP = Step(
    name="rollback",
    help="Roll an environment back to a release verified there (--to RECORD, the promotion "
         "service's choice, or without a service the last one that succeeded), restored from "
         "the target's own records.",
    settings=Settings,
    execute=execute,
    validate=validate,
)
