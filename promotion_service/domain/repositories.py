"""Which image repositories a project owns, so no project registers another's images.

By default a project owns what GitLab's container registry gives it: `<registry>/<project
path>` and the repositories below it (GitLab's CI_REGISTRY_IMAGE). A project whose images live
elsewhere (Docker Hub, Harbor, a Jenkins-built image) lists its repository prefixes in the
policy file (`projects.<path>.repositories`), which then replace the default.
"""

from __future__ import annotations

from collections.abc import Sequence


def registry_path(repository: str) -> str:
    """The repository without its registry host (`registry.example.com/group/app` ->
    `group/app`), the way Docker tells a host from a path: a dot, a colon, or localhost."""
    first, sep, rest = repository.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return rest
    return repository


def owns(project_path: str, repository: str, prefixes: Sequence[str] = ()) -> bool:
    """Does the project own this repository (case-insensitively, as registries compare)?"""
    repo = repository.casefold()
    if prefixes:
        return any(_under(repo, prefix.casefold().rstrip("/")) for prefix in prefixes)
    return _under(registry_path(repo), project_path.casefold())


def ownership_rule(project_path: str, prefixes: Sequence[str] = ()) -> str:
    """The rule in words, for the error that refuses a foreign repository."""
    if prefixes:
        return f"project {project_path} registers repositories under {', '.join(prefixes)}"
    return (f"project {project_path} registers <registry>/{project_path} and the repositories "
            f"below it (list other prefixes under projects.{project_path}.repositories in the "
            "policy file)")


def _under(repository: str, prefix: str) -> bool:
    return repository == prefix or repository.startswith(prefix + "/")
