"""`docker-cd template render`: print the merged, interpolated template (secrets redacted), so a
team reviews exactly what a deploy would roll out. Needs no engine."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from steps.deploy import IMAGE, TemplateSettings, load_template
from steps.runtime import Log, Result, Step
from steps.targets import ENVIRONMENT, TARGET, TEMPLATE_DIR, validate_common


@dataclass(frozen=True, kw_only=True)
class Settings(TemplateSettings):
    pass


def validate(settings: Settings) -> None:
    validate_common(settings)


def execute(settings: Settings, log: Log) -> Result:
    template = load_template(settings, log)
    log.info(f"# {' + '.join(template.files)} for {settings.environment} "
             f"({settings.target} target), {template.hash()}")
    sys.stdout.write(template.rendered())
    sys.stdout.flush()
    return Result(data={"template_hash": template.hash(),
                        "config_hashes": template.config_hashes()})


STEP = Step(
    name="template render",
    help="Print the merged, interpolated application template for an environment, secrets "
         "redacted, after checking every key against the chosen target.",
    options=(ENVIRONMENT, TARGET, TEMPLATE_DIR, IMAGE),
    settings=Settings,
    execute=execute,
    validate=validate,
)
