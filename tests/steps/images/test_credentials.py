"""Where registry credentials come from: CI variables, DOCKER_AUTH_CONFIG, the Docker config
file and its credential helpers (real helper programs speaking Docker's protocol)."""

import base64
import json
import stat

import pytest

from steps.images.credentials import Credentials, CredentialStore, host_key
from steps.runtime.errors import ExternalError, UsageError


def auth(user, password):
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def write_config(directory, config):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    return str(directory)


def write_helper(directory, name, script):
    """A docker-credential-<name> program; `get` reads the server URL on stdin."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"docker-credential-{name}"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(directory)


@pytest.mark.parametrize(("server", "key"), [
    ("https://registry.example.com/v1/", "registry.example.com"),
    ("registry.example.com:5000", "registry.example.com:5000"),
    ("https://index.docker.io/v1/", "docker.io"),
    ("registry-1.docker.io", "docker.io"),
])
def test_host_key(server, key):
    assert host_key(server) == key


def test_ci_registry_user_wins_for_the_ci_registry_only(tmp_path):
    config = write_config(tmp_path, {"auths": {"reg.example.com": {"auth": auth("file", "f")}}})
    store = CredentialStore(registry="reg.example.com", registry_user="gitlab-ci-token",
                            registry_password="job-token", docker_config=config)
    assert store.for_host("reg.example.com")[:2] == ("gitlab-ci-token", "job-token")
    assert store.for_host("other.example.com") is None


def test_docker_auth_config_before_the_config_file(tmp_path):
    config = write_config(tmp_path, {"auths": {"reg.example.com": {"auth": auth("file", "f")}}})
    store = CredentialStore(docker_auth_config=json.dumps(
        {"auths": {"https://reg.example.com": {"auth": auth("env", "e")}}}),
        docker_config=config)
    found = store.for_host("reg.example.com")
    assert (found.username, found.password, found.source) == ("env", "e", "DOCKER_AUTH_CONFIG")


@pytest.mark.parametrize(("entry", "expected"), [
    ({"auth": auth("u", "p:with:colons")}, Credentials("u", "p:with:colons")),
    ({"username": "u", "password": "p"}, Credentials("u", "p")),
    ({"identitytoken": "refresh-me"}, Credentials(identity_token="refresh-me")),
])
def test_config_file_auths_forms(tmp_path, entry, expected):
    store = CredentialStore(docker_config=write_config(tmp_path, {"auths": {"r.io": entry}}))
    found = store.for_host("r.io")
    assert found[:3] == expected[:3]


def test_credential_helper_for_one_host(tmp_path):
    helpers = write_helper(tmp_path / "bin", "corp", 'read server\n'
                           'echo "{\\"ServerURL\\":\\"$server\\",\\"Username\\":\\"svc\\",'
                           '\\"Secret\\":\\"from-helper-$server\\"}"\n')
    config = write_config(tmp_path / "cfg", {"credHelpers": {"corp.example.com": "corp"}})
    found = CredentialStore(docker_config=config, helper_path=helpers).for_host("corp.example.com")
    assert (found.username, found.password) == ("svc", "from-helper-corp.example.com")


def test_creds_store_with_identity_token_and_not_found(tmp_path):
    helpers = write_helper(tmp_path / "bin", "store", 'read server\n'
                           'if [ "$server" = "known.io" ]; then\n'
                           '  echo \'{"Username":"<token>","Secret":"idt"}\'\n'
                           'else echo "credentials not found in native keychain"; exit 1; fi\n')
    config = write_config(tmp_path / "cfg", {"credsStore": "store"})
    store = CredentialStore(docker_config=config, helper_path=helpers)
    assert store.for_host("known.io").identity_token == "idt"
    assert store.for_host("unknown.io") is None


def test_missing_helper_means_anonymous(tmp_path):
    config = write_config(tmp_path, {"credsStore": "desktop"})
    assert CredentialStore(docker_config=config, helper_path=str(tmp_path)).for_host("r.io") \
        is None


def test_failing_helper_is_an_outside_failure(tmp_path):
    helpers = write_helper(tmp_path / "bin", "broken", "echo boom >&2; exit 4\n")
    config = write_config(tmp_path / "cfg", {"credHelpers": {"r.io": "broken"}})
    with pytest.raises(ExternalError, match=r"docker-credential-broken.*exit 4"):
        CredentialStore(docker_config=config, helper_path=helpers).for_host("r.io")


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "DOCKER_AUTH_CONFIG is not valid JSON"),
    ('{"auths": {"r.io": {"auth": "bm9jb2xvbg=="}}}', "base64 of user:password"),
])
def test_bad_docker_auth_config_is_a_usage_error(text, message):
    with pytest.raises(UsageError, match=message):
        CredentialStore(docker_auth_config=text).for_host("r.io")


def test_no_config_anywhere_is_anonymous(tmp_path):
    assert CredentialStore(docker_config=str(tmp_path / "none")).for_host("r.io") is None
