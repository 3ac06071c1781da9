"""The application template: Compose files merged and interpolated the way `docker compose` does.

Pure domain logic (reads files, imports no docker/requests), so a team can review what will be
deployed (`template render`) and every target receives the same normalised model.

    load(directory, environment, environ) -> Template
        compose.yml (+ compose.<environment>.yml): each file interpolated, then merged per the
        Compose Specification's merge rules, then normalised to long syntax.

Errors name the file and line: `deploy/compose.yml:7: services.web.ports[0]: ...`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from steps.cli import _SECRET_NAME
from steps.compose_merge import (
    RESET,
    LocDict,
    LocList,
    Override,
    Path_,
    format_path,
    merge,
    where,
)
from steps.compose_values import parse_duration, parse_env_file, parse_port, parse_size
from steps.interpolation import InterpolationError, interpolate, unset_without_default
from steps.template_normalise import (
    Check,
    TemplateError,
    _Normaliser,
    checks_from_rendered,
    dependency_order,
)

__all__ = [
    "REDACTED", "RESET", "Check", "InterpolationError", "LocDict", "LocList", "Template",
    "TemplateError", "build", "checks_from_rendered", "dependency_order", "first_unsupported",
    "format_path", "interpolate", "load", "loads", "merge", "parse_duration", "parse_env_file",
    "parse_port", "parse_size", "redact", "where",
]

REDACTED = "[REDACTED]"
BASE_NAMES = ("compose.yml", "compose.yaml")


class _Reader:
    """Turns one YAML file into LocDict/LocList values, interpolating every string scalar."""

    def __init__(self, name: str, environ: Mapping[str, str]) -> None:
        self.name = name
        self.environ = environ
        self.constructor = yaml.SafeLoader("")
        self.secret_paths: set[Path_] = set()
        self.warnings: list[str] = []

    def read(self, text: str) -> LocDict:
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f":{mark.line + 1}" if mark else ""
            raise TemplateError(f"{self.name}{line}: not valid YAML: "
                                f"{getattr(e, 'problem', None) or e}") from e
        if node is None:
            return LocDict()
        value = self._convert(node, ())
        if not isinstance(value, dict):
            raise TemplateError(f"{self.name}:1: a Compose file must be a mapping at the top")
        return value

    def _where(self, node: yaml.Node, path: Path_) -> str:
        return f"{self.name}:{node.start_mark.line + 1}: {format_path(path) or '(top)'}"

    def _convert(self, node: yaml.Node, path: Path_) -> Any:
        if node.tag == "!reset":
            return RESET
        if node.tag == "!override":
            node.tag = self.constructor.resolve(type(node), getattr(node, "value", None)
                                                if isinstance(node, yaml.ScalarNode) else None,
                                                (True, False))
            return Override(self._convert(node, path))
        if isinstance(node, yaml.MappingNode):
            self.constructor.flatten_mapping(node)
            out = LocDict()
            for key_node, value_node in node.value:
                key = str(self.constructor.construct_object(key_node))
                if key in out:
                    raise TemplateError(f"{self._where(key_node, (*path, key))}: "
                                        "key given twice in the same mapping")
                out.locs[key] = (self.name, key_node.start_mark.line + 1)
                out[key] = self._convert(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            items = LocList()
            for i, item in enumerate(node.value):
                items.append(self._convert(item, (*path, i)))
                items.locs.append((self.name, item.start_mark.line + 1))
            return items
        try:
            value = self.constructor.construct_object(node)
        except yaml.YAMLError as e:
            raise TemplateError(f"{self._where(node, path)}: {e}") from e
        if isinstance(value, str):
            text = value
            try:
                value, used = interpolate(text, self.environ)
            except InterpolationError as e:
                raise TemplateError(f"{self._where(node, path)}: {e}") from e
            if any(_SECRET_NAME.search(name) for name in used):
                self.secret_paths.add(path)
            for name in unset_without_default(text, self.environ):
                self.warnings.append(f"{self._where(node, path)}: ${{{name}}} is not set; "
                                     "using an empty string")
        return value


@dataclass(frozen=True)
class Template:
    """The merged, interpolated, normalised application template for one environment."""

    raw: LocDict
    model: dict[str, Any]
    directory: Path
    files: tuple[str, ...]
    configs: dict[str, bytes] = field(default_factory=dict)
    secrets: dict[str, bytes] = field(default_factory=dict)
    checks: tuple[Check, ...] = ()
    secret_paths: frozenset[Path_] = frozenset()
    warnings: tuple[str, ...] = ()

    def where(self, path: Path_) -> str:
        """`file:line: key.path` for an error about the value at `path` (of the merged model)."""
        return where(self.raw, path)

    def rendered(self) -> str:
        """The merged model as YAML with secrets redacted, for review and the release record."""
        return yaml.safe_dump(_concise(self.redacted()), sort_keys=False,
                              default_flow_style=False, allow_unicode=True)

    def redacted(self) -> dict[str, Any]:
        """The normalised model with every secret value replaced by [REDACTED]."""
        return redact(self.model, self.secret_paths)

    def hash(self) -> str:
        """Identifies what this template deploys (the rendered text, secrets redacted)."""
        return sha256(self.rendered().encode())

    def config_hashes(self) -> dict[str, str]:
        """Content hash of each config and secret: a changed file shows as a changed hash."""
        hashes = {f"config:{n}": sha256(c) for n, c in sorted(self.configs.items())}
        hashes.update({f"secret:{n}": sha256(c) for n, c in sorted(self.secrets.items())})
        return hashes

    def check_supported(self, target: str, supported: Sequence[str]) -> None:
        """Raise naming the first key the target cannot honour (never drop one silently)."""
        key = first_unsupported(self.raw, supported)
        if key is not None:
            raise TemplateError(f"{self.where(key)}: the {target} target does not support this "
                                "key; remove it from the template (or choose another --target)")


def sha256(data: bytes) -> str:
    """The digest form every record and label uses (`sha256:<hex>`)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


