"""`docker-cd verify`: run the smoke checks the template declares under `x-docker-cd.verify`
against what is deployed now, and report the result to the promotion service.

Checks come from the current release recorded on the target, so verify checks exactly what
runs (after a rollback too). Exit 1 names every check that failed.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_fixed

from steps.commands import Step
from steps.commands.inputs.ci import JOB_URL
from steps.commands.inputs.environment import TargetEnvironment
from steps.commands.inputs.service import Service
from steps.release import current
from steps.runtime.errors import Refused
from steps.runtime.inputs import group
from steps.runtime.log import Log
from steps.runtime.outputs import Result
from steps.service.reports import Reporter
from steps.template import Check, checks_from_rendered

if TYPE_CHECKING:
    from steps.context import Context
    from steps.targets import Target


@dataclass(frozen=True)
class Settings:
    """The verify step's inputs."""

    where: TargetEnvironment = group(TargetEnvironment)
    job_url: str | None = JOB_URL.field()
    service: Service = group(Service)


def validate(settings: Settings) -> None:
    settings.where.validate()


def run_http(check: Check) -> str | None:
    """One attempt of an HTTP check: None when it passed, else what was wrong."""
    import requests

    try:
        response = requests.get(str(check.url), timeout=check.timeout)
    except requests.RequestException as e:
        return f"GET {check.url}: {type(e).__name__}: {e}"
    if response.status_code != check.status:
        return f"GET {check.url}: status {response.status_code}, expected {check.status}"
    if check.body is not None and check.body not in response.text:
        return f"GET {check.url}: the body does not contain {check.body!r}"
    return None


def run_command(check: Check, target: Target, project: str, environment: str,
                log: Log) -> str | None:
    """One attempt of a command check, in the job or inside a service's container."""
    command = list(check.command)
    if check.service:
        code, output = target.exec(project, environment, check.service, command, check.timeout)
    else:
        log.command(command)
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=check.timeout,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"{' '.join(command)}: {e}"
        code, output = done.returncode, done.stdout + done.stderr
    for line in output.strip().splitlines()[-10:]:
        log.info(f"  | {line}")
    return None if code == 0 else f"{' '.join(command)}: exit code {code}"


def run_check(check: Check, target: Target, project: str, environment: str,
              log: Log) -> str | None:
    """Run a check with its retries; None when it passed, else the last failure."""
    def attempt() -> str | None:
        if check.url:
            failure = run_http(check)
            if failure:
                return failure
        if check.command:
            return run_command(check, target, project, environment, log)
        return None

    retrying = Retrying(stop=stop_after_attempt(check.retries + 1),
                        wait=wait_fixed(check.interval),
                        retry=retry_if_result(lambda failure: failure is not None),
                        retry_error_callback=lambda state: state.outcome.result())
    return retrying(attempt)


def execute(settings: Settings, ctx: Context) -> Result:
    log = ctx.log
    target = ctx.target(settings.where.target)
    project, env = settings.where.project_name, str(settings.where.environment)
    release = current(target.records(project, env))
    if release is None:
        raise Refused(f"nothing to verify: no release of {project} in {env} has succeeded")
    checks = checks_from_rendered(release.template)
    service = ctx.service(settings.service.service_url, settings.service.credential)
    reporter = Reporter(service, settings.job_url, release.image, env, log,
                        release_id=release.release_id)
    if not checks:
        log.warn("the template declares no checks (x-docker-cd.verify); nothing to verify")
    results: list[dict[str, Any]] = []
    for check in checks:
        failure = run_check(check, target, project, env, log)
        log.info(f"{'ok  ' if failure is None else 'FAIL'} {check.name}"
                 + (f": {failure}" if failure else ""))
        results.append({"name": check.name, "passed": failure is None, "error": failure})
    failed = [r for r in results if not r["passed"]]
    details = {"record": release.id, "checks": results}
    reporter.verification(not failed, details)
    if failed:
        raise Refused(f"{len(failed)} of {len(results)} checks failed for release {release.id}",
                      [f"{r['name']}: {r['error']}" for r in failed])
    log.info(f"Release {release.id} of {project} in {env} passed {len(results)} check(s)")
    return Result(outputs={"CD_RECORD_ID": release.id}, data=details)


STEP = Step(
    name="verify",
    help="Run the checks declared under x-docker-cd.verify in the template against the "
         "release running now; exit 1 naming every check that failed.",
    settings=Settings,
    execute=execute,
    validate=validate,
)
