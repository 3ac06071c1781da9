"""Who does something, for authorisation and the audit log."""

from __future__ import annotations

from dataclasses import dataclass

from .identity import PipelineIdentity

ROLES = ("ci", "approver", "release-manager", "admin")
# who may do what: reports come from CI, decisions from approvers, the rest from managers
REPORTERS = ("ci", "release-manager", "admin")
APPROVERS = ("approver", "release-manager", "admin")
MANAGERS = ("release-manager", "admin")
ADMINS = ("admin",)


@dataclass(frozen=True)
class Actor:
    """The authenticated caller (or a system process) behind a change.

    `name` is the person (canonical, see domain.identity) or a system name (`dispatcher`,
    `cli:root`, `gitlab:alice` for what GitLab's webhooks report). A service token carries
    its `token_id`; a CI job authenticated by its GitLab ID token carries the signed
    `pipeline` claims instead.
    """

    name: str
    role: str
    project: str | None = None
    request_id: str | None = None
    source_ip: str | None = None
    token_id: int | None = None
    pipeline: PipelineIdentity | None = None

    @classmethod
    def system(cls, name: str) -> Actor:
        """An actor for the service's own processes (worker, dispatcher, CLI)."""
        return cls(name=name, role="system")

    def may_act_on(self, project_path: str) -> bool:
        """A project-scoped token acts only on its own project."""
        return self.project is None or self.project == project_path
