"""Secret environment values and the swarm's release records. Pure.

A record (a swarm config anyone with the API reads) keeps the service specs to restore, but
each secret environment entry only as `NAME=[REDACTED]` and the hash of its value. A rollback
takes the value back from the live service spec or the one before it (swarm keeps both) when
its hash matches; a value that is in neither is gone, and the rollback says so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from steps.runtime.errors import Refused
from steps.runtime.masking import REDACTED


def value_hash(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def hashes(secret_env: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """service -> NAME -> hash of its value: what the record keeps."""
    return {s: {k: value_hash(v) for k, v in env.items()} for s, env in secret_env.items()}


def redacted(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The rollout spec as recorded: the secret entries (`secret_env`) of each service's Env
    redacted."""
    secret_hashes: Mapping[str, Mapping[str, str]] = spec.get("secret_env") or {}
    services = {name: _with_env(service, dict.fromkeys(secret_hashes.get(name, {}), REDACTED))
                for name, service in spec["services"].items()}
    return {**spec, "services": services}


def restored(spec: Mapping[str, Any], live: Mapping[str, Iterable[list[str]]]) -> dict[str, Any]:
    """The recorded spec with its secret values found again in `live` (service -> the Env
    lists of its current and previous spec); Refused naming what is gone."""
    wanted: Mapping[str, Mapping[str, str]] = spec.get("secret_env") or {}
    services = dict(spec["services"])
    for name, entries in wanted.items():
        known = {value_hash(v): v for env in live.get(name, []) for k, _, v in
                 (e.partition("=") for e in env or []) if k in entries}
        missing = sorted(k for k, h in entries.items() if h not in known)
        if missing:
            raise Refused(f"the secret value of {', '.join(missing)} for service {name} in this "
                          "release is no longer on the swarm; deploy from the repository instead")
        services[name] = _with_env(services[name], {k: known[h] for k, h in entries.items()})
    return {**spec, "services": services}


def _with_env(service: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    if not values:
        return dict(service)
    container = dict(service["TaskTemplate"]["ContainerSpec"])
    env = [e for e in container.get("Env") or [] if e.partition("=")[0] not in values]
    container["Env"] = sorted([*env, *(f"{k}={v}" for k, v in values.items())])
    return {**service, "TaskTemplate": {**service["TaskTemplate"], "ContainerSpec": container}}
