"""`docker-cd teardown`: remove an environment from its target (GitLab's "Stop environment").

Containers or services, networks, config and secret objects and the release records go; the
environment's volumes (its data) stay unless --volumes says otherwise. Needs no checkout.
Exit 0 when the environment is gone (also when there was nothing), 3 when the engine failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from steps.commands import Step
from steps.commands.inputs.environment import TargetEnvironment
from steps.runtime.inputs import group, option
from steps.runtime.outputs import Result

if TYPE_CHECKING:
    from steps.context import Context


@dataclass(frozen=True)
class Settings:
    """The teardown step's inputs."""

    where: TargetEnvironment = group(TargetEnvironment)
    volumes: bool = option("Also remove the environment's volumes, with its data.",
                           env=("CD_TEARDOWN_VOLUMES",), default=False)


def validate(settings: Settings) -> None:
    settings.where.validate()


def execute(settings: Settings, ctx: Context) -> Result:
    project, environment = settings.where.project_name, str(settings.where.environment)
    target = ctx.target(settings.where.target)
    ctx.log.info(f"Tearing {environment} of {project} down on the {target.name} target"
                 + (", volumes included" if settings.volumes else " (volumes are kept)"))
    removed = target.teardown(project, environment, settings.volumes, ctx.log)
    if removed["kept_volumes"]:
        ctx.log.info("Kept the volumes " + ", ".join(removed["kept_volumes"])
                     + " (--volumes removes them)")
    if not any(names for kind, names in removed.items() if kind != "kept_volumes"):
        ctx.log.info(f"Nothing of {project} was deployed to {environment}.")
    return Result(data={"project": project, "environment": environment, "removed": removed})


STEP = Step(
    name="teardown",
    help="Remove an environment from its target (containers or services, networks, configs, "
         "secrets, release records); its volumes are kept unless --volumes.",
    settings=Settings,
    execute=execute,
    validate=validate,
)
