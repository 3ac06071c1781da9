"""Loading the application template: Compose files read within bounds, interpolated, checked
against the schema, merged and normalised the way `docker compose` does.

    load(directory, environment, environ) -> Template
        compose.yml (+ compose.<environment>.yml): each file read (size, YAML aliases, depth
        and node count bounded, so a hostile file fails fast), interpolated, checked against
        the Compose schema, then merged per the Compose Specification's merge rules and
        normalised to long syntax. Every problem is reported at once (one TemplateError).

Problems name the file and line: `deploy/compose.yml:7: services.web.ports[0]: ...`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from steps.runtime.masking import SecretNames
from steps.template.files import display, inside, read_bounded
from steps.template.host_access import check_host_access
from steps.template.interpolate import InterpolationError, interpolate, unset_without_default
from steps.template.merge import RESET, KeyPath, LocDict, LocList, Override, format_path, merge
from steps.template.model import Template, TemplateError, unsupported
from steps.template.normalise import Normaliser
from steps.template.problems import Problems
from steps.template.schema import schema_problems

BASE_NAMES = ("compose.yml", "compose.yaml")
MAX_FILE_BYTES = 1024 * 1024  # a Compose file; real ones are a few kilobytes
MAX_NODES = 20_000            # YAML nodes of one file, aliases expanded
MAX_ALIASES = 500             # uses of an alias (*name) in one file
MAX_DEPTH = 40                # nesting levels


class _TooBig(Exception):
    """A bound of the YAML reader was passed; the file is refused as a whole."""


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader counting nodes, aliases and depth while it composes."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.nodes = self.aliases = self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _TooBig(f"more than {MAX_ALIASES} aliases (*name)")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _TooBig(f"more than {MAX_NODES:,} YAML nodes")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _TooBig(f"nested deeper than {MAX_DEPTH} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _Reader:
    """Turns one YAML file into LocDict/LocList values, interpolating every string scalar.

    `lenient`: a value whose variables are not set here keeps its `${...}` text and is not
    checked (for `template check`, where environment-scoped variables are missing)."""

    def __init__(self, name: str, environ: Mapping[str, str], problems: Problems,
                 secret_names: SecretNames, lenient: bool = False) -> None:
        self.name = name
        self.environ = environ
        self.problems = problems
        self.secret_names = secret_names
        self.lenient = lenient
        self.constructor = yaml.SafeLoader("")
        self.secret_paths: set[KeyPath] = set()
        self.unresolved: set[KeyPath] = set()
        self.warnings: list[str] = []
        self.expanded = 0

    def read(self, text: str) -> LocDict | None:
        """The file's mapping, or None when it cannot be read at all (a problem says why)."""
        file_path = (f"file:{self.name}",)
        try:
            node = yaml.compose(text, Loader=_BoundedLoader)
            value = self._convert(node, ()) if node is not None else LocDict()
        except _TooBig as e:
            self.problems.add_text(file_path, f"{self.name}: {e}; a template this big is "
                                   "refused (is it the file you meant?)")
            return None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f":{mark.line + 1}" if mark else ""
            self.problems.add_text(file_path, f"{self.name}{line}: not valid YAML: "
                                   f"{getattr(e, 'problem', None) or e}")
            return None
        if not isinstance(value, dict):
            self.problems.add_text(file_path, f"{self.name}:1: a Compose file must be a "
                                   "mapping at the top")
            return None
        return value

    def _where(self, node: yaml.Node, path: KeyPath) -> str:
        return f"{self.name}:{node.start_mark.line + 1}: {format_path(path) or '(top)'}"

    def _convert(self, node: yaml.Node, path: KeyPath) -> Any:
        self.expanded += 1
        if self.expanded > MAX_NODES:
            raise _TooBig(f"more than {MAX_NODES:,} YAML nodes once its aliases are expanded")
        if len(path) > MAX_DEPTH:
            raise _TooBig(f"nested deeper than {MAX_DEPTH} levels")
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
                    self.problems.add_text((*path, key), f"{self._where(key_node, (*path, key))}"
                                           ": key given twice in the same mapping")
                    continue
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
            self.problems.add_text(path, f"{self._where(node, path)}: {e}")
            return None
        return self._interpolate(value, node, path) if isinstance(value, str) else value

    def _interpolate(self, text: str, node: yaml.Node, path: KeyPath) -> str:
        unset = unset_without_default(text, self.environ)
        try:
            value, used = interpolate(text, self.environ)
        except InterpolationError as e:
            if not self.lenient:
                self.problems.add_text(path, f"{self._where(node, path)}: {e}")
                return ""
            self.warnings.append(f"{self._where(node, path)}: {e} (not checked here)")
            self.unresolved.add(path)
            return text
        if any(self.secret_names(name) for name in used):
            self.secret_paths.add(path)
        for name in unset:
            if self.lenient:
                self.unresolved.add(path)
                value = text
            self.warnings.append(f"{self._where(node, path)}: ${{{name}}} is not set; "
                                 + ("not checked here" if self.lenient else
                                    "using an empty string"))
        return value


