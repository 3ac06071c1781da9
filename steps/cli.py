"""`docker-cd <step> [options]`: resolve inputs, run one step, write its outputs, exit 0/1/2/3.

The edge of the steps: the only place that reads the process's environment and builds the
context (log, variables, clients) a command runs with. Step modules are imported only when
their step runs, so a step that needs neither docker-py nor a YAML parser starts fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from steps.commands import STEPS, Step, load_step
from steps.context import Context
from steps.runtime import inputs
from steps.runtime.errors import ExternalError, Refused, StepError, UsageError
from steps.runtime.inputs import Option, options_of, resolve, settings_from
from steps.runtime.log import Log
from steps.runtime.masking import Masker, MaskingStream, SecretNames
from steps.runtime.outputs import write_outputs


@dataclass(frozen=True)
class Common:
    """Options every step takes besides its own: where its outputs go, and --debug."""

    dotenv: str | None = inputs.option(
        "Write outputs as KEY=VALUE lines (artifacts:reports:dotenv).", env=("CD_DOTENV",),
        metavar="FILE")
    json: str | None = inputs.option("Write outputs and details as JSON.", env=("CD_JSON",),
                                     metavar="FILE")
    debug: bool = inputs.option("Show tracebacks and debug lines.", env=("CD_DEBUG",),
                                default=False)


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
            parser.add_argument(option.dest, nargs=option.nargs, help=text,
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
    masker.add(*SecretNames.from_environ(env).values(env))
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
        options = (*options_of(step.settings), *options_of(Common))
        args = vars(_parser(step, options).parse_args(rest))
        values, sources = resolve(options, args, env)
        for option in options:
            if option.secret and values.get(option.dest):
                masker.add(str(values[option.dest]))
        common = settings_from(Common, values)
        log.debug_enabled = common.debug
        settings = settings_from(step.settings, values)
        try:
            step.validate(settings)
        except UsageError as e:
            raise _name_option(e, options, sources) from None
        result = step.execute(settings, Context(log, env, process_environ=os.environ))
        write_outputs(result, common.dotenv, common.json)
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
    found = next((o for o in options if o.dest == error.option), None)
    if found is None:
        return error
    source = sources.get(found.dest, "default")
    where = found.describe() if source == "default" else f"{found.flag} (from {source})"
    if found.positional and source != "default":
        where = f"{found.dest.upper()} (from {source})"
    return UsageError(f"{where}: {error.message}", error.option)


def main() -> None:
    """Console entry point."""
    sys.exit(run(sys.argv[1:], dict(os.environ)))
