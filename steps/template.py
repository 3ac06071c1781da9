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
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from steps.cli import _SECRET_NAME
from steps.errors import UsageError

REDACTED = "[REDACTED]"
BASE_NAMES = ("compose.yml", "compose.yaml")
Path_ = tuple[str | int, ...]


class TemplateError(UsageError):
    """A template the user must fix; the message names the file, line and key path."""


# ---------------------------------------------------------------- YAML with locations

class LocDict(dict):
    """A mapping that remembers where (file, line) each of its keys was written."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.locs: dict[str, tuple[str, int]] = {}


class LocList(list):
    """A sequence that remembers where each of its items was written."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.locs: list[tuple[str, int] | None] = [None] * len(self)


class _Reset:
    def __repr__(self) -> str:
        return "!reset"


RESET = _Reset()


@dataclass
class _Override:
    value: Any


def format_path(path: Path_) -> str:
    """`("services", "web", "ports", 0)` -> `services.web.ports[0]`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


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
            return _Override(self._convert(node, path))
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


# ---------------------------------------------------------------- interpolation

class InterpolationError(ValueError):
    """A ${VAR:?message} whose variable is missing, or a malformed ${...}."""


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def interpolate(text: str, environ: Mapping[str, str]) -> tuple[str, set[str]]:
    """Expand $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?m}, ${VAR?m}, ${VAR:+x}, ${VAR+x}, $$.

    Returns the text and the names of the variables it used (to redact secrets).
    """
    used: set[str] = set()
    value, _ = _expand(text, 0, environ, used, closing=False)
    return value, used


def unset_without_default(text: str, environ: Mapping[str, str]) -> list[str]:
    """Variables written as $VAR or ${VAR} (no default) that are not set: worth a warning."""
    return [m.group(1) or m.group(2) for m in _PLAIN_REF.finditer(text.replace("$$", ""))
            if (m.group(1) or m.group(2)) not in environ]


_PLAIN_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _expand(text: str, i: int, environ: Mapping[str, str], used: set[str],
            closing: bool) -> tuple[str, int]:
    out: list[str] = []
    while i < len(text):
        ch = text[i]
        if closing and ch == "}":
            return "".join(out), i
        if ch != "$":
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1:i + 2]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            value, i = _braced(text, i + 2, environ, used)
            out.append(value)
        elif (m := _NAME.match(text, i + 1)) is not None:
            used.add(m.group())
            out.append(environ.get(m.group(), ""))
            i = m.end()
        else:
            raise InterpolationError(f"invalid interpolation format in {text!r}: a lone '$' "
                                     "(write $$ for a literal dollar sign)")
    if closing:
        raise InterpolationError(f"missing '}}' in {text!r}")
    return "".join(out), i


def _braced(text: str, i: int, environ: Mapping[str, str], used: set[str]) -> tuple[str, int]:
    m = _NAME.match(text, i)
    if m is None:
        raise InterpolationError(f"invalid variable name in {text!r}")
    name = m.group()
    used.add(name)
    i = m.end()
    op = next((o for o in (":-", ":?", ":+", "-", "?", "+") if text.startswith(o, i)), None)
    if op is None:
        if text[i:i + 1] != "}":
            raise InterpolationError(f"invalid interpolation format for ${{{name}...}} in {text!r}")
        return environ.get(name, ""), i + 1
    arg, end = _expand(text, i + len(op), environ, used, closing=True)
    value = environ.get(name)
    is_set = value is not None and (value != "" or ":" not in op)
    if op.endswith("-"):
        result = value if is_set else arg
    elif op.endswith("+"):
        result = arg if is_set else ""
    else:
        if not is_set:
            why = "is not set" if value is None else "is empty"
            raise InterpolationError(f"required variable {name} {why}: "
                                     f"{arg or 'set it in the CI/CD variables'}")
        result = value
    return result or "", end + 1


# ---------------------------------------------------------------- merge (Compose merge rules)

_REPLACED = {"command", "entrypoint"}
_AS_MAPPING = {"environment", "labels", "extra_hosts", "sysctls", "depends_on", "networks",
               "annotations"}
_UNIQUE = {"ports", "volumes", "configs", "secrets", "expose"}
_TO_LIST = {"env_file", "dns", "dns_search", "tmpfs"}


def merge(base: Any, over: Any, path: Path_ = ()) -> Any:
    """Merge two Compose values the way `docker compose -f base -f over` does."""
    if isinstance(over, _Override):
        return over.value
    service_key = path[2] if len(path) == 3 and path[0] == "services" else None
    if service_key in _REPLACED or (len(path) == 4 and path[-2:] == ("healthcheck", "test")):
        return over
    if service_key in _AS_MAPPING:
        base, over = _as_mapping(base, service_key), _as_mapping(over, service_key)
    elif service_key in _TO_LIST:
        base = base if isinstance(base, list) else LocList([base])
        over = over if isinstance(over, list) else LocList([over])
    if isinstance(base, dict) and isinstance(over, dict):
        out = LocDict(base)
        out.locs = dict(getattr(base, "locs", {}))
        for key, value in over.items():
            if value is RESET:
                out.pop(key, None)
                continue
            out[key] = merge(base[key], value, (*path, key)) if key in base else _clean(value)
            loc = getattr(over, "locs", {}).get(key)
            if loc and not (key in base and isinstance(out[key], dict | list)):
                out.locs[key] = loc  # a merged mapping or list keeps where it started
        return out
    if isinstance(base, list) and isinstance(over, list):
        if service_key in _UNIQUE:
            return _merge_unique(base, over, service_key)
        return _concat(base, over)
    return _clean(over)


def _clean(value: Any) -> Any:
    """Drop merge tags from a value that has nothing to merge with."""
    if isinstance(value, _Override):
        return _clean(value.value)
    if isinstance(value, dict):
        out = LocDict({k: _clean(v) for k, v in value.items() if v is not RESET})
        out.locs = dict(getattr(value, "locs", {}))
        return out
    return value


def _concat(base: list, over: list, keep: Sequence[int] | None = None) -> LocList:
    out = LocList()
    base_locs = getattr(base, "locs", [None] * len(base))
    indexes = range(len(base)) if keep is None else keep
    for i in indexes:
        out.append(base[i])
        out.locs.append(base_locs[i])
    out.extend(over)
    out.locs.extend(getattr(over, "locs", [None] * len(over)))
    return out


def _merge_unique(base: list, over: list, key: str) -> LocList:
    unique = {"ports": _port_key, "volumes": _volume_key, "configs": _file_key,
              "secrets": _file_key, "expose": str}[key]
    over_keys = {unique(item) for item in over}
    keep = [i for i, item in enumerate(base) if unique(item) not in over_keys]
    return _concat(base, over, keep)


def _as_mapping(value: Any, key: str) -> Any:
    if not isinstance(value, list):
        return value
    out = LocDict()
    for item, loc in zip(value, getattr(value, "locs", [None] * len(value)), strict=False):
        text = str(item)
        if key in ("depends_on", "networks"):
            name, entry = text, LocDict() if key == "networks" else LocDict(
                condition="service_started")
        else:
            sep = ":" if key == "extra_hosts" and "=" not in text else "="
            name, has, rest = text.partition(sep)
            entry = rest if has else None
        out[name] = entry
        if loc:
            out.locs[name] = loc
    return out


def _port_key(item: Any) -> tuple:
    if isinstance(item, dict):
        return (str(item.get("host_ip", "")), str(item.get("published", "")),
                str(item.get("target")), item.get("protocol", "tcp"))
    try:
        port = parse_port(str(item))
    except ValueError:
        return (str(item),)
    return (port["host_ip"] or "", port["published"] or "", str(port["target"]), port["protocol"])


def _volume_key(item: Any) -> str:
    if isinstance(item, dict):
        return str(item.get("target"))
    parts = str(item).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def _file_key(item: Any) -> str:
    if isinstance(item, dict):
        return str(item.get("target") or item.get("source"))
    return str(item)


# ---------------------------------------------------------------- value parsers

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                   "h": 3600.0}


def parse_duration(value: Any) -> float:
    """A Compose duration ("1m30s", "250ms", 10) in seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 10s or 500ms, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if not text or _DURATION.sub("", text):
        raise ValueError(f"expected a duration like 10s or 500ms, got {value!r}")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION.findall(text))


