"""`docker-cd releases`: the releases of an environment, newest first, from the target alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from steps.commands import Step
from steps.commands.inputs.environment import TargetEnvironment
from steps.release import history, table
from steps.runtime.inputs import group
from steps.runtime.outputs import Result

if TYPE_CHECKING:
    from steps.context import Context


@dataclass(frozen=True)
class Settings:
    """The releases step's inputs."""

    where: TargetEnvironment = group(TargetEnvironment)


def validate(settings: Settings) -> None:
    settings.where.validate()


def execute(settings: Settings, ctx: Context) -> Result:
    project, environment = settings.where.project_name, str(settings.where.environment)
    target = ctx.target(settings.where.target)
    found = history(target.records(project, environment))
    if not found:
        ctx.log.info(f"No release of {project} in {environment} on the {target.name} "
                     "target yet.")
    else:
        ctx.log.info(table(found))
    return Result(data={"project": project, "environment": environment,
                        "releases": [r.summary() for r in found]})


STEP = Step(
    name="releases",
    help="List the releases of an environment, newest first, from the target alone.",
    settings=Settings,
    execute=execute,
    validate=validate,
)
