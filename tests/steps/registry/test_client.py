"""The registry client against real Docker Distribution registries: anonymous, basic auth and
Bearer tokens; refused credentials, an unreachable registry, and retried transient failures."""

import json
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from steps.images.credentials import Credentials
from steps.registry import (
    ACCEPT,
    DOCKER_MANIFEST,
    RegistryClient,
    RegistryError,
    Repo,
    digest_of,
)
from tests.steps.registry_helpers import (
    manifest_digest,
    oci_index,
    push_image,
    start_token_registry,
)
from tests.support import free_port

pytestmark = pytest.mark.docker


def creds_for(registry, password=None):
    def lookup(host):
        if host == registry.host and registry.user:
            return Credentials(registry.user, password or registry.password)
        return None
    return lookup


@pytest.fixture(scope="module")
def image(images):
    return images.build(filler_mb={"filler": 1})


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory):
    registry, tokens = start_token_registry("token-user", "t0ken-Pa55word",
                                            tmp_path_factory.mktemp("token"))
    yield registry, tokens
    registry.stop()
    tokens.stop()


def repo_name():
    return f"t/{uuid.uuid4().hex[:8]}"


def test_retag_keeps_the_exact_bytes_and_digest(docker, image, registry):
    name = repo_name()
    digest = push_image(docker, image, registry, name, "v1")
    client = RegistryClient()
    repo = Repo(registry.host, name, push=True)
    manifest = client.get_manifest(repo, "v1")
    assert manifest.digest == digest == digest_of(manifest.body)
    assert manifest.media_type == DOCKER_MANIFEST
    assert client.head_manifest(repo, "v2") is None
    assert client.put_manifest(repo, "v2", manifest) == digest
    assert manifest_digest(registry, name, "v2") == digest
    assert sorted(client.tags(repo)) == ["v1", "v2"]
    assert client.get_manifest(repo, "absent") is None


def test_mount_and_stream_blobs(docker, image, registry):
    name = repo_name()
    push_image(docker, image, registry, name, "v1")
    client = RegistryClient()
    src = Repo(registry.host, name)
    layer = client.get_manifest(src, "v1").blobs()[-1]
    other = Repo(registry.host, repo_name(), push=True)
    assert not client.blob_exists(other, layer["digest"])
    assert client.mount_blob(other, layer["digest"], name)
    assert client.blob_exists(other, layer["digest"])
    third = Repo(registry.host, repo_name(), push=True)
    client.copy_blob(src, third, layer)
    assert client.blob_exists(third, layer["digest"])


def test_index_is_served_as_an_index(registry):
    name = repo_name()
    digest, children = oci_index(registry, name, "multi")
    manifest = RegistryClient().get_manifest(Repo(registry.host, name), "multi")
    assert manifest.digest == digest and manifest.is_index
    assert [c["digest"] for c in manifest.children()] == children


def test_basic_auth(docker, image, auth_registry):
    name = repo_name()
    digest = push_image(docker, image, auth_registry, name, "v1")
    client = RegistryClient(creds_for(auth_registry))
    assert client.head_manifest(Repo(auth_registry.host, name), "v1") == digest


@pytest.mark.parametrize(("password", "message"), [
    ("wrong-password", "refused the credentials for user 'ci-user'"),
    (None, "requires credentials and none were found"),
])
def test_refused_or_missing_credentials_name_the_registry(docker, image, auth_registry,
                                                          password, message):
    lookup = creds_for(auth_registry, password) if password else (lambda host: None)
    client = RegistryClient(lookup)
    with pytest.raises(RegistryError, match=f"registry {auth_registry.host} {message}") as e:
        client.get_manifest(Repo(auth_registry.host, "any/thing"), "v1")
    assert e.value.transient is False  # not retried: the credentials will not change


def test_bearer_token_challenge_scoped_per_repository_and_cached(docker, image, token_registry):
    registry, tokens = token_registry
    name = repo_name()
    digest = push_image(docker, image, registry, name, "v1")
    tokens.requests_seen.clear()
    client = RegistryClient(creds_for(registry))
    repo = Repo(registry.host, name, push=True)
    manifest = client.get_manifest(repo, "v1")
    for tag in ("v2", "v3"):
        assert client.head_manifest(repo, tag) is None
        client.put_manifest(repo, tag, manifest)
    assert client.head_manifest(repo, "v3") == digest
    assert tokens.requests_seen == [{"scopes": [f"repository:{name}:pull,push"],
                                     "authorized": True}]
    other = Repo(registry.host, repo_name(), push=True)
    for blob in manifest.blobs():
        assert client.mount_blob(other, blob["digest"], name)
    assert tokens.requests_seen[-1]["scopes"] == [other.scope, f"repository:{name}:pull"]


def test_bearer_with_wrong_password_is_refused(token_registry):
    registry, _ = token_registry
    client = RegistryClient(creds_for(registry, "wrong"))
    with pytest.raises(RegistryError, match=f"registry {registry.host} refused the credentials"):
        client.head_manifest(Repo(registry.host, "x/y"), "v1")


def test_unreachable_registry_fails_after_retries():
    host = f"127.0.0.1:{free_port()}"
    retries = []
    client = RegistryClient(attempts=3, backoff=0.01, on_retry=retries.append)
    with pytest.raises(RegistryError, match=f"registry {host} is unreachable after 3 attempts"
                       ) as e:
        client.get_manifest(Repo(host, "a/b"), "v1")
    assert len(retries) == 2
    assert e.value.transient is True


class FlakyRegistry:
    """A stand-in registry whose first answers fail the way real ones do under load:
    Distribution's `500 invalid checksum digest format`, and a connection reset."""

    def __init__(self, failures):
        self.failures = list(failures)
        self.manifest = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                                    "config": {}, "layers": []}).encode()
        flaky = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                failure = flaky.failures.pop(0) if flaky.failures else None
                if failure == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.close_connection = True
                    self.rfile.close()
                    self.wfile.close()
                    self.connection.close()  # with SO_LINGER 0: a TCP reset
                    return
                if failure == 500:
                    body = b'{"errors":[{"code":"UNKNOWN","message":"unknown error",' \
                           b'"detail":"invalid checksum digest format"}]}'
                    self.send_response(500)
                else:
                    body = flaky.manifest
                    self.send_response(200)
                    self.send_header("Content-Type", DOCKER_MANIFEST)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_transient_failures_are_retried():
    flaky = FlakyRegistry([500, "reset", 500])
    try:
        retries = []
        client = RegistryClient(attempts=4, backoff=0.01, on_retry=retries.append)
        manifest = client.get_manifest(Repo(flaky.host, "a/b"), "v1")
        assert manifest.body == flaky.manifest
        assert len(retries) == 3 and "HTTP 500" in retries[0]
    finally:
        flaky.stop()


def test_persistent_5xx_fails_after_the_retries_naming_the_registry():
    flaky = FlakyRegistry([500] * 5)
    try:
        client = RegistryClient(attempts=2, backoff=0.01)
        started = time.monotonic()
        with pytest.raises(RegistryError, match=f"registry {flaky.host} failed after 2 attempts"
                           ".*HTTP 500"):
            client.get_manifest(Repo(flaky.host, "a/b"), "v1")
        assert time.monotonic() - started < 5
    finally:
        flaky.stop()


def test_accept_header_lists_indexes_and_manifests():
    for media_type in ("oci.image.index", "manifest.list", "oci.image.manifest", "manifest.v2"):
        assert media_type in ACCEPT