_SIZE = re.compile(r"(?i)(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?")


def parse_size(value: Any) -> int:
    """A Compose byte size ("512m", "1g", 1048576) in bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = _SIZE.fullmatch(str(value).strip())
    if not m:
        raise ValueError(f"expected a size like 256m or 1g, got {value!r}")
    power = "bkmgt".index((m.group(2) or "b").lower())
    return int(float(m.group(1)) * 1024 ** power)


def parse_port(text: str) -> dict[str, Any]:
    """Short port syntax ("8080:80", "127.0.0.1:8080:80/udp", "80") in long syntax."""
    spec, _, protocol = text.partition("/")
    if protocol not in ("", "tcp", "udp", "sctp"):
        raise ValueError(f"unknown protocol {protocol!r}")
    if spec.startswith("["):  # [::1]:8080:80
        host_ip, _, spec = spec[1:].partition("]:")
        parts = [host_ip, *spec.split(":")]
    else:
        parts = spec.split(":")
    if len(parts) == 1:
        host_ip, published, target = None, None, parts[0]
    elif len(parts) == 2:
        host_ip, (published, target) = None, parts
    elif len(parts) == 3:
        host_ip, published, target = parts
    else:
        raise ValueError(f"expected [HOST_IP:][PUBLISHED:]TARGET[/PROTOCOL], got {text!r}")
    if not target.isdigit() or (published and not re.fullmatch(r"\d+(-\d+)?", published)):
        raise ValueError(f"expected [HOST_IP:][PUBLISHED:]TARGET[/PROTOCOL], got {text!r}")
    return {"target": int(target), "published": published or None, "host_ip": host_ip or None,
            "protocol": protocol or "tcp", "mode": "ingress"}


def parse_env_file(text: str) -> dict[str, str]:
    """An env file (KEY=VALUE lines, # comments, optional quotes) as a mapping."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


# ---------------------------------------------------------------- the template

@dataclass(frozen=True)
class Check:
    """One verify check from `x-docker-cd.verify`: an HTTP request and/or a command."""

    name: str
    url: str | None = None
    status: int = 200
    body: str | None = None
    command: tuple[str, ...] = ()
    service: str | None = None
    timeout: float = 5.0
    retries: int = 3
    interval: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "status": self.status, "body": self.body,
                "command": list(self.command), "service": self.service, "timeout": self.timeout,
                "retries": self.retries, "interval": self.interval}


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
        return yaml.safe_dump(self.redacted(), sort_keys=False, default_flow_style=False,
                              allow_unicode=True)

    def redacted(self) -> dict[str, Any]:
        """The normalised model with every secret value replaced by [REDACTED]."""
        return redact(self.model, self.secret_paths)

    def hash(self) -> str:
        """Identifies what this template deploys (the rendered text, secrets redacted)."""
        return "sha256:" + hashlib.sha256(self.rendered().encode()).hexdigest()

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
    return "sha256:" + hashlib.sha256(data).hexdigest()


