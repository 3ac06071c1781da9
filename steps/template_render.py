"""`docker-cd template render`: print the merged, interpolated template (secrets redacted), so a
team reviews exactly what a deploy would roll out. Needs no engine."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from steps.deploy import IMAGE, interpolation_env
from steps.runtime import Log, Result, Step
from steps.targets import ENVIRONMENT, TARGET, TEMPLATE_DIR, target_class, validate_common


@dataclass(frozen=True)
class Settings:
    environment: str | None
    target: str
    template_dir: str
    image: str | None
    project: str | None = None
    environ: Mapping[str, str] = field(default_factory=dict)


def validate(settings: Settings) -> None:
    validate_common(settings)


def execute(settings: Settings, log: Log) -> Result:
    from steps.template import load

    template = load(Path(settings.template_dir), str(settings.environment),
                    interpolation_env(settings))
    for warning in template.warnings:
        log.warn(warning)
    template.check_supported(settings.target, target_class(settings.target).supported)
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
