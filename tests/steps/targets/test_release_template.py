"""A release runs with its own template, never the branch head's (docker target, real engine,
real git, the real promotion service).

Release 4 is registered at commit A; commit B then changes the template's config file. A deploy
of release 4 from B's checkout (what a pipeline the service triggers on `main` gets) is refused
before anything changes, and the previous release keeps serving; given the release's commit
(CD_RELEASE_COMMIT, as the service's trigger sets it) the deploy first puts A's template back,
then runs release 4 with A's config. A release whose template is the checkout's deploys.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess

import pytest

from steps import cli
from steps.template import deploy_files_hash
from tests.steps.deploy_sample import build_sample, remove_project
from tests.steps.service.test_release_template import commit_all, git

pytestmark = pytest.mark.docker


@pytest.fixture
def checkout(docker, images, tmp_path):
    """(the sample deployed from a shallow clone at commit B, commit A, A's hash, B's hash)."""
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "main")
    sample = build_sample(images, origin / "deploy", ("test",))
    sample.set_message("max_notes=100\n")
    first = commit_all(origin, "release 4")
    first_hash = deploy_files_hash(sample.directory)
    sample.set_message("max_notes=200\n")
    commit_all(origin, "release 5: another configuration")
    second_hash = deploy_files_hash(sample.directory)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth=1", f"file://{origin}", str(clone)],
                   check=True)
    yield dataclasses.replace(sample, directory=clone / "deploy"), first, first_hash, second_hash
    remove_project(docker, sample.project)


def _deploy(capsys, env: dict[str, str]) -> tuple[int, str]:
    code = cli.run(["deploy", "--environment", "test"], env)
    captured = capsys.readouterr()
    return code, captured.err + captured.out


def _records(sample, capsys, tmp_path, field: str = "release_id") -> list:
    """A field of each of the target's records for test, newest first."""
    listing = tmp_path / "releases.json"
    code = cli.run(["releases", "--environment", "test", "--json", str(listing)],
                   sample.env("test"))
    capsys.readouterr()
    assert code == 0
    return [r[field] for r in json.loads(listing.read_text())["releases"]]


def test_a_release_deploys_only_with_its_own_template(service, checkout, capsys, tmp_path):
    sample, first, first_hash, second_hash = checkout

    # release 5 holds the checkout's template: it deploys
    code, log = _deploy(capsys, sample.env("test", CD_RELEASE_ID="5",
                                           CD_RELEASE_TEMPLATE_HASH=second_hash))
    assert code == 0, log
    assert sample.get("test", "/message.txt") == "max_notes=200\n"

    # release 4 holds commit A's: refused, nothing changed, release 5 still serving
    code, log = _deploy(capsys, sample.env("test", "v2", CD_RELEASE_ID="4",
                                           CD_RELEASE_TEMPLATE_HASH=first_hash))
    assert code == 1, log
    assert "release 4" in log and first_hash in log and second_hash in log
    assert "CD_RELEASE_COMMIT" in log
    assert (sample.get("test"), sample.get("test", "/message.txt")) == (
        "version 1\n", "max_notes=200\n")
    assert _records(sample, capsys, tmp_path) == [5]

    # with the service, its record is the source: a variable claiming the checkout's hash
    # does not make release 4 another template
    repository = "registry.example.com/team/app/web"
    release = service.api("POST", "releases", role="ci", json={
        "project": "team/app", "template_hash": first_hash, "commit_sha": first,
        "members": [{"name": "web", "repository": repository, "digest": "sha256:" + "4" * 64}]})
    served = {**sample.env("test", "v2", CD_RELEASE_ID=str(release["id"]),
                           CD_RELEASE_TEMPLATE_HASH=second_hash),
              "CD_SERVICE_URL": service.url, "CD_SERVICE_TOKEN": service.tokens["ci"]}
    code, log = _deploy(capsys, served)
    assert code == 1, log
    assert f"release {release['id']} (commit {first[:12]})" in log
    assert first_hash in log and second_hash in log
    assert sample.get("test", "/message.txt") == "max_notes=200\n"
    assert _records(sample, capsys, tmp_path) == [5]

    # given the release's commit, A's template is put back (fetched: the clone is shallow)
    code, log = _deploy(capsys, served | {"CD_RELEASE_COMMIT": first,
                                          "CI_COMMIT_SHA": git(sample.directory, "rev-parse",
                                                               "HEAD")})
    assert code == 0, log
    assert f"restored from commit {first[:12]}" in log
    assert (sample.get("test"), sample.get("test", "/message.txt")) == (
        "version 2\n", "max_notes=100\n")
    assert deploy_files_hash(sample.directory) == first_hash
    assert _records(sample, capsys, tmp_path) == [release["id"], 5]
    assert _records(sample, capsys, tmp_path, "commit")[0] == first  # not the head's