def where(raw: Any, path: Path_) -> str:
    """Walk the merged model to the location recorded for `path` (or its nearest parent)."""
    node, loc = raw, None
    for part in path:
        locs = getattr(node, "locs", None)
        try:
            if locs is not None and locs[part] is not None:
                loc = locs[part]
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
    text = format_path(path) or "(top)"
    return f"{loc[0]}:{loc[1]}: {text}" if loc else text


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
    files = find_files(directory, environment)
    merged: Any = LocDict()
    secret_paths: set[Path_] = set()
    warnings: list[str] = []
    for path in files:
        name = _display(path)
        reader = _Reader(name, environ)
        merged = merge(merged, reader.read(path.read_text(encoding="utf-8")))
        secret_paths |= reader.secret_paths
        warnings += reader.warnings
    return build(merged, directory, tuple(_display(p) for p in files), environ,
                 frozenset(secret_paths), tuple(warnings))


def loads(texts: Mapping[str, str], environ: Mapping[str, str],
          directory: Path | str = ".") -> Template:
    """Like `load` from in-memory files ({name: text}, base first): for tests and restores."""
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


class _Normaliser:
    """Turns the merged model into the long syntax every target reads."""

    def __init__(self, raw: LocDict, directory: Path, environ: Mapping[str, str]) -> None:
        self.raw = raw
        self.directory = directory
        self.environ = environ
        self.secret_paths: set[Path_] = set()

    def fail(self, path: Path_, message: str) -> TemplateError:
        return TemplateError(f"{where(self.raw, path)}: {message}")

    def _mapping(self, value: Any, path: Path_) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {type(value).__name__}")
        return value

    def model(self) -> dict[str, Any]:
        raw = self.raw
        services = self._mapping(raw.get("services"), ("services",))
        if not services:
            raise self.fail(("services",), "the template defines no services")
        model: dict[str, Any] = {k: raw[k] for k in ("name",) if k in raw}
        model["services"] = {name: self.service(name, self._mapping(spec, ("services", name)))
                             for name, spec in services.items()}
        for kind in ("volumes", "networks", "configs", "secrets"):
            model[kind] = {name: dict(self._mapping(spec, (kind, name)))
                           for name, spec in self._mapping(raw.get(kind), (kind,)).items()}
        model.update({k: v for k, v in raw.items() if k.startswith("x-")})
        self._check_references(model)
        return _plain(model)

    def service(self, name: str, spec: dict) -> dict[str, Any]:
        base: Path_ = ("services", name)
        if not spec.get("image"):
            raise self.fail(base, "every service needs an image (use image: ${CD_IMAGE} for the "
                                  "one being released)")
        out: dict[str, Any] = dict(spec)
        for key in ("command", "entrypoint"):
            if isinstance(spec.get(key), str):
                out[key] = shlex.split(spec[key])
            elif key in spec and spec[key] is not None:
                out[key] = [str(a) for a in spec[key]]
        out["environment"] = self.environment(spec, base)
        out.pop("env_file", None)
        out["ports"] = [self.port(p, (*base, "ports", i))
                        for i, p in enumerate(spec.get("ports") or [])]
        out["volumes"] = [self.volume(v, (*base, "volumes", i))
                          for i, v in enumerate(spec.get("volumes") or [])]
        for kind, prefix in (("configs", "/"), ("secrets", "/run/secrets/")):
            out[kind] = [self.file_ref(r, prefix, (*base, kind, i))
                         for i, r in enumerate(spec.get(kind) or [])]
        out["depends_on"] = self.depends_on(spec.get("depends_on"), (*base, "depends_on"))
        out["labels"] = {str(k): "" if v is None else str(v)
                         for k, v in _as_mapping(spec.get("labels") or {}, "labels").items()}
        networks = _as_mapping(spec.get("networks") or {"default": None}, "networks")
        out["networks"] = {str(k): dict(v or {}) for k, v in networks.items()}
        if "extra_hosts" in spec:
            out["extra_hosts"] = {str(k): str(v) for k, v in
                                  _as_mapping(spec["extra_hosts"] or [], "extra_hosts").items()}
        if "healthcheck" in spec:
            out["healthcheck"] = self.healthcheck(spec["healthcheck"], (*base, "healthcheck"))
        for key in ("stop_grace_period",):
            if key in spec:
                out[key] = self.duration(spec[key], (*base, key))
        if "deploy" in spec:
            out["deploy"] = self.deploy(self._mapping(spec["deploy"], (*base, "deploy")),
                                        (*base, "deploy"))
        if "logging" in spec:
            logging = self._mapping(spec["logging"], (*base, "logging"))
            out["logging"] = {"driver": logging.get("driver", "json-file"),
                              "options": {str(k): str(v) for k, v in
                                          (logging.get("options") or {}).items()}}
        return out

    def environment(self, spec: dict, base: Path_) -> dict[str, str]:
        env: dict[str, str] = {}
        files = spec.get("env_file") or []
        for i, item in enumerate(files if isinstance(files, list) else [files]):
            path_ = (*base, "env_file", i)
            entry = item if isinstance(item, dict) else {"path": item}
            file = self.directory / str(entry.get("path"))
            if not file.is_file():
                if entry.get("required", True) is False:
                    continue
                raise self.fail(path_, f"env file {file} does not exist")
            env.update(parse_env_file(file.read_text(encoding="utf-8")))
        for key, value in _as_mapping(spec.get("environment") or {}, "environment").items():
            if value is None:
                if key in self.environ:  # `- NAME` passes the variable through
                    env[str(key)] = self.environ[key]
                    if _SECRET_NAME.search(str(key)):
                        self.secret_paths.add((*base, "environment", str(key)))
                continue
            env[str(key)] = _scalar_text(value)
        return env

    def port(self, item: Any, path: Path_) -> dict[str, Any]:
        if isinstance(item, dict):
            if "target" not in item:
                raise self.fail(path, "a port needs a target (the container's port)")
            published = item.get("published")
            return {"target": int(item["target"]),
                    "published": None if published in (None, "") else str(published),
                    "host_ip": item.get("host_ip"), "protocol": item.get("protocol", "tcp"),
                    "mode": item.get("mode", "ingress")}
        try:
            return parse_port(str(item))
        except ValueError as e:
            raise self.fail(path, str(e)) from e

    def volume(self, item: Any, path: Path_) -> dict[str, Any]:
        if isinstance(item, dict):
            if "target" not in item:
                raise self.fail(path, "a volume needs a target (the path in the container)")
            kind = item.get("type", "volume")
            return {"type": kind, "source": item.get("source"), "target": str(item["target"]),
                    "read_only": bool(item.get("read_only", False))}
        parts = str(item).split(":")
        if len(parts) == 1:
            return {"type": "volume", "source": None, "target": parts[0], "read_only": False}
        if len(parts) > 3 or (len(parts) == 3 and parts[2] not in ("ro", "rw", "z", "Z")):
            raise self.fail(path, f"expected SOURCE:TARGET[:ro], got {item!r}")
        source, target = parts[0], parts[1]
        kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
        if kind == "bind" and not source.startswith("/"):
            source = str((self.directory / source).resolve())
        return {"type": kind, "source": source, "target": target,
                "read_only": len(parts) == 3 and parts[2] == "ro"}

    def file_ref(self, item: Any, prefix: str, path: Path_) -> dict[str, Any]:
        entry = dict(item) if isinstance(item, dict) else {"source": str(item)}
        if not entry.get("source"):
            raise self.fail(path, "needs a source (the name of a top-level entry)")
        target = str(entry.get("target") or entry["source"])
        if not target.startswith("/"):
            target = prefix + target
        mode = entry.get("mode")
        if isinstance(mode, str):
            mode = int(mode, 8)
        return {"source": str(entry["source"]), "target": target,
                "uid": None if entry.get("uid") is None else str(entry["uid"]),
                "gid": None if entry.get("gid") is None else str(entry["gid"]), "mode": mode}

    def depends_on(self, value: Any, path: Path_) -> dict[str, dict[str, Any]]:
        out = {}
        for name, entry in _as_mapping(value or {}, "depends_on").items():
            entry = dict(entry or {})
            condition = entry.get("condition", "service_started")
            if condition not in ("service_started", "service_healthy"):
                raise self.fail((*path, name, "condition"),
                                f"condition {condition!r} is not supported; use service_started "
                                "or service_healthy")
            out[str(name)] = {"condition": condition,
                              "required": bool(entry.get("required", True))}
        return out

    def healthcheck(self, value: Any, path: Path_) -> dict[str, Any]:
        spec = self._mapping(value, path)
        if spec.get("disable"):
            return {"disable": True}
        out: dict[str, Any] = {}
        test = spec.get("test")
        if isinstance(test, str):
            out["test"] = ["CMD-SHELL", test]
        elif test is not None:
            out["test"] = [str(t) for t in test]
            if out["test"] and out["test"][0] not in ("CMD", "CMD-SHELL", "NONE"):
                raise self.fail((*path, "test"), "a test list starts with CMD, CMD-SHELL or NONE")
        for key in ("interval", "timeout", "start_period"):
            if key in spec:
                out[key] = self.duration(spec[key], (*path, key))
        if "retries" in spec:
            out["retries"] = int(spec["retries"])
        return out

    def deploy(self, spec: dict, path: Path_) -> dict[str, Any]:
        out = dict(spec)
        if "replicas" in spec:
            out["replicas"] = int(spec["replicas"])
        for key in ("update_config", "rollback_config"):
            if key in spec:
                conf = dict(self._mapping(spec[key], (*path, key)))
                for dkey in ("delay", "monitor"):
                    if dkey in conf:
                        conf[dkey] = self.duration(conf[dkey], (*path, key, dkey))
                if conf.get("order", "start-first") not in ("start-first", "stop-first"):
                    raise self.fail((*path, key, "order"), "order is start-first or stop-first")
                out[key] = conf
        resources = self._mapping(spec.get("resources"), (*path, "resources"))
        if resources:
            out["resources"] = {}
            for kind in ("limits", "reservations"):
                given = self._mapping(resources.get(kind), (*path, "resources", kind))
                res: dict[str, Any] = {}
                try:
                    if "cpus" in given:
                        res["cpus"] = float(given["cpus"])
                    if "memory" in given:
                        res["memory"] = parse_size(given["memory"])
                    if "pids" in given:
                        res["pids"] = int(given["pids"])
                except ValueError as e:
                    raise self.fail((*path, "resources", kind), str(e)) from e
                if res or kind in resources:
                    out["resources"][kind] = {**given, **res}
        return out

    def duration(self, value: Any, path: Path_) -> float:
        try:
            return parse_duration(value)
        except ValueError as e:
            raise self.fail(path, str(e)) from e

    def _check_references(self, model: dict[str, Any]) -> None:
        services = model["services"]
        for name, spec in services.items():
            base = ("services", name)
            for dep in spec["depends_on"]:
                if dep not in services:
                    raise self.fail((*base, "depends_on", dep),
                                    f"depends on {dep!r}, which is not a service here")
            for i, vol in enumerate(spec["volumes"]):
                source = vol["source"]
                if vol["type"] == "volume" and source and source not in model["volumes"]:
                    raise self.fail((*base, "volumes", i),
                                    f"volume {vol['source']!r} is not declared under the top-level "
                                    "volumes:")
            for kind in ("configs", "secrets"):
                for i, ref in enumerate(spec[kind]):
                    if ref["source"] not in model[kind]:
                        raise self.fail((*base, kind, i), f"{kind[:-1]} {ref['source']!r} is not "
                                        f"declared under the top-level {kind}:")
            for net in spec["networks"]:
                if net != "default" and net not in model["networks"]:
                    raise self.fail((*base, "networks", net),
                                    f"network {net!r} is not declared under the top-level "
                                    "networks:")
        _dependency_order(services, self.fail)

    def contents(self, kind: str) -> dict[str, bytes]:
        """The content of each top-level config or secret (file:, content:, environment:)."""
        out = {}
        for name, spec in self._mapping(self.raw.get(kind), (kind,)).items():
            path = (kind, name)
            spec = self._mapping(spec, path)
            if "file" in spec:
                file = self.directory / str(spec["file"])
                if not file.is_file():
                    raise self.fail((*path, "file"), f"file {file} does not exist")
                out[name] = file.read_bytes()
            elif "content" in spec:
                out[name] = str(spec["content"]).encode()
            elif "environment" in spec:
                var = str(spec["environment"])
                if var not in self.environ:
                    raise self.fail((*path, "environment"),
                                    f"variable {var} is not set; define it in the CI/CD variables")
                out[name] = self.environ[var].encode()
            elif not spec.get("external"):
                raise self.fail(path, "needs file:, content: or environment:")
        return out

    def checks(self) -> tuple[Check, ...]:
        ext = self._mapping(self.raw.get("x-docker-cd"), ("x-docker-cd",))
        items = ext.get("verify") or []
        if not isinstance(items, list):
            raise self.fail(("x-docker-cd", "verify"), "expected a list of checks")
        checks = []
        for i, item in enumerate(items):
            path = ("x-docker-cd", "verify", i)
            spec = self._mapping(item, path)
            unknown = set(spec) - {"name", "url", "status", "body", "command", "service",
                                   "timeout", "retries", "interval"}
            if unknown:
                raise self.fail((*path, sorted(unknown)[0]), "unknown check key; a check has "
                                "name, url, status, body, command, service, timeout, retries, "
                                "interval")
            if not spec.get("url") and not spec.get("command"):
                raise self.fail(path, "a check needs a url or a command")
            command = spec.get("command") or ()
            command = tuple(shlex.split(command) if isinstance(command, str) else map(str, command))
            try:
                checks.append(Check(
                    name=str(spec.get("name") or spec.get("url") or " ".join(command)),
                    url=spec.get("url"), status=int(spec.get("status", 200)),
                    body=None if spec.get("body") is None else str(spec["body"]),
                    command=command, service=spec.get("service"),
                    timeout=parse_duration(spec.get("timeout", 5)),
                    retries=int(spec.get("retries", 3)),
                    interval=parse_duration(spec.get("interval", 1))))
            except ValueError as e:
                raise self.fail(path, str(e)) from e
        return tuple(checks)


def checks_from_rendered(text: str) -> tuple[Check, ...]:
    """The verify checks of a recorded (rendered) template: what is deployed is what is checked."""
    data = yaml.safe_load(text) or {}
    return _Normaliser(LocDict(data), Path("."), {}).checks()


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _plain(value: Any) -> Any:
    """Plain dicts and lists (no locations), safe to dump and to compare."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _dependency_order(services: Mapping[str, Mapping[str, Any]],
                      fail: Callable[[Path_, str], Exception]) -> list[str]:
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, chain: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = " -> ".join([*chain[chain.index(name):], name])
            raise fail(("services", name, "depends_on"), f"dependency cycle: {cycle}")
        state[name] = "visiting"
        for dep in services[name].get("depends_on", {}):
            visit(dep, [*chain, name])
        state[name] = "done"
        order.append(name)

    for name in services:
        visit(name, [])
    return order


def dependency_order(services: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Service names so that each comes after everything it depends on."""
    return _dependency_order(services, lambda path, message: TemplateError(message))
