"""`docker-cd tag`: registry-side tagging against real registries (no pull, digest unchanged)."""

import base64
import json
import subprocess
import sys
import threading
import uuid

import pytest

from steps.cli import run
from steps.images.credentials import Credentials
from steps.images.reference import parse_reference
from steps.registry import RegistryClient, Repo, Transport
from steps.registry.tagging import tag_image
from tests.conftest import REGISTRY_PASSWORD, REGISTRY_USER
from tests.steps.registry_helpers import (
    manifest_digest,
    oci_index,
    push_image,
    start_token_registry,
)
from tests.support import free_port, read_dotenv, start_registry

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def image(images):
    return images.build(filler_mb={"one": 1, "two": 1})


@pytest.fixture(scope="module")
def other_image(images):
    return images.build(files={"marker": uuid.uuid4().hex}, dockerfile="COPY marker /marker")


@pytest.fixture(scope="module")
def second_registry():
    reg = start_registry()
    yield reg
    reg.stop()


def new_repo():
    return f"app/{uuid.uuid4().hex[:8]}"


def tag(argv, capsys, env=None, tmp_path=None):
    """Run the CLI; return (exit code, stderr, dotenv dict)."""
    extra = []
    if tmp_path is not None:
        extra = ["--dotenv", str(tmp_path / "out.env")]
    code = run(["tag", *argv, *extra], env or {})
    err = capsys.readouterr().err
    return code, err, read_dotenv(tmp_path / "out.env") if tmp_path is not None else {}


