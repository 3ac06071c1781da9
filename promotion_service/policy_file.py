"""The environment policy file (PROMOTION_POLICY_FILE): defaults and per-project overrides."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from .domain.policy import EnvironmentPolicy, PolicyError

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
BUILT_IN: list[dict[str, Any]] = [
    {"name": "test"},
    {"name": "staging", "auto_promote": True},
    {"name": "production", "required_approvals": 1, "four_eyes": True},
]


@dataclass(frozen=True)
class ProjectPolicy:
    """A project's environments in order, each with its policy."""

    environments: tuple[tuple[str, EnvironmentPolicy], ...]
    gitlab_id: int | None = None
    repositories: tuple[str, ...] = ()  # repository prefixes it owns (default: GitLab's)
    listed: bool = False  # named in the file (CI jobs with ID tokens may then create it)


@dataclass(frozen=True)
class PolicySet:
    """Default environments plus per-project overrides, as read from the file."""

    default: ProjectPolicy
    projects: dict[str, ProjectPolicy] = field(default_factory=dict)

    def for_project(self, path: str) -> ProjectPolicy:
        """The project's own entry, else the defaults."""
        return self.projects.get(path, self.default)


def parse_environments(items: Any, where: str) -> tuple[tuple[str, EnvironmentPolicy], ...]:
    """A list of {name, ...policy} mappings, validated."""
    if not isinstance(items, list) or not items:
        raise PolicyError(f"{where}: expected a non-empty list of environments")
    seen: list[str] = []
    result = []
    for i, item in enumerate(items):
        here = f"{where}[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise PolicyError(f"{here}: expected a mapping with a 'name'")
        body = dict(item)
        name = body.pop("name")
        if not NAME.match(name) or name in seen:
            raise PolicyError(f"{here}.name: {name!r} must be unique, lower-case letters, "
                              "digits, '-', '_' or '.'")
        seen.append(name)
        result.append((name, EnvironmentPolicy.from_dict(body, f"{here} ({name})")))
    return tuple(result)


def _prefixes(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise PolicyError(f"{where}: expected a list of repository prefixes like "
                          "registry.example.com/group/app")
    return tuple(v.strip().rstrip("/") for v in value)


def load_policies(path: str | None) -> PolicySet:
    """Read the policy file, or the built-in test -> staging -> production defaults."""
    default = ProjectPolicy(parse_environments(BUILT_IN, "built-in"))
    if not path:
        return PolicySet(default)
    try:
        with open(path, encoding="utf-8") as handle:
            doc = yaml.safe_load(handle) or {}
    except OSError as exc:
        raise PolicyError(f"PROMOTION_POLICY_FILE: cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise PolicyError(f"PROMOTION_POLICY_FILE: {path} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or set(doc) - {"defaults", "projects"}:
        raise PolicyError(f"{path}: expected top-level keys 'defaults' and/or 'projects'")
    if "defaults" in doc:
        default = ProjectPolicy(parse_environments(
            (doc["defaults"] or {}).get("environments"), f"{path}: defaults.environments"))
    projects = {}
    for name, entry in (doc.get("projects") or {}).items():
        entry = entry or {}
        envs = entry.get("environments")
        projects[str(name)] = ProjectPolicy(
            parse_environments(envs, f"{path}: projects.{name}.environments")
            if envs is not None else default.environments,
            entry.get("gitlab_id"),
            _prefixes(entry.get("repositories"), f"{path}: projects.{name}.repositories"),
            listed=True,
        )
    return PolicySet(default, projects)
