"""The step runtime: how a step declares its inputs, logs, and hands results to the next job.

A step module exposes `STEP = Step(...)`: its options, a frozen settings dataclass whose fields
are the options' names, `validate(settings)` (no side effects) and `execute(settings, log)`
returning a `Result`. `steps.cli` resolves the options from the command line and the
environment (option > CD_* > GitLab CI_* > Jenkins > default), validates, executes and writes
the outputs. Nothing below the CLI reads `os.environ`.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from steps.errors import UsageError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Option:
    """One input of a step: a command-line option and the variables that may stand for it.

    `env` lists variables highest first (CD_*, then GitLab's CI_*, then Jenkins'). `kind` is
    one of str, int, float, flag, list (comma-separated or repeated) or map (KEY=VALUE,
    repeated, or one per line in a variable). `secret` values are masked in every log line.
    `positional` options are arguments (`nargs` as argparse takes it).
    """

    name: str
    help: str
    env: tuple[str, ...] = ()
    default: Any = None
    kind: str = "str"
    choices: tuple[str, ...] = ()
    secret: bool = False
    metavar: str | None = None
    positional: bool = False
    nargs: str | None = None

    @property
    def dest(self) -> str:
        return self.name.lstrip("-").replace("-", "_")

    @property
    def flag(self) -> str:
        return self.name if self.positional else "--" + self.name.lstrip("-")

    def describe(self) -> str:
        """The option's name as a user reads it in an error: `--threshold (CD_THRESHOLD)`."""
        label = self.dest.upper() if self.positional else self.flag
        return f"{label} ({', '.join(self.env)})" if self.env else label


@dataclass(frozen=True)
class Result:
    """What a step hands on: `outputs` go to the dotenv (CD_* variables) and the JSON file;
    `data` only to the JSON file."""

    outputs: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """A step as the CLI sees it."""

    name: str
    help: str
    options: tuple[Option, ...]
    settings: type
    execute: Callable[[Any, Log], Result]
    validate: Callable[[Any], None] = lambda settings: None


# Options shared by several steps. Each group is a tuple to splice into a step's options.
CI_CONTEXT = (
    Option("commit-sha", "Commit the image is built from.",
           env=("CD_COMMIT_SHA", "CI_COMMIT_SHA", "GIT_COMMIT")),
    Option("ref-slug", "Branch or tag name, slugged (lower case, [a-z0-9-], 63 chars).",
           env=("CD_REF_SLUG", "CI_COMMIT_REF_SLUG", "BRANCH_NAME")),
    Option("git-tag", "Git tag of the pipeline, if any (v1.2.3 gives semver tags).",
           env=("CD_GIT_TAG", "CI_COMMIT_TAG", "TAG_NAME")),
    Option("pipeline-id", "CI pipeline (or Jenkins build) id.",
           env=("CD_PIPELINE_ID", "CI_PIPELINE_ID", "BUILD_NUMBER")),
    Option("pipeline-url", "CI pipeline (or Jenkins build) URL.",
           env=("CD_PIPELINE_URL", "CI_PIPELINE_URL", "BUILD_URL")),
    Option("project-url", "Web URL of the project's repository.",
           env=("CD_PROJECT_URL", "CI_PROJECT_URL", "GIT_URL")),
    Option("project-path", "Path of the project (group/name).",
           env=("CD_PROJECT_PATH", "CI_PROJECT_PATH", "JOB_NAME")),
)

REGISTRY_AUTH = (
    Option("registry", "Registry host the CI system logs in to.",
           env=("CD_REGISTRY", "CI_REGISTRY")),
    Option("registry-user", "User for --registry.",
           env=("CD_REGISTRY_USER", "CI_REGISTRY_USER")),
    Option("registry-password", "Password or token for --registry.",
           env=("CD_REGISTRY_PASSWORD", "CI_REGISTRY_PASSWORD"), secret=True),
    Option("docker-auth-config", "Docker config JSON with registry credentials.",
           env=("DOCKER_AUTH_CONFIG",), secret=True, metavar="JSON"),
    Option("docker-config", "Directory holding the Docker config.json.",
           env=("DOCKER_CONFIG",), metavar="DIR"),
)

SERVICE = (
    Option("service-url", "Promotion service base URL; reporting is skipped when unset.",
           env=("CD_SERVICE_URL",), metavar="URL"),
    Option("service-token", "Bearer token for the promotion service.",
           env=("CD_SERVICE_TOKEN",), secret=True),
)
JOB_URL = Option("job-url", "URL of this CI job, recorded by the promotion service.",
                 env=("CD_JOB_URL", "CI_JOB_URL", "BUILD_URL"), metavar="URL")

COMMON = (
    Option("dotenv", "Write outputs as KEY=VALUE lines (artifacts:reports:dotenv).",
           env=("CD_DOTENV",), metavar="FILE"),
    Option("json", "Write outputs and details as JSON.", env=("CD_JSON",), metavar="FILE"),
    Option("debug", "Show tracebacks and debug lines.", env=("CD_DEBUG",), kind="flag",
           default=False),
)



# Settings fields behind those groups, for a step's Settings to inherit. A step may declare only
# some of a group's options: the others keep their defaults.
@dataclass(frozen=True)
class CIContextSettings:
    commit_sha: str | None = None
    ref_slug: str | None = None
    git_tag: str | None = None
    pipeline_id: str | None = None
    pipeline_url: str | None = None
    project_url: str | None = None
    project_path: str | None = None


@dataclass(frozen=True)
class RegistryAuthSettings:
    registry: str | None = None
    registry_user: str | None = None
    registry_password: str | None = None
    docker_auth_config: str | None = None
    docker_config: str | None = None