class CountingTransport(Transport):
    """The real transport, also recording each request's method (to prove what was written)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.methods = []

    def exchange(self, method, url, headers, body, stream=False):
        self.methods.append(method)
        return super().exchange(method, url, headers, body, stream)


def test_same_repository_retag_in_three_round_trips_then_nothing_written(docker, image,
                                                                         registry):
    name = new_repo()
    digest = push_image(docker, image, registry, name, "v1")
    transport = CountingTransport()
    client = RegistryClient(transport=transport)
    src = Repo(registry.host, name)
    manifest = client.get_manifest(src, "v1")
    ref = f"{registry.host}/{name}:prod"
    tag_image(client, manifest, src, [parse_reference(ref)])
    assert transport.methods == ["GET", "HEAD", "PUT"]
    assert manifest_digest(registry, name, "prod") == digest
    transport.methods.clear()
    results = tag_image(client, manifest, src, [parse_reference(ref)])
    assert transport.methods == ["HEAD"] and results[0]["action"] == "unchanged"


def test_cli_tags_within_a_repository(docker, image, registry, capsys, tmp_path):
    name = new_repo()
    digest = push_image(docker, image, registry, name, "build-1")
    code, err, out = tag([f"{registry.host}/{name}:build-1", "staging", "v1"], capsys,
                         tmp_path=tmp_path)
    assert code == 0, err
    assert manifest_digest(registry, name, "staging") == digest
    assert manifest_digest(registry, name, "v1") == digest
    assert out == {"CD_IMAGE": f"{registry.host}/{name}@{digest}",
                   "CD_IMAGE_REPOSITORY": f"{registry.host}/{name}",
                   "CD_IMAGE_DIGEST": digest, "CD_IMAGE_TAGS": "staging,v1"}


def test_cli_across_repositories_mounts_blobs_with_basic_auth(docker, image, auth_registry,
                                                               capsys, tmp_path):
    src, dst = new_repo(), new_repo()
    digest = push_image(docker, image, auth_registry, src, "v1")
    env = {"CI_REGISTRY": auth_registry.host, "CI_REGISTRY_USER": REGISTRY_USER,
           "CI_REGISTRY_PASSWORD": REGISTRY_PASSWORD}
    code, err, out = tag([f"{auth_registry.host}/{src}@{digest}",
                          f"{auth_registry.host}/{dst}:released"], capsys, env, tmp_path)
    assert code == 0, err
    assert "blobs 5 mounted" in err
    assert manifest_digest(auth_registry, dst, "released") == digest
    assert out["CD_IMAGE"] == f"{auth_registry.host}/{dst}@{digest}"


def test_cli_between_registries_streams_only_missing_blobs(docker, image, registry,
                                                           second_registry, capsys):
    name = new_repo()
    digest = push_image(docker, image, registry, name, "v1")
    code, err = tag([f"{registry.host}/{name}:v1", f"{second_registry.host}/{name}:v1"],
                    capsys)[:2]
    assert code == 0, err
    assert "blobs 5 copied" in err
    assert manifest_digest(second_registry, name, "v1") == digest
    code, err = tag([f"{registry.host}/{name}:v1", f"{second_registry.host}/{name}:v2"],
                    capsys)[:2]
    assert code == 0, err
    assert "blobs 5 present" in err
    assert manifest_digest(second_registry, name, "v2") == digest


@pytest.mark.parametrize("where", ["same repository", "other repository", "other registry"])
def test_oci_index_keeps_its_digest_and_children(registry, second_registry, capsys, where):
    name = new_repo()
    digest, children = oci_index(registry, name, "multi")
    target_registry = second_registry if where == "other registry" else registry
    target_name = name if where == "same repository" else new_repo()
    code, err = tag([f"{registry.host}/{name}:multi",
                     f"{target_registry.host}/{target_name}:promoted"], capsys)[:2]
    assert code == 0, err
    assert manifest_digest(target_registry, target_name, "promoted") == digest
    for child in children:
        assert manifest_digest(target_registry, target_name, child) == child


def test_semver_scheme_with_prereleases(docker, image, other_image, registry, capsys):
    name = new_repo()
    ref = f"{registry.host}/{name}"
    newer = push_image(docker, other_image, registry, name, "1.3.0")
    for moving in ("1.3", "1", "latest"):
        push_image(docker, other_image, registry, name, moving)
    digest = push_image(docker, image, registry, name, "build")
    code, err = tag([f"{ref}:build", "--scheme", "semver"], capsys,
                    {"CI_COMMIT_TAG": "v1.2.5"})[:2]
    assert code == 0, err
    assert manifest_digest(registry, name, "1.2.5") == digest
    assert manifest_digest(registry, name, "1.2") == digest
    assert manifest_digest(registry, name, "1") == newer
    assert manifest_digest(registry, name, "latest") == newer
    code, err = tag([f"{ref}:build", "--scheme", "semver"], capsys,
                    {"CI_COMMIT_TAG": "v1.4.0-rc.1"})[:2]
    assert code == 0, err
    assert manifest_digest(registry, name, "1.4.0-rc.1") == digest
    assert manifest_digest(registry, name, "latest") == newer
    code, err = tag([f"{ref}:build", "--scheme", "semver"], capsys,
                    {"CI_COMMIT_TAG": "v1.4.0"})[:2]
    assert code == 0, err
    for moved in ("1.4.0", "1.4", "1", "latest"):
        assert manifest_digest(registry, name, moved) == digest


def test_sha_and_ref_schemes_from_ci_variables(docker, image, registry, capsys, tmp_path):
    name = new_repo()
    digest = push_image(docker, image, registry, name, "x")
    sha = "89abcdef0123456789abcdef0123456789abcdef"
    code, err, out = tag([f"{registry.host}/{name}:x", "--scheme", "sha,ref"], capsys,
                         {"CI_COMMIT_SHA": sha, "CI_COMMIT_REF_SLUG": "main"}, tmp_path)
    assert code == 0, err
    assert out["CD_IMAGE_TAGS"] == f"{sha[:8]},{sha},main"
    assert all(manifest_digest(registry, name, t) == digest for t in (sha[:8], sha, "main"))


def test_immutable_refuses_to_move_a_tag_and_writes_nothing(docker, image, other_image,
                                                            registry, capsys):
    name = new_repo()
    digest = push_image(docker, image, registry, name, "v2")
    old = push_image(docker, other_image, registry, name, "v1")
    code, err = tag([f"{registry.host}/{name}:v2", "fresh", "v1", "--immutable"], capsys)[:2]
    assert code == 1
    assert f"{registry.host}/{name}:v1 points at {old}, not {digest}" in err
    assert "Error: --immutable" in err
    assert manifest_digest(registry, name, "v1") == old
    assert manifest_digest(registry, name, "fresh") is None
    code, err = tag([f"{registry.host}/{name}:v2", "v1"], capsys)[:2]
    assert code == 0 and f"moved from {old}" in err


def test_wrong_credentials_exit_2_naming_the_registry(auth_registry, capsys):
    env = {"CI_REGISTRY": auth_registry.host, "CI_REGISTRY_USER": REGISTRY_USER,
           "CI_REGISTRY_PASSWORD": "not-the-password"}
    code, err = tag([f"{auth_registry.host}/a/b:v1", "v2"], capsys, env)[:2]
    assert code == 2  # no retry helps: the password must change
    assert f"Error: registry {auth_registry.host} refused the credentials" in err


def test_unreachable_registry_exit_3(capsys):
    host = f"127.0.0.1:{free_port()}"
    code, err = tag([f"{host}/a/b:v1", "v2", "--retries", "1"], capsys)[:2]
    assert code == 3
    assert f"Error: registry {host} is unreachable after 2 attempts" in err


@pytest.mark.parametrize(("argv", "message"), [
    ([], "SOURCE (CD_IMAGE): the image to tag is required"),
    (["reg.example.com/a/b:v1"], "nothing to tag"),
    (["reg.example.com/a/b:v1", "reg.example.com/c/d"], "add :TAG, or --scheme"),
    (["reg.example.com/A/b:v1", "v2"], "not a valid repository name component"),
    (["reg.example.com/a/b:v1", "--scheme", "calver"], "unknown scheme 'calver'"),
])
def test_usage_errors_exit_2(capsys, argv, message):
    code, err = tag(argv, capsys)[:2]
    assert code == 2 and message in err


def test_missing_source_exit_2(registry, capsys):
    code, err = tag([f"{registry.host}/no/such:v1", "v2"], capsys)[:2]
    assert code == 2 and "is not in registry" in err


def test_bearer_token_registry(docker, image, tmp_path_factory, capsys):
    registry, tokens = start_token_registry("tok-user", "tok-Pa55-word",
                                            tmp_path_factory.mktemp("tok"))
    try:
        name, other = new_repo(), new_repo()
        digest = push_image(docker, image, registry, name, "v1")
        env = {"CI_REGISTRY": registry.host, "CI_REGISTRY_USER": "tok-user",
               "CI_REGISTRY_PASSWORD": "tok-Pa55-word"}
        tokens.requests_seen.clear()
        code, err = tag([f"{registry.host}/{name}:v1", "v2", f"{registry.host}/{other}:v1"],
                        capsys, env)[:2]
        assert code == 0, err
        assert "blobs 5 mounted" in err
        client = RegistryClient(lambda host: Credentials("tok-user", "tok-Pa55-word"))
        assert client.head_manifest(Repo(registry.host, other), "v1") == digest
        assert client.head_manifest(Repo(registry.host, name), "v2") == digest
        # one token per repository scope (and one for the mounts), each fetched once
        assert [r["scopes"] for r in tokens.requests_seen[:3]] == [
            [f"repository:{name}:pull,push"], [f"repository:{other}:pull,push"],
            [f"repository:{other}:pull,push", f"repository:{name}:pull"]]
    finally:
        registry.stop()
        tokens.stop()


def test_concurrent_tagging_of_the_same_target(docker, image, registry):
    """Writers re-PUT the source tag while taggers read it (Distribution 2.8 then answers some
    GETs with `500 invalid checksum digest format`): every tagger succeeds, digest unchanged."""
    name = new_repo()
    digest = push_image(docker, image, registry, name, "v1")
    src = Repo(registry.host, name, push=True)
    manifest = RegistryClient().get_manifest(src, "v1")
    target = parse_reference(f"{registry.host}/{name}:shared")
    stop = threading.Event()
    errors, retries = [], []

    def writer():
        client = RegistryClient()
        while not stop.is_set():
            client.put_manifest(src, "v1", manifest)

    def tagger():
        client = RegistryClient(attempts=8, backoff=0.02, on_retry=retries.append)
        try:
            for _ in range(15):
                got = client.get_manifest(src, "v1")
                tag_image(client, got, src, [target], immutable=True)
        except Exception as e:  # collected and asserted below
            errors.append(e)

    writers = [threading.Thread(target=writer) for _ in range(4)]
    taggers = [threading.Thread(target=tagger) for _ in range(4)]
    for t in writers + taggers:
        t.start()
    for t in taggers:
        t.join()
    stop.set()
    for t in writers:
        t.join()
    assert errors == []
    assert manifest_digest(registry, name, "shared") == digest
    assert manifest_digest(registry, name, "v1") == digest
    print(f"{len(retries)} transient registry failures retried")


def test_no_secret_in_any_byte_printed(auth_registry, tmp_path):
    """Run the step as CI does, with the password set (wrong and right), --debug on; no form
    of the password or the basic auth header may appear in stdout or stderr."""
    password = REGISTRY_PASSWORD
    pair = f"{REGISTRY_USER}:{password}"
    forbidden = [password, base64.b64encode(password.encode()).decode(),
                 base64.b64encode(pair.encode()).decode(), pair]
    auth_config = json.dumps({"auths": {auth_registry.host: {
        "auth": base64.b64encode(pair.encode()).decode()}}})
    runs = [
        {"CI_REGISTRY": auth_registry.host, "CI_REGISTRY_USER": REGISTRY_USER,
         "CI_REGISTRY_PASSWORD": password},
        {"DOCKER_AUTH_CONFIG": auth_config},
        {"CD_REGISTRY_USER": REGISTRY_USER, "CD_REGISTRY_PASSWORD": password + "x",
         "CD_REGISTRY": auth_registry.host},
    ]
    for extra in runs:
        for argv in (["tag", f"{auth_registry.host}/no/such:v1", "v2", "--debug"],
                     ["tag", f"{auth_registry.host}/a:b", "--registry-password", password,
                      "--debug", "c"]):
            env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **extra}
            done = subprocess.run([sys.executable, "-m", "steps", *argv], env=env,
                                  capture_output=True, check=False)
            printed = done.stdout + done.stderr
            assert done.returncode in (2, 3), printed
            for secret in forbidden:
                assert secret.encode() not in printed, (extra, argv)