_DEFAULTS = {"ports": [], "volumes": [], "configs": [], "secrets": [], "depends_on": {},
             "labels": {}, "environment": {}, "networks": {"default": {}}}


def _concise(model: dict[str, Any]) -> dict[str, Any]:
    """The model without what it says by default (nulls, empty lists, the default network)."""
    def service(spec: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for key, value in spec.items():
            if value is None or _DEFAULTS.get(key, object()) == value:
                continue
            if isinstance(value, list):
                value = [{k: v for k, v in item.items() if v is not None}
                         if isinstance(item, dict) else item for item in value]
            out[key] = value
        return out

    out = dict(model)
    out["services"] = {name: service(spec) for name, spec in model["services"].items()}
    return {k: v for k, v in out.items() if v != {} or k == "services"}


def redact(model: Any, secret_paths: frozenset[Path_], path: Path_ = ()) -> Any:
    """Replace secret values: those built from *PASSWORD/*TOKEN/*SECRET... variables, and
    environment entries whose names say they are secrets."""
    if path in secret_paths:
        return REDACTED
    if isinstance(model, dict):
        is_env = len(path) == 3 and path[0] == "services" and path[2] == "environment"
        return {k: (REDACTED if is_env and v and _SECRET_NAME.search(k) else
                    redact(v, secret_paths, (*path, k))) for k, v in model.items()}
    if isinstance(model, list):
        return [redact(v, secret_paths, (*path, i)) for i, v in enumerate(model)]
    return model


def first_unsupported(raw: Any, patterns: Sequence[str], path: Path_ = ()) -> Path_ | None:
    """The first mapping key (depth first) that no pattern allows; x-* keys are always allowed."""
    if isinstance(raw, dict):
        children = [(k, v, True) for k, v in raw.items()]
    elif isinstance(raw, list):
        children = [(i, v, False) for i, v in enumerate(raw)]
    else:
        return None
    for key, value, is_key in children:
        sub = (*path, key)
        if is_key and str(key).startswith("x-"):
            continue
        dotted = ".".join(str(p) for p in sub)
        if is_key and not _allowed(dotted, patterns):
            return sub
        found = first_unsupported(value, patterns, sub)
        if found is not None:
            return found
    return None


def _allowed(dotted: str, patterns: Sequence[str]) -> bool:
    parts = dotted.split(".")
    for pattern in patterns:
        pparts = pattern.split(".")
        if pparts[-1] == "**":
            if len(parts) >= len(pparts) - 1 and all(
                    fnmatchcase(a, b) for a, b in zip(parts, pparts[:-1], strict=False)):
                return True
        elif len(parts) <= len(pparts) and all(  # the key or a mapping on the way to it
                fnmatchcase(a, b) for a, b in zip(parts, pparts, strict=False)):
            return True
    return False


# ---------------------------------------------------------------- loading and normalising

def find_files(directory: Path, environment: str) -> list[Path]:
    """The base file and, when present, the environment's overlay."""
    base = next((directory / n for n in BASE_NAMES if (directory / n).is_file()), None)
    if base is None:
        raise TemplateError(f"no {BASE_NAMES[0]} in {directory}: put the application template "
                            "there or point --template-dir (CD_TEMPLATE_DIR) at it")
    overlays = [directory / f"compose.{environment}.{ext}" for ext in ("yml", "yaml")]
    return [base, *[p for p in overlays if p.is_file()][:1]]


def load(directory: Path | str, environment: str, environ: Mapping[str, str]) -> Template:
    """Read, interpolate, merge and normalise the template for `environment`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise TemplateError(f"template directory {directory} does not exist; set "
                            "--template-dir (CD_TEMPLATE_DIR) to the directory holding compose.yml")
    texts = {_display(p): p.read_text(encoding="utf-8") for p in find_files(directory, environment)}
    return loads(texts, environ, directory)


def loads(texts: Mapping[str, str], environ: Mapping[str, str],
          directory: Path | str = ".") -> Template:
    """Like `load`, from files already read ({name: text}, base first)."""
    merged: Any = LocDict()
    secret_paths: set[Path_] = set()
    warnings: list[str] = []
    for name, text in texts.items():
        reader = _Reader(name, environ)
        merged = merge(merged, reader.read(text))
        secret_paths |= reader.secret_paths
        warnings += reader.warnings
    return build(merged, Path(directory), tuple(texts), environ, frozenset(secret_paths),
                 tuple(warnings))


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def build(raw: LocDict, directory: Path, files: tuple[str, ...], environ: Mapping[str, str],
          secret_paths: frozenset[Path_] = frozenset(), warnings: tuple[str, ...] = ()) -> Template:
    """Normalise a merged model to long syntax and read its configs, secrets and checks."""
    norm = _Normaliser(raw, directory, environ)
    model = norm.model()
    return Template(raw=raw, model=model, directory=directory, files=files,
                    configs=norm.contents("configs"), secrets=norm.contents("secrets"),
                    checks=norm.checks(), secret_paths=secret_paths | norm.secret_paths,
                    warnings=warnings)



