"""Inputs of a step, each declared once: a settings field that carries its option.

    @dataclass(frozen=True)
    class Settings:
        threshold: str = option("Fail at this severity.", env=("CD_THRESHOLD",), default="HIGH")
        auth: RegistryAuth = group(RegistryAuth)

The field's name gives the option (`--threshold`, and the name a UsageError gives), its type
the kind of value (str, int, float, bool for a flag, `tuple[str, ...]` for a list given
comma-separated or repeated, `Mapping[str, str] | None` for KEY=VALUE pairs), and `option()`
the help, the variables that may stand for it (highest first: CD_*, then GitLab's CI_*, then
Jenkins') and the default. A `group()` field nests a settings object whose fields are options
too: the inputs several commands share. `--help`, the README's step reference and the
precedence (option > CD_* > CI_* > Jenkins > default) are all read from these declarations.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from steps.runtime.errors import UsageError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
# The kind of value an option takes, by its settings field's type (as written).
_KINDS = {"str": "str", "str | None": "str", "int": "int", "int | None": "int",
          "float": "float", "bool": "flag", "tuple[str, ...]": "list",
          "Mapping[str, str] | None": "map"}
_INPUT = "input"
_GROUP = "group"


class Input(NamedTuple):
    """How a user gives one input: its help, its variables (highest first), its default.

    `secret` values are masked in every log line; a `positional` input is an argument (a list
    takes any number of them). Declare a shared input once and give it to each settings
    field that takes it with `.field()`; `option()` does both at once.
    """

    help: str
    env: tuple[str, ...] = ()
    default: Any = None
    choices: tuple[str, ...] = ()
    secret: bool = False
    metavar: str | None = None
    positional: bool = False

    def field(self) -> Any:
        """A settings field taking this input (its default is the input's)."""
        return dataclasses.field(default=self.default, metadata={_INPUT: self})


def option(help: str, *, env: Sequence[str] = (), default: Any = None,
           choices: Sequence[str] = (), secret: bool = False, metavar: str | None = None,
           positional: bool = False) -> Any:
    """A settings field that is also a command-line option (see the module docstring)."""
    return Input(help, tuple(env), default, tuple(choices), secret, metavar, positional).field()


def group(settings: type) -> Any:
    """A settings field holding a nested settings object: a group of shared options."""
    return dataclasses.field(default_factory=settings, metadata={_GROUP: True})


class Option(NamedTuple):
    """One input as the CLI and the README see it: its settings field (`dest`), the kind of
    value that field takes, and the Input's own attributes."""

    dest: str
    kind: str
    help: str
    env: tuple[str, ...]
    default: Any
    choices: tuple[str, ...]
    secret: bool
    metavar: str | None
    positional: bool

    @property
    def flag(self) -> str:
        return self.dest if self.positional else "--" + self.dest.replace("_", "-")

    @property
    def nargs(self) -> str:
        """How many arguments a positional input takes (argparse's spelling)."""
        return "*" if self.kind == "list" else "?"

    def describe(self) -> str:
        """The option's name as a user reads it in an error: `--threshold (CD_THRESHOLD)`."""
        label = self.dest.upper() if self.positional else self.flag
        return f"{label} ({', '.join(self.env)})" if self.env else label


@functools.cache
def options_of(settings: type) -> tuple[Option, ...]:
    """Every option of a settings class, groups flattened, in declaration order."""
    found: list[Option] = []
    for f in dataclasses.fields(settings):
        if f.metadata.get(_GROUP):
            found += options_of(f.default_factory)  # type: ignore[arg-type]
        elif _INPUT in f.metadata:
            found.append(Option(f.name, _kind(settings, f), *f.metadata[_INPUT]))
    dests = [o.dest for o in found]
    if len(set(dests)) != len(dests):
        twice = sorted({d for d in dests if dests.count(d) > 1})
        raise TypeError(f"{settings.__name__}: options declared twice: {', '.join(twice)}")
    return tuple(found)


def _kind(settings: type, f: dataclasses.Field) -> str:
    written = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if written not in _KINDS:
        raise TypeError(f"{settings.__name__}.{f.name}: an option's type is one of "
                        f"{', '.join(_KINDS)}; got {written}")
    return _KINDS[written]


def settings_from(settings: type, values: Mapping[str, Any]) -> Any:
    """A settings object (groups included) from option values by `dest`."""
    given: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        if f.metadata.get(_GROUP):
            given[f.name] = settings_from(f.default_factory, values)  # type: ignore[arg-type]
        elif _INPUT in f.metadata and f.name in values:
            given[f.name] = values[f.name]
    return settings(**given)


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
