"""Who a person is: one canonical name across service tokens, GitLab users and CI pipelines.

A person's name is their GitLab username, case-folded: the token `Alice`, the GitLab user
`alice` who approved in GitLab's UI, and the pipeline run by `ALICE` are one person. Names
that could pass for the service's own actors (`cli:root`, `gitlab:bob`, `system:...`) or that
differ only by surrounding spaces are refused, so no token can stand in for someone else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RESERVED_PREFIXES = ("cli:", "gitlab:", "system:", "token:", "oidc:")
# GitLab usernames: letters, digits, '_', '-', '.'; they start with a letter, digit or '_'
_NAME = re.compile(r"[a-z0-9_][a-z0-9_.-]{0,254}")
_EMAIL = re.compile(r"<([^<>@\s]+)@([^<>\s]+)>\s*$|^([^<>@\s]+)@(\S+)$")


class IdentityError(ValueError):
    """A name that cannot be a person's: which field, why, and what would do."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def person(name: str, field: str = "person") -> str:
    """The canonical person for a name, or IdentityError naming the field and the fix."""
    if not isinstance(name, str) or not name:
        raise IdentityError(field, "a person's name is required (their GitLab username)")
    if name != name.strip():
        raise IdentityError(field, f"{name!r} has spaces around it; give the name alone")
    folded = name.casefold()
    for prefix in RESERVED_PREFIXES:
        if folded.startswith(prefix):
            raise IdentityError(field, f"the prefix {prefix!r} is reserved for the service's "
                                       "own actors; name the person (their GitLab username)")
    if not _NAME.fullmatch(folded):
        raise IdentityError(field, f"{name!r} is not a GitLab username (letters, digits, '_', "
                                   "'-' and '.', starting with a letter, digit or '_')")
    return folded


def from_gitlab(username: str) -> str:
    """The person behind a GitLab user (an approval in GitLab's UI, a pipeline's user).

    The person is the GitLab username itself, case-folded: `gitlab:Alice` in GitLab is the
    person `alice`, whose service tokens are created with `--person alice`.
    """
    return person(username.removeprefix("gitlab:"), "GitLab username")


def commit_author(author: str | None) -> str | None:
    """The person a commit's author names, from `Name <e-mail>` (GitLab's CI_COMMIT_AUTHOR).

    Git lets the committer write any author, so this only ever adds someone to exclude: the
    e-mail's local part, case-folded (GitLab's no-reply addresses `123-alice@users.noreply...`
    give `alice`). None when it names no usable person.
    """
    if not author:
        return None
    match = _EMAIL.search(author.strip())
    if match is None:
        return None
    local = (match.group(1) or match.group(3) or "").casefold()
    if "noreply" in (match.group(2) or match.group(4) or "").casefold():
        local = local.split("-", 1)[-1] if local.split("-", 1)[0].isdigit() else local
    try:
        return person(local.split("+", 1)[0], "commit author")
    except IdentityError:
        return None


def authors(registered_by: str | None, triggered_by: str | None,
            author: str | None) -> frozenset[str]:
    """Who four-eyes keeps from approving an image: who registered it, who ran its pipeline
    and who wrote its commit (persons, case-folded)."""
    found = {name.casefold() for name in (registered_by, triggered_by) if name}
    written = commit_author(author)
    return frozenset(found | ({written} if written else set()))


def member_authors(built: bool, registered_by: str | None, triggered_by: str | None,
                   author: str | None) -> frozenset[str]:
    """Who four-eyes keeps from approving a release because of one member's image.

    Whoever ran or wrote the pipeline that built the image, whatever the release says of it:
    a release that lists a built image as third-party (`built: false`) does not hide its
    author. An image first registered as third-party has no pipeline facts, so it keeps nobody
    out; nor does its registrant (another project's pipeline may have pinned it first).
    """
    return authors(registered_by if built else None, triggered_by, author)


@dataclass(frozen=True)
class PipelineIdentity:
    """What a GitLab ID token says about the job that presents it (signed by GitLab).

    Claim names are GitLab's (lib/gitlab/ci/jwt.rb): project_path, ref, sha, pipeline_id,
    job_id, user_login, environment.
    """

    project_path: str
    pipeline_id: int
    job_id: int | None
    ref: str | None
    sha: str | None
    user: str  # the person who ran the pipeline (user_login, case-folded)
    environment: str | None = None
    pipeline_source: str | None = None
