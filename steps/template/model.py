"""The template as every target reads it: the merged model in long syntax, its files, its
verify checks, and what a review may see (secrets redacted). Pure."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from steps.runtime.errors import UsageError
from steps.runtime.masking import REDACTED, SecretNames, redact_value
from steps.template.merge import KeyPath, LocDict, where


class TemplateError(UsageError):
    """A template the user must fix; each problem names the file, line and key path."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems) or (message,)

    @classmethod
    def of(cls, problems: Sequence[str]) -> TemplateError:
        """One error for all the problems found (a single one reads as itself)."""
        if len(problems) == 1:
            return cls(problems[0])
        lines = "\n".join(f"  {p}" for p in problems)
        return cls(f"{len(problems)} problems in the template:\n{lines}", problems)


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
    secret_paths: frozenset[KeyPath] = frozenset()
    warnings: tuple[str, ...] = ()
    secret_values: frozenset[str] = frozenset()  # of the variables holding secrets
    overlay: str | None = None  # the environment's compose.<environment>.yml, if it has one
    secret_names: SecretNames = field(default_factory=SecretNames)

    def where(self, path: KeyPath) -> str:
        """`file:line: key.path` for an error about the value at `path` (of the merged model)."""
        return where(self.raw, path)

    def with_images(self, images: Mapping[str, str]) -> Template:
        """This template with each service in `images` running the image given for it (a
        release's member, repository@digest, in place of the tag or variable the files name):
        the rendered template, its hash and every target then hold what is deployed."""
        services = self.model["services"]
        if missing := sorted(set(images) - set(services)):
            raise TemplateError(f"the template has no service {', '.join(missing)} (services: "
                                f"{', '.join(sorted(services))})")
        model = dict(self.model)
        model["services"] = {name: spec | {"image": images[name]} if name in images else spec
                             for name, spec in services.items()}
        return replace(self, model=model)

    def rendered(self) -> str:
        """The merged model as YAML with secrets redacted, for review and the release record."""
        return yaml.safe_dump(_concise(self.redacted()), sort_keys=False,
                              default_flow_style=False, allow_unicode=True)

    def redacted(self) -> dict[str, Any]:
        """The normalised model with every secret value replaced by [REDACTED]."""
        return redact(self.model, self.secret_paths, self.secret_names, self.secret_values)

    def secret_environment(self) -> dict[str, dict[str, str]]:
        """service -> the environment entries that are secrets (those `rendered` redacts):
        kept out of release records, the target stores them apart."""
        shown = self.redacted()["services"]
        return {name: found for name, spec in self.model["services"].items()
                if (found := {k: v for k, v in spec.get("environment", {}).items()
                              if shown[name]["environment"].get(k) != v})}

    def hash(self) -> str:
        """Identifies what this template deploys (the rendered text, secrets redacted)."""
        return sha256(self.rendered().encode())

    def config_hashes(self) -> dict[str, str]:
        """Content hash of each config and secret: a changed file shows as a changed hash."""
        hashes = {f"config:{n}": sha256(c) for n, c in sorted(self.configs.items())}
        hashes.update({f"secret:{n}": sha256(c) for n, c in sorted(self.secrets.items())})
        return hashes

    def check_supported(self, target: str, supported: Sequence[str]) -> None:
        """Raise naming every key the target cannot honour (never drop one silently)."""
        keys = unsupported(self.raw, supported)
        if keys:
            raise TemplateError.of([
                f"{self.where(key)}: the {target} target does not support this key; remove it "
                "from the template (or choose another --target)" for key in keys])


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


def redact(model: Any, secret_paths: frozenset[KeyPath],
           secret_names: SecretNames | None = None, secret_values: frozenset[str] = frozenset(),
           path: KeyPath = ()) -> Any:
    """Replace secret values: those built from secret variables (`*_PASSWORD`, `*_TOKEN`,
    CD_SECRET_VARIABLES...), environment entries whose names say they are secrets, any text
    holding a secret variable's value, a URL's password, JSON credentials, private keys."""
    names = secret_names or SecretNames()
    if path in secret_paths:
        return REDACTED
    if isinstance(model, dict):
        is_env = len(path) == 3 and path[0] == "services" and path[2] == "environment"
        return {k: (REDACTED if is_env and v and names(str(k)) else
                    redact(v, secret_paths, names, secret_values, (*path, k)))
                for k, v in model.items()}
    if isinstance(model, list):
        return [redact(v, secret_paths, names, secret_values, (*path, i))
                for i, v in enumerate(model)]
    if isinstance(model, str):
        for value in sorted(secret_values, key=len, reverse=True):
            model = model.replace(value, REDACTED)
        return redact_value(model)
    return model


def unsupported(raw: Any, patterns: Sequence[str], path: KeyPath = ()) -> list[KeyPath]:
    """Every mapping key no pattern allows (not what is below it); x-* keys are allowed."""
    if isinstance(raw, dict):
        children = [(k, v, True) for k, v in raw.items()]
    elif isinstance(raw, list):
        children = [(i, v, False) for i, v in enumerate(raw)]
    else:
        return []
    found = []
    for key, value, is_key in children:
        sub = (*path, key)
        if is_key and str(key).startswith("x-"):
            continue
        if is_key and not _allowed(".".join(str(p) for p in sub), patterns):
            found.append(sub)
            continue
        found += unsupported(value, patterns, sub)
    return found


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
