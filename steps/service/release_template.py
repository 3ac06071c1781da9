"""The template a release holds, made sure of before a deploy of that release.

A release is its images by digest and the template they run with (`template_hash`, computed
by `docker-cd register` over the template directory). A pipeline the promotion service triggers
runs on the branch's head, whose template may have moved on since the release was registered:
deploying its images with that template would run another configuration under the release's
name. So deploy compares the checkout's template with the release's before anything changes;
given the release's commit (CD_RELEASE_COMMIT, which the service's trigger sets) it first puts
the release's template directory back from git, and it refuses when they still differ.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from steps.runtime.errors import ExternalError, Refused, UsageError
from steps.runtime.log import Log
from steps.service.client import ServiceClient
from steps.template import deploy_files_hash

TEMPLATE_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")
COMMIT = re.compile(r"^[0-9a-f]{7,64}$")


@dataclass(frozen=True)
class ReleaseTemplate:
    """What a release says of its template: its hash and the commit it was registered from."""

    release_id: int
    template_hash: str | None
    commit: str | None
    source: str  # where these came from, for messages

    @property
    def name(self) -> str:
        return f"release {self.release_id}" + (f" (commit {self.commit[:12]})"
                                               if self.commit else "")


def of_release(client: ServiceClient | None, release_id: int, template_hash: str | None,
               commit: str | None) -> ReleaseTemplate:
    """The release's template, as the service records it; without a service, as the trigger's
    variables (CD_RELEASE_TEMPLATE_HASH, CD_RELEASE_COMMIT) give it."""
    if client is not None:
        body = client.get(f"releases/{release_id}") or {}
        return ReleaseTemplate(release_id, body.get("template_hash"),
                               body.get("commit_sha") or commit, "the promotion service")
    if template_hash is None and commit is None:
        raise UsageError(
            f"which template does release {release_id} hold? Without a promotion service "
            "(CD_SERVICE_URL) to ask, set CD_RELEASE_TEMPLATE_HASH (and CD_RELEASE_COMMIT), as "
            "the service's trigger does", "release_template_hash")
    return ReleaseTemplate(release_id, template_hash, commit, "CD_RELEASE_TEMPLATE_HASH")


def ensure(directory: Path, release: ReleaseTemplate, may_restore: bool, log: Log,
           checkout_commit: str | None = None) -> None:
    """Leave `directory` holding the release's template, or refuse (exit 1) naming both
    hashes. `may_restore` (CD_RELEASE_COMMIT is set) allows putting the template back from the
    release's commit with git first; without it the checkout is never changed.
    `checkout_commit` is the pipeline's commit (CI_COMMIT_SHA), else git's HEAD is asked."""
    restore_from = release.commit if may_restore else None
    if release.template_hash is None:
        # A release registered through POST /images holds no template hash: only its commit
        # can say which template it ran with.
        if restore_from and restore_from != (checkout_commit or head(directory)):
            restore(directory, restore_from, log)
        log.warn(f"{release.name} holds no template hash (registered with one image through "
                 f"POST /images): its template is not compared; deploying {directory} as it is")
        return
    found = checkout_hash(directory)
    if found == release.template_hash:
        log.info(f"The template in {directory} is {release.name}'s ({found})")
        return
    if restore_from:
        restore(directory, restore_from, log)
        restored = checkout_hash(directory)
        if restored == release.template_hash:
            log.info(f"The template in {directory} is {release.name}'s ({restored}), "
                     f"restored from commit {restore_from[:12]}")
            return
        found = f"{restored} (after restoring it from commit {restore_from[:12]})"
    raise Refused(
        f"{release.name} holds the template {release.template_hash} (from {release.source}), "
        f"but {directory} here is {found}: deploying would run the release's images with "
        "another configuration. Deploy from the release's commit (CD_RELEASE_COMMIT, which the "
        "promotion service's trigger sets: deploy then restores the template directory from "
        "it), or register a new release from this commit and promote that one")


def checkout_hash(directory: Path) -> str:
    """The template directory's hash, as `docker-cd register` computes it."""
    if not directory.is_dir():
        raise UsageError(f"template directory {directory} does not exist", "template_dir")
    try:
        return deploy_files_hash(directory)
    except ValueError as e:
        raise UsageError(str(e), "template_dir") from e


def head(directory: Path) -> str | None:
    """The commit checked out where the template directory is (None outside a git checkout)."""
    done = _git(directory, "rev-parse", "HEAD", check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def restore(directory: Path, commit: str, log: Log) -> None:
    """Put the template directory back as `commit` holds it (files added since removed),
    fetching the commit first when the checkout lacks it (CI checkouts are shallow)."""
    if not COMMIT.match(commit):
        raise UsageError(f"{commit!r} is not a commit SHA", "release_commit")
    if head(directory) is None:
        raise UsageError(f"{directory} is not in a git checkout: the release's template cannot "
                         f"be restored from commit {commit[:12]}", "release_commit")
    if changed := _git(directory, "status", "--porcelain", "--", ".").stdout.strip():
        raise UsageError(f"{directory} has changes of its own ({changed.splitlines()[0]} ...): "
                         f"commit or remove them before restoring commit {commit[:12]}'s",
                         "release_commit")
    if _git(directory, "cat-file", "-e", f"{commit}^{{commit}}", check=False).returncode:
        shallow = _git(directory, "rev-parse", "--is-shallow-repository").stdout.strip()
        fetch = ["fetch", "--quiet", *(["--depth=1"] if shallow == "true" else []), "origin",
                 commit]
        log.info(f"+ git {' '.join(fetch)}")
        done = _git(directory, *fetch, check=False)
        if done.returncode:
            raise ExternalError(f"git fetch of the release's commit {commit} failed: "
                                f"{done.stderr.strip()[-500:]}")
    log.info(f"+ git restore --source {commit} --staged --worktree -- {directory}")
    done = _git(directory, "restore", f"--source={commit}", "--staged", "--worktree", "--", ".",
                check=False)
    if done.returncode:
        raise UsageError(f"cannot restore {directory} from commit {commit[:12]}: "
                         f"{done.stderr.strip()[-500:]}", "release_commit")


def _git(directory: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        # safe.directory: a job's container user need not own the checkout the runner made
        done = subprocess.run(["git", "-c", "safe.directory=*", "-C", str(directory), *args],
                              capture_output=True,
                              text=True, check=False, timeout=300)
    except FileNotFoundError as e:
        raise UsageError("git is not installed in the job's image: the release's template "
                         "cannot be restored from its commit", "release_commit") from e
    if check and done.returncode:
        raise UsageError(f"git {' '.join(args)} in {directory} failed: "
                         f"{done.stderr.strip()[-500:]}", "release_commit")
    return done
