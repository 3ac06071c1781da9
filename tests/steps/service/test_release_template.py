"""The release's template put back from its commit with real git, in a shallow clone as GitLab's
runners make (GIT_DEPTH): two commits, the template changed (a file edited, one added) in the
second; restoring the first leaves exactly the first's template."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

from steps.runtime.errors import Refused, UsageError
from steps.runtime.log import Log
from steps.service.release_template import ReleaseTemplate, ensure, of_release, restore
from steps.template import deploy_files_hash


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def history(tmp_path):
    """(shallow clone at the second commit, first sha, first hash, second hash)."""
    origin = tmp_path / "origin"
    (origin / "deploy").mkdir(parents=True)
    git(origin, "init", "-q", "-b", "main")
    (origin / "deploy" / "compose.yml").write_text("services: {}\n")
    (origin / "deploy" / "settings.txt").write_text("max_notes=100\n")
    (origin / "README").write_text("app\n")
    first = commit_all(origin, "release 4")
    first_hash = deploy_files_hash(origin / "deploy")
    (origin / "deploy" / "settings.txt").write_text("max_notes=200\n")
    (origin / "deploy" / "compose.staging.yml").write_text("services: {}\n")
    commit_all(origin, "release 5")
    second_hash = deploy_files_hash(origin / "deploy")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth=1", f"file://{origin}", str(clone)],
                   check=True)
    return clone, first, first_hash, second_hash


def log() -> tuple[Log, io.StringIO]:
    out = io.StringIO()
    return Log(out), out


def test_restoring_the_release_commit_in_a_shallow_clone_leaves_its_template(history):
    clone, first, first_hash, second_hash = history
    assert git(clone, "rev-parse", "--is-shallow-repository") == "true"
    assert deploy_files_hash(clone / "deploy") == second_hash
    restore(clone / "deploy", first, log()[0])
    assert (clone / "deploy" / "settings.txt").read_text() == "max_notes=100\n"
    assert not (clone / "deploy" / "compose.staging.yml").exists()  # added after: gone
    assert deploy_files_hash(clone / "deploy") == first_hash
    assert (clone / "README").read_text() == "app\n"  # only the template directory moves


def test_ensure_refuses_a_template_that_is_not_the_releases_and_changes_nothing(history):
    clone, first, first_hash, second_hash = history
    release = ReleaseTemplate(4, first_hash, first, "the promotion service")
    with pytest.raises(Refused) as refused:
        ensure(clone / "deploy", release, False, log()[0])
    message = refused.value.message
    assert "release 4" in message and first[:12] in message
    assert first_hash in message and second_hash in message
    assert "CD_RELEASE_COMMIT" in message  # the fix
    assert deploy_files_hash(clone / "deploy") == second_hash  # nothing restored unasked


def test_ensure_with_the_release_commit_restores_then_passes(history):
    clone, first, first_hash, _ = history
    out_log, out = log()
    ensure(clone / "deploy", ReleaseTemplate(4, first_hash, first, "x"), True, out_log)
    assert deploy_files_hash(clone / "deploy") == first_hash
    assert f"restored from commit {first[:12]}" in out.getvalue()


def test_a_commit_whose_template_is_still_not_the_releases_is_refused(history):
    clone, first, _, _ = history
    other = "sha256:" + "0" * 64
    with pytest.raises(Refused) as refused:
        ensure(clone / "deploy", ReleaseTemplate(4, other, first, "x"), True, log()[0])
    assert other in refused.value.message and "after restoring" in refused.value.message


def test_local_changes_are_never_overwritten(history):
    clone, first, first_hash, _ = history
    (clone / "deploy" / "settings.txt").write_text("mine\n")
    with pytest.raises(UsageError) as error:
        ensure(clone / "deploy", ReleaseTemplate(4, first_hash, first, "x"), True, log()[0])
    assert "changes of its own" in error.value.message
    assert (clone / "deploy" / "settings.txt").read_text() == "mine\n"


def test_a_release_without_a_template_hash_is_restored_from_its_commit(history):
    clone, first, first_hash, _ = history
    out_log, out = log()
    ensure(clone / "deploy", ReleaseTemplate(4, None, first, "x"), True, out_log)
    assert deploy_files_hash(clone / "deploy") == first_hash
    assert "holds no template hash" in out.getvalue()


def test_a_release_without_a_template_hash_from_the_pipelines_commit_needs_no_git(tmp_path):
    directory = tmp_path / "deploy"  # not a git checkout: git is never asked
    directory.mkdir()
    (directory / "compose.yml").write_text("services: {}\n")
    out_log, out = log()
    ensure(directory, ReleaseTemplate(4, None, "ab" * 20, "x"), True, out_log, "ab" * 20)
    assert "holds no template hash" in out.getvalue()


def test_without_a_service_the_trigger_variables_are_the_source():
    found = of_release(None, 4, "sha256:" + "1" * 64, "ab" * 20)
    assert (found.template_hash, found.commit) == ("sha256:" + "1" * 64, "ab" * 20)
    with pytest.raises(UsageError) as error:
        of_release(None, 4, None, None)
    assert error.value.option == "release_template_hash"
    assert "CD_RELEASE_TEMPLATE_HASH" in error.value.message
