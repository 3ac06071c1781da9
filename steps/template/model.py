"""The template as every target reads it: the merged model in long syntax, its files, its
verify checks, and what a review may see (secrets redacted). Pure."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from steps.runtime.errors import UsageError
from steps.runtime.masking import is_secret_name
from steps.template.merge import KeyPath, LocDict, where

REDACTED = "[REDACTED]"


class TemplateError(UsageError):
    """A template the user must fix; the message names the file, line and key path."""


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

    def where(self, path: KeyPath) -> str:
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


def redact(model: Any, secret_paths: frozenset[KeyPath], path: KeyPath = ()) -> Any:
    """Replace secret values: those built from *PASSWORD/*TOKEN/*SECRET... variables, and
    environment entries whose names say they are secrets."""
    if path in secret_paths:
        return REDACTED
    if isinstance(model, dict):
        is_env = len(path) == 3 and path[0] == "services" and path[2] == "environment"
        return {k: (REDACTED if is_env and v and is_secret_name(k) else
                    redact(v, secret_paths, (*path, k))) for k, v in model.items()}
    if isinstance(model, list):
        return [redact(v, secret_paths, (*path, i)) for i, v in enumerate(model)]
    return model


def first_unsupported(raw: Any, patterns: Sequence[str], path: KeyPath = ()) -> KeyPath | None:
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
