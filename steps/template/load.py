"""Loading the application template: Compose files interpolated, merged and normalised the
way `docker compose` does.

    load(directory, environment, environ) -> Template
        compose.yml (+ compose.<environment>.yml): each file interpolated, then merged per the
        Compose Specification's merge rules, then normalised to long syntax.

Errors name the file and line: `deploy/compose.yml:7: services.web.ports[0]: ...`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from steps.runtime.masking import is_secret_name
from steps.template.interpolate import InterpolationError, interpolate, unset_without_default
from steps.template.merge import RESET, KeyPath, LocDict, LocList, Override, format_path, merge
from steps.template.model import Template, TemplateError
from steps.template.normalise import Normaliser

BASE_NAMES = ("compose.yml", "compose.yaml")


class _Reader:
    """Turns one YAML file into LocDict/LocList values, interpolating every string scalar."""

    def __init__(self, name: str, environ: Mapping[str, str]) -> None:
        self.name = name
        self.environ = environ
        self.constructor = yaml.SafeLoader("")
        self.secret_paths: set[KeyPath] = set()
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

    def _where(self, node: yaml.Node, path: KeyPath) -> str:
        return f"{self.name}:{node.start_mark.line + 1}: {format_path(path) or '(top)'}"

    def _convert(self, node: yaml.Node, path: KeyPath) -> Any:
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
            if any(is_secret_name(name) for name in used):
                self.secret_paths.add(path)
            for name in unset_without_default(text, self.environ):
                self.warnings.append(f"{self._where(node, path)}: ${{{name}}} is not set; "
                                     "using an empty string")
        return value


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
    secret_paths: set[KeyPath] = set()
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
          secret_paths: frozenset[KeyPath] = frozenset(),
          warnings: tuple[str, ...] = ()) -> Template:
    """Normalise a merged model to long syntax and read its configs, secrets and checks."""
    norm = Normaliser(raw, directory, environ)
    model = norm.model()
    return Template(raw=raw, model=model, directory=directory, files=files,
                    configs=norm.contents("configs"), secrets=norm.contents("secrets"),
                    checks=norm.checks(), secret_paths=secret_paths | norm.secret_paths,
                    warnings=warnings)
