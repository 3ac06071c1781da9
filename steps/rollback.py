"""`docker-cd rollback`: back to the last release that succeeded before the current one, or to
--to RELEASE, from what the target recorded (no checkout of the application needed)."""

from __future__ import annotations

from dataclasses import dataclass

from steps.deploy import RELEASE_CONTEXT
from steps.releases import Release, current, new_release_id, now_iso, rollback_source
from steps.reporting import Reporter
from steps.runtime import (
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
    RestorePlan,
    TargetSettings,
    open_target,
    project_name,
    validate_common,
)

TO = Option("to", "Release id to go back to [default: the last one that succeeded before the "
            "current one].", env=("CD_ROLLBACK_TO",), metavar="RELEASE")


@dataclass(frozen=True, kw_only=True)
class Settings(TargetSettings, ServiceSettings, CIContextSettings):
    to: str | None
    health_timeout: float


def validate(settings: Settings) -> None:
    validate_common(settings)


def execute(settings: Settings, log: Log) -> Result:
    target = open_target(settings.target)
    project, env = project_name(settings), str(settings.environment)
    records = target.records(project, env)
    source = rollback_source(records, settings.to)
    now = current(records)
    release = Release(
        id=new_release_id(), project=project, environment=env, target=target.name,
        commit=source.commit, pipeline_id=settings.pipeline_id,
        pipeline_url=settings.pipeline_url, created=now_iso(),
        previous=now.id if now else None, kind="rollback", rollback_of=source.id,
        image=source.image)
    log.info(f"Rolling {project} in {env} back from {release.previous} to {source.id} "
             f"(created {source.created}, commit {(source.commit or '?')[:12]})")
    reporter = Reporter(settings, source.image, env, log)
    with reporter.deployment(f"rollback {release.id} to release {source.id}"):
        done = target.restore(source, RestorePlan(release, settings.health_timeout), log)
    log.info(f"Release {done.id} (a copy of {source.id}) is live in {env}")
    return Result(outputs={"CD_RELEASE_ID": done.id},
                  data={"release": done.summary(), "restored": source.id})


STEP = Step(
    name="rollback",
    help="Roll an environment back to the last release that succeeded before the current one "
         "(or --to RELEASE), from the target's own records.",
    options=(*TARGET_OPTIONS, TO, HEALTH_TIMEOUT, *RELEASE_CONTEXT, JOB_URL, *SERVICE),
    settings=Settings,
    execute=execute,
    validate=validate,
)
