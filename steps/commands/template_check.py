"""`docker-cd template check`: validate every environment's template early (merge-request and
branch pipelines), before anything is built: every problem of every environment at once.

Exit 0 when each environment's template is valid for the target, 2 naming every problem.
Variables the pipeline does not have (environment-scoped or protected ones) are not set here:
a value using one is left unchecked, with a warning, and `${CD_IMAGE}` stands for an image by
digest. The deploy step checks everything again with the environment's own variables.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from steps.commands import Step
from steps.commands.inputs.environment import TARGET, TemplateSource, check_environment
from steps.runtime.inputs import group, option
from steps.runtime.outputs import Result
from steps.targets import load_template, without_overlay

if TYPE_CHECKING:
    from steps.context import Context

PLACEHOLDER_IMAGE = "registry.invalid/image@sha256:" + "0" * 64


@dataclass(frozen=True)
class Settings:
    """The template check step's inputs."""

    environments: tuple[str, ...] = option(
        "Environments whose templates to check (comma list) [default: every environment with "
        "a compose.<env>.yml overlay].", env=("CD_TEMPLATE_ENVIRONMENTS",), default=(),
        metavar="ENVS")
    target: str = TARGET.field()
    template: TemplateSource = group(TemplateSource)


def validate(settings: Settings) -> None:
    for environment in settings.environments:
        check_environment(environment)


def execute(settings: Settings, ctx: Context) -> Result:
    from steps.template import TemplateError, overlay_environments

    directory = settings.template.template_dir
    environments = settings.environments or tuple(overlay_environments(Path(directory)))
    if not environments:
        raise TemplateError(f"no compose.<environment>.yml in {directory}: name the "
                            "environments to check with --environments (CD_TEMPLATE_ENVIRONMENTS)")
    problems: list[str] = []
    checked: dict[str, dict[str, object]] = {}
    warned: set[str] = set()
    for environment in environments:
        if environment not in overlay_environments(Path(directory)):
            ctx.log.warn(without_overlay(Path(directory), environment))
        try:
            template = load_template(settings.target, directory, environment, ctx.environ,
                                     settings.template.image or PLACEHOLDER_IMAGE, ctx.log,
                                     lenient=True, warned=warned)
        except TemplateError as e:
            ctx.log.info(f"{environment}: {len(e.problems)} problem(s)")
            problems += [p for p in e.problems if p not in problems]
            continue
        ctx.log.info(f"{environment}: ok ({' + '.join(template.files)}, {settings.target} "
                     f"target)")
        checked[environment] = {"files": list(template.files),
                                "template_hash": template.hash()}
    if problems:
        raise TemplateError.of(problems)
    return Result(data={"environments": checked})


STEP = Step(
    name="template check",
    help="Check the application template of every environment (all problems at once, with "
         "file and line), without an engine: for merge-request and branch pipelines.",
    settings=Settings,
    execute=execute,
    validate=validate,
)