def overlay_environments(directory: Path) -> list[str]:
    """The environments that have an overlay (compose.<environment>.yml) in the directory."""
    return sorted({p.name.split(".")[1] for pattern in ("compose.*.yml", "compose.*.yaml")
                   for p in directory.glob(pattern) if p.name.count(".") == 2})


def find_files(directory: Path, environment: str) -> list[Path]:
    """The base file and, when present, the environment's overlay."""
    base = next((directory / n for n in BASE_NAMES if (directory / n).is_file()), None)
    if base is None:
        raise TemplateError(f"no {BASE_NAMES[0]} in {directory}: put the application template "
                            "there or point --template-dir (CD_TEMPLATE_DIR) at it")
    overlays = [directory / f"compose.{environment}.{ext}" for ext in ("yml", "yaml")]
    return [base, *[p for p in overlays if p.is_file()][:1]]


def load(directory: Path | str, environment: str, environ: Mapping[str, str], *,
         target: str | None = None, supported: Sequence[str] | None = None,
         lenient: bool = False) -> Template:
    """Read, check, merge and normalise the template for `environment`; raise one
    TemplateError naming every problem. With `target`, every key is checked against the
    target's `supported` patterns too."""
    directory = Path(directory)
    if not directory.is_dir():
        raise TemplateError(f"template directory {directory} does not exist; set "
                            "--template-dir (CD_TEMPLATE_DIR) to the directory holding compose.yml")
    problems = Problems()
    texts = {}
    for path in find_files(directory, environment):
        name = display(path)
        real = inside(directory, path)
        if real is None:
            problems.add_text((f"file:{name}",), f"{name}: resolves to {path.resolve()}, outside "
                              f"the template directory {display(directory)}")
            continue
        text = read_bounded(real, MAX_FILE_BYTES)
        if text is None:
            problems.add_text((f"file:{name}",), f"{name}: {real.stat().st_size:,} bytes is more "
                              f"than the {MAX_FILE_BYTES:,} a template file may have")
            continue
        texts[name] = text.decode("utf-8", errors="replace")
    problems.check()
    return loads(texts, environ, directory, target=target, supported=supported,
                 lenient=lenient, problems=problems)


def loads(texts: Mapping[str, str], environ: Mapping[str, str], directory: Path | str = ".",
          *, target: str | None = None, supported: Sequence[str] | None = None,
          lenient: bool = False, problems: Problems | None = None) -> Template:
    """Like `load`, from files already read ({name: text}, base first)."""
    problems = problems or Problems()
    secret_names = SecretNames.from_environ(environ)
    merged: Any = LocDict()
    secret_paths: set[KeyPath] = set()
    unresolved: set[KeyPath] = set()
    warnings: list[str] = []
    unreadable = False
    for name, text in texts.items():
        reader = _Reader(name, environ, problems, secret_names, lenient)
        document = reader.read(text)
        secret_paths |= reader.secret_paths
        unresolved |= reader.unresolved
        warnings += reader.warnings
        if document is None:
            unreadable = True
            continue
        problems.ignored = unresolved
        for path, message in schema_problems(document, reader.secret_paths):
            problems.add(document, path, message)
        merged = merge(merged, document)
    if unreadable:  # nothing sensible can be merged from what was read
        problems.check()
    overlay = list(texts)[1] if len(texts) > 1 else None
    return build(merged, Path(directory), tuple(texts), environ, problems,
                 frozenset(secret_paths), tuple(warnings), secret_names,
                 target=target, supported=supported, overlay=overlay)


def build(raw: LocDict, directory: Path, files: tuple[str, ...], environ: Mapping[str, str],
          problems: Problems, secret_paths: frozenset[KeyPath] = frozenset(),
          warnings: tuple[str, ...] = (), secret_names: SecretNames | None = None, *,
          target: str | None = None, supported: Sequence[str] | None = None,
          overlay: str | None = None) -> Template:
    """Normalise a merged model to long syntax, read its configs, secrets and checks, and
    check it: every problem found so far and here is raised at once."""
    secret_names = secret_names or SecretNames.from_environ(environ)
    norm = Normaliser(raw, directory, environ, problems, secret_names)
    model = norm.model()
    checks = norm.checks()
    contents = {kind: norm.contents(kind) for kind in ("configs", "secrets")}
    if model is not None:
        check_host_access(raw, model, directory, problems)
    if target is not None and supported is not None:
        for path in unsupported(raw, supported):
            problems.add(raw, path, f"the {target} target does not support this key; remove it "
                         "from the template (or choose another --target)")
    problems.check()
    assert model is not None  # a model that could not be built left a problem
    return Template(raw=raw, model=model, directory=directory, files=files,
                    configs=contents["configs"], secrets=contents["secrets"], checks=checks,
                    secret_paths=secret_paths | norm.secret_paths, warnings=warnings,
                    secret_values=secret_names.values(environ), overlay=overlay,
                    secret_names=secret_names)


