"""Releases: the ledger's unit, a set of images by digest (its members) plus the template they
run with. Plain Python: the identity, the member-name rules, how a gate reason names a member,
and the trigger variables a downstream pipeline gets."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

MEMBER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
DEFAULT_MEMBER = "app"  # the one member of a release registered through POST /images
MAX_MEMBERS = 50
RELEASE_VARIABLE = "CD_RELEASE_ID"
COMMIT_VARIABLE = "CD_RELEASE_COMMIT"
TEMPLATE_HASH_VARIABLE = "CD_RELEASE_TEMPLATE_HASH"
MEMBER_VARIABLE_PREFIX = "CD_IMAGE_"


@dataclass(frozen=True)
class Member:
    """One image of a release: the Compose service's name and the image by digest."""

    name: str
    repository: str
    digest: str
    built: bool = True  # False: a third-party image pinned at release time

    @property
    def ref(self) -> str:
        """repository@digest, what a deploy pins."""
        return f"{self.repository}@{self.digest}"


def identity(members: Iterable[Member], template_hash: str | None) -> str:
    """The release's digest: sha256 over canonical JSON of its members (sorted by name) and its
    template hash. Same members and template: the same release, whoever registers it."""
    body = {"members": [[m.name, m.repository, m.digest, m.built]
                        for m in sorted(members, key=lambda m: m.name)],
            "template_hash": template_hash}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def member_problem(members: Iterable[Member]) -> str | None:
    """What is wrong with a member list (names, duplicates, count), or None."""
    members = list(members)
    if not members:
        return "a release has at least one member"
    if len(members) > MAX_MEMBERS:
        return f"a release has at most {MAX_MEMBERS} members, not {len(members)}"
    seen: set[str] = set()
    for member in members:
        if not MEMBER_NAME.match(member.name):
            return (f"member name {member.name!r} must be a Compose service name: lower-case "
                    "letters, digits, '_' and '-', starting with a letter or digit (<= 63)")
        if member.name in seen:
            return f"member name {member.name!r} is given twice; each service once"
        seen.add(member.name)
    variables = [variable_name(m.name) for m in members]
    clash = sorted({v for v in variables if variables.count(v) > 1})
    if clash:
        return f"members map to the same variable {clash[0]} ('-' and '_' both become '_')"
    return None


def label(name: str, digest: str) -> str:
    """How a gate reason names a member: worker@sha256:<first 12 hex digits>."""
    return f"{name}@{digest[:19]}"


def variable_name(name: str) -> str:
    """The downstream pipeline's variable for a member: CD_IMAGE_<NAME>."""
    return MEMBER_VARIABLE_PREFIX + re.sub(r"[^A-Z0-9]", "_", name.upper())


def trigger_variables(release_id: int, members: Iterable[Member], commit: str | None = None,
                      template_hash: str | None = None) -> dict[str, str]:
    """CD_RELEASE_ID, one CD_IMAGE_<NAME> per member, CD_IMAGE for a one-member release, and
    the release's commit and template hash when it has them: the deploy restores the release's
    template from that commit and refuses a template that is not the release's."""
    members = list(members)
    variables = {RELEASE_VARIABLE: str(release_id)}
    if commit:
        variables[COMMIT_VARIABLE] = commit
    if template_hash:
        variables[TEMPLATE_HASH_VARIABLE] = template_hash
    variables.update({variable_name(m.name): m.ref for m in members})
    if len(members) == 1:
        variables["CD_IMAGE"] = members[0].ref
    return variables


def members_from(rows: Iterable[Mapping[str, object]]) -> list[Member]:
    """Members from API bodies or rows ({name, repository, digest, built})."""
    return [Member(str(r["name"]), str(r["repository"]), str(r["digest"]),
                   bool(r.get("built", True))) for r in rows]
