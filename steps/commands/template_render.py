"""`docker-cd template render`: print the merged, interpolated template (secrets redacted), so a
team reviews exactly what a deploy would roll out (a release's members by digest). Needs no
engine."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from steps.commands import Step
from steps.commands.inputs.environment import (
    ENVIRONMENT,
    TARGET,
    ReleaseMembers,
    TemplateSource,
    check_environment,
)
from steps.runtime.inputs import group
from steps.runtime.outputs import Result
from steps.targets import load_template, with_members, without_overlay

if TYPE_CHECKING:
    from steps.context import Context


@dataclass(frozen=True)
class Settings:
    """The template render step's inputs."""

    environment: str | None = ENVIRONMENT.field()
    target: str = TARGET.field()
    template: TemplateSource = group(TemplateSource)
    members: ReleaseMembers = group(ReleaseMembers)


def validate(settings: Settings) -> None:
    check_environment(settings.environment)


def execute(settings: Settings, ctx: Context) -> Result:
    environment = str(settings.environment)
    template = load_template(settings.target, settings.template.template_dir, environment,
                             ctx.environ, settings.template.image, ctx.log)
    template, _ = with_members(template, ctx.environ, settings.members.release_id,
                               settings.members.unpinned, ctx.log)
    if template.overlay is None:
        ctx.log.warn(without_overlay(Path(settings.template.template_dir), environment))
    ctx.log.info(f"# {' + '.join(template.files)} for {environment} "
                 f"({settings.target} target), {template.hash()}")
    sys.stdout.write(template.rendered())
    sys.stdout.flush()
    return Result(data={"template_hash": template.hash(),
                        "config_hashes": template.config_hashes()})


STEP = Step(
    name="template render",
    help="Print the merged, interpolated application template for an environment, secrets "
         "redacted, after checking every key against the chosen target.",
    settings=Settings,
    execute=execute,
    validate=validate,
)
