"""`docker-cd <step> [options]`: resolve inputs, run one step, write its outputs, exit 0/1/2/3.

Step modules are imported only when their step runs, so a step that needs neither docker-py
nor a YAML parser starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from steps.errors import ExternalError, Refused, StepError, UsageError
from steps.runtime import (
    COMMON,
    Log,
    Masker,
    MaskingStream,
    Option,
    Step,
    resolve,
    write_outputs,
)

# step name (words joined by spaces) -> module holding STEP
STEPS: dict[str, str] = {
    "build": "steps.build",
    "push": "steps.push",
    "tag": "steps.tag",
    "scan": "steps.scan",
    "template render": "steps.template_render",
    "deploy": "steps.deploy",
    "verify": "steps.verify",
    "rollback": "steps.rollback",
    "releases": "steps.releases",
    "register": "steps.register",
    "gate": "steps.gate",
}

# Variables whose values are masked whatever step runs, besides each step's secret options.
_SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|TOKEN|SECRET|PRIVATE_KEY|API_KEY|AUTH_CONFIG)$")


def _usage() -> str:
    lines = ["usage: docker-cd <step> [options]   (docker-cd <step> --help)", "", "steps:"]
    lines += [f"  {name}" for name in STEPS]
    return "\n".join(lines)


def _find_step(argv: Sequence[str]) -> tuple[str, list[str]]:
    for words in (2, 1):
        name = " ".join(argv[:words])
        if name in STEPS and len(argv) >= words:
            return name, list(argv[words:])
    raise UsageError(f"unknown step {' '.join(argv[:1])!r}\n{_usage()}")


def load_step(name: str) -> Step:
    """The Step a name stands for."""
    return importlib.import_module(STEPS[name]).STEP


def _parser(step: Step, options: Sequence[Option]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"docker-cd {step.name}", description=step.help,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    for option in options:
        text = option.help
        if option.default not in (None, False, (), ""):
            text += f" [default: {option.default}]"
        if option.env:
            text += f" (env: {', '.join(option.env)})"
        if option.positional:
            nargs = option.nargs or "?"
            parser.add_argument(option.dest, nargs=nargs, help=text,
                                metavar=option.metavar or option.dest.upper())
            continue
        kwargs: dict[str, Any] = {"dest": option.dest, "help": text, "default": None}
        if option.kind == "flag":
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["metavar"] = option.metavar or (
                "KEY=VALUE" if option.kind == "map" else option.dest.upper())
            if option.kind in ("list", "map"):
                kwargs["action"] = "append"
        if option.choices:
            kwargs["help"] += f" Choices: {', '.join(option.choices)}."
        parser.add_argument(option.flag, **kwargs)
    return parser


def _masker_for(env: Mapping[str, str]) -> Masker:
    masker = Masker()
    for name, value in env.items():
        if _SECRET_NAME.search(name):
            masker.add(value)
    return masker


def run(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Run one step; return its exit code. Every byte written to stdout/stderr is masked."""
    masker = _masker_for(env)
    streams = sys.stdout, sys.stderr
    sys.stdout = MaskingStream(sys.stdout, masker)  # type: ignore[assignment]
    sys.stderr = MaskingStream(sys.stderr, masker)  # type: ignore[assignment]
    try:
        return _run(argv, env, masker)
    finally:
        sys.stdout, sys.stderr = streams


def _run(argv: Sequence[str], env: Mapping[str, str], masker: Masker) -> int:
    log = Log(masker=masker, sections=env.get("GITLAB_CI") == "true")
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if argv else 2
    try:
        name, rest = _find_step(argv)
        step = load_step(name)
        options = (*step.options, *COMMON)
        args = vars(_parser(step, options).parse_args(rest))
        values, sources = resolve(options, args, env)
        for option in options:
            if option.secret and values.get(option.dest):
                masker.add(str(values[option.dest]))
        log.debug_enabled = bool(values["debug"])
        fields = {k: v for k, v in values.items() if k in step.settings.__dataclass_fields__}
        if "environ" in step.settings.__dataclass_fields__:  # template interpolation needs it
            fields["environ"] = dict(env)
        settings = step.settings(**fields)
        try:
            step.validate(settings)
        except UsageError as e:
            raise _name_option(e, options, sources) from None
        result = step.execute(settings, log)
        write_outputs(result, values["dotenv"], values["json"])
        return 0
    except SystemExit as e:  # argparse: --help (0) or bad usage (2)
        return int(e.code or 0)
    except UsageError as e:
        log.info(f"Error: {e.message}")
        return e.exit_code
    except StepError as e:
        if isinstance(e, Refused):
            if e.result is not None:  # the answer is no, but what the step found is handed on
                write_outputs(e.result, values["dotenv"], values["json"])
            for reason in e.reasons:
                log.info(f"  - {reason}")
        log.info(f"Error: {e.message}")
        _traceback_if_debug(log)
        return e.exit_code
    except KeyboardInterrupt:
        log.info("Error: interrupted")
        return 3
    except Exception as e:  # a bug, or an outside library's error no step wrapped
        log.info(f"Error: {type(e).__name__}: {e}"
                 + ("" if log.debug_enabled else " (run with --debug for the traceback)"))
        _traceback_if_debug(log)
        return ExternalError.exit_code


def _traceback_if_debug(log: Log) -> None:
    if log.debug_enabled:
        import traceback

        traceback.print_exc()


def _name_option(error: UsageError, options: Sequence[Option],
                 sources: Mapping[str, str]) -> UsageError:
    """Prefix a validation error with the option and where its value came from."""
    if not error.option:
        return error
    option = next((o for o in options if o.dest == error.option), None)
    if option is None:
        return error
    source = sources.get(option.dest, "default")
    where = option.describe() if source == "default" else f"{option.flag} (from {source})"
    if option.positional and source != "default":
        where = f"{option.dest.upper()} (from {source})"
    return UsageError(f"{where}: {error.message}", error.option)


def main() -> None:
    """Console entry point."""
    sys.exit(run(sys.argv[1:], dict(os.environ)))