@dataclass(frozen=True)
class ServiceSettings:
    service_url: str | None = None
    service_token: str | None = None
    job_url: str | None = None


def parse_value(option: Option, raw: Any, source: str) -> Any:
    """Turn a raw string (or list from repeated options) into the option's kind."""
    kind = option.kind
    try:
        if kind == "flag":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError("expected true or false")
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "list":
            items = raw if isinstance(raw, list) else [raw]
            return tuple(p.strip() for item in items for p in re.split(r"[,\n]", str(item))
                         if p.strip())
        if kind == "map":
            items = raw if isinstance(raw, list) else str(raw).splitlines()
            pairs = {}
            for item in items:
                if not str(item).strip():
                    continue
                key, sep, value = str(item).partition("=")
                if not sep or not key.strip():
                    raise ValueError(f"expected KEY=VALUE, got {item!r}")
                pairs[key.strip()] = value
            return pairs
    except ValueError as e:
        raise UsageError(f"{source}: {e}", option.dest) from e
    value = str(raw)
    if option.choices and value not in option.choices:
        raise UsageError(
            f"{source}: must be one of {', '.join(option.choices)}; got {value!r}", option.dest)
    return value


def resolve(options: Sequence[Option], given: Mapping[str, Any],
            env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Pick each option's value: command line, then its variables in order, then the default.

    Returns the values by `dest` and where each came from (`--flag`, a variable name, `default`).
    Empty variables count as unset, as GitLab passes unset inputs as empty strings.
    """
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for option in options:
        raw = given.get(option.dest)
        if raw is not None and raw != []:
            values[option.dest] = parse_value(option, raw, option.flag)
            sources[option.dest] = option.flag
            continue
        for var in option.env:
            if env.get(var, "") != "":
                values[option.dest] = parse_value(option, env[var], var)
                sources[option.dest] = var
                break
        else:
            values[option.dest] = option.default
            sources[option.dest] = "default"
    return values, sources


class Masker:
    """Replaces every known secret in a text with [MASKED]."""

    MIN_LENGTH = 4

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, *secrets: str | None) -> None:
        """Mask these values, and their base64 and URL-encoded forms (auth headers carry those)."""
        import base64
        from urllib.parse import quote

        for secret in secrets:
            if not secret or len(secret) < self.MIN_LENGTH:
                continue
            self._secrets.update({secret, quote(secret, safe=""),
                                  base64.b64encode(secret.encode()).decode()})
        if self._secrets:
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def add_basic_auth(self, user: str, password: str) -> None:
        """Mask the `user:password` pair as a basic auth header would carry it."""
        if password:
            self.add(password, f"{user}:{password}")

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub("[MASKED]", text)


class MaskingStream:
    """A text stream that masks secrets before they reach the underlying stream."""

    def __init__(self, stream: TextIO, masker: Masker) -> None:
        self._stream = stream
        self._masker = masker

    def write(self, text: str) -> int:
        self._stream.write(self._masker(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self._stream, "encoding", "utf-8")


class Log:
    """The step's readable log on stderr: lines, echoed commands, GitLab collapsible sections.

    Every line passes through the masker, so a secret never reaches the job log.
    """

    def __init__(self, stream: TextIO | None = None, masker: Masker | None = None,
                 sections: bool = False, debug_enabled: bool = False) -> None:
        self.masker = masker or Masker()
        self._stream = stream
        self._sections = sections
        self.debug_enabled = debug_enabled
        self._count = 0

    def _write(self, text: str) -> None:
        stream = self._stream or sys.stderr
        stream.write(self.masker(text))
        stream.flush()

    def info(self, message: str) -> None:
        self._write(message.rstrip("\n") + "\n")

    def warn(self, message: str) -> None:
        self.info(f"Warning: {message}")

    def debug(self, message: str) -> None:
        if self.debug_enabled:
            self.info(f"debug: {message}")

    def command(self, argv: Sequence[str]) -> None:
        """Echo an outside action the way CI users expect: `+ docker push ...`."""
        import shlex

        self.info("+ " + " ".join(shlex.quote(str(a)) for a in argv))

    @contextmanager
    def section(self, title: str, collapsed: bool = False) -> Iterator[None]:
        """A GitLab collapsible section around a long part of the log (plain header elsewhere)."""
        self._count += 1
        name = re.sub(r"[^a-z0-9_]+", "_", title.lower()).strip("_")[:40] + f"_{self._count}"
        if self._sections:
            opts = "[collapsed=true]" if collapsed else ""
            self._write(f"\x1b[0Ksection_start:{int(time.time())}:{name}{opts}\r\x1b[0K{title}\n")
        else:
            self.info(f"--- {title}")
        try:
            yield
        finally:
            if self._sections:
                self._write(f"\x1b[0Ksection_end:{int(time.time())}:{name}\r\x1b[0K")


def dotenv_text(outputs: Mapping[str, str]) -> str:
    """Outputs as GitLab's dotenv report takes them: one KEY=VALUE a line, values single-line."""
    lines = []
    for key, value in outputs.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"not a variable name: {key!r}")
        text = str(value)
        if "\n" in text:
            raise ValueError(f"{key}: a dotenv value must be a single line")
        lines.append(f"{key}={text}\n")
    return "".join(lines)


def write_outputs(result: Result, dotenv: str | None, json_file: str | None) -> None:
    """Write the dotenv and JSON files a later job or tool reads."""
    if dotenv:
        with open(dotenv, "w", encoding="utf-8") as f:
            f.write(dotenv_text(result.outputs))
    if json_file:
        with open(json_file, "w", encoding="utf-8") as f:
            json.dump({"outputs": dict(result.outputs), **dict(result.data)}, f, indent=2,
                      default=str)
            f.write("\n")
