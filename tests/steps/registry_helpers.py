"""Registry test helpers: a Bearer token server (JWTs a real Docker Distribution accepts),
pushing images with the engine, and building OCI manifests and indexes over plain HTTP.

Setup goes through `requests` and the engine, not through the client under test.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import json
import tarfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.support import Registry, start_registry

SERVICE = "docker-cd-test-registry"
ISSUER = "docker-cd-test-issuer"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_key_id(public_key) -> str:
    """The key id Docker Distribution derives from a public key (libtrust's format)."""
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i:i + 4] for i in range(0, len(encoded), 4))


@dataclass
class TokenServer:
    """Issues RS256 JWTs for `user`/`password` (anonymous callers get 401)."""

    user: str
    password: str
    root: Path
    requests_seen: list[dict] = field(default_factory=list)

    def start(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .sign(self.key, hashes.SHA256()))
        self.cert_path = self.root / "token-ca.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.kid = libtrust_key_id(self.key.public_key())
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                auth = self.headers.get("Authorization", "")
                expected = "Basic " + base64.b64encode(
                    f"{server.user}:{server.password}".encode()).decode()
                server.requests_seen.append({"scopes": query.get("scope", []),
                                             "authorized": auth == expected})
                if auth != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps({"token": server.jwt(query.get("scope", [])),
                                   "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def jwt(self, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        claims = {"iss": ISSUER, "sub": self.user, "aud": SERVICE, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing_input = ".".join(_b64url(json.dumps(part).encode()) for part in (header, claims))
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def start_token_registry(user: str, password: str, root: Path) -> tuple[Registry, TokenServer]:
    """A Docker Distribution registry with `auth: token`, and the token server it trusts."""
    tokens = TokenServer(user, password, root)
    tokens.start()
    config = (f"auth:\n  token:\n    realm: {tokens.url}\n    service: {SERVICE}\n"
              f"    issuer: {ISSUER}\n    rootcertbundle: {tokens.cert_path}\n")
    registry = start_registry(extra_config=config)
    registry.user, registry.password = user, password
    return registry, tokens


def push_image(docker, local_tag: str, registry: Registry, repository: str, tag: str) -> str:
    """Push a local image into `registry/repository:tag` with the engine; return its digest."""
    name = f"{registry.host}/{repository}"
    docker.images.get(local_tag).tag(name, tag)
    try:
        digest = None
        for event in docker.api.push(name, tag, stream=True, decode=True,
                                     auth_config=registry.auth_config):
            if "error" in event:
                raise RuntimeError(event["error"])
            digest = (event.get("aux") or {}).get("Digest") or digest
    finally:
        docker.images.remove(f"{name}:{tag}")
    assert digest, "the engine reported no digest"
    return digest


def _put_blob(registry: Registry, repository: str, data: bytes) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = requests.post(f"{registry.url}/v2/{repository}/blobs/uploads/", auth=registry.auth,
                          timeout=30)
    start.raise_for_status()
    location = start.headers["Location"]
    done = requests.put(location, params={"digest": digest}, data=data, auth=registry.auth,
                        headers={"Content-Type": "application/octet-stream"}, timeout=30)
    done.raise_for_status()
    return {"digest": digest, "size": len(data)}


def put_manifest(registry: Registry, repository: str, reference: str, body: bytes,
                 media_type: str) -> str:
    response = requests.put(f"{registry.url}/v2/{repository}/manifests/{reference}", data=body,
                            headers={"Content-Type": media_type}, auth=registry.auth,
                            timeout=30)
    response.raise_for_status()
    return response.headers["Docker-Content-Digest"]


def oci_index(registry: Registry, repository: str, tag: str) -> tuple[str, list[str]]:
    """Push two OCI image manifests (amd64, arm64) and an OCI index of them under `tag`.

    Returns the index digest and the two manifest digests.
    """
    children = []
    for arch in ("amd64", "arm64"):
        layer = io.BytesIO()
        with tarfile.open(fileobj=layer, mode="w") as tar:
            content = f"{arch} {uuid.uuid4().hex}\n".encode()
            info = tarfile.TarInfo(f"etc/{arch}.txt")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        layer_desc = _put_blob(registry, repository, layer.getvalue())
        diff_id = layer_desc["digest"]
        config = json.dumps({"architecture": arch, "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
        config_desc = _put_blob(registry, repository, config)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, **config_desc},
            "layers": [{"mediaType": OCI_LAYER, **layer_desc}],
        }).encode()
        digest = put_manifest(registry, repository, hashlib.sha256(manifest).hexdigest()[:12],
                              manifest, OCI_MANIFEST)
        children.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest),
                         "platform": {"architecture": arch, "os": "linux"}})
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children},
                       indent=1).encode()
    return put_manifest(registry, repository, tag, index, OCI_INDEX), [c["digest"]
                                                                        for c in children]


def manifest_digest(registry: Registry, repository: str, reference: str) -> str | None:
    """The digest a tag points at (None if absent), read with requests."""
    response = requests.head(
        f"{registry.url}/v2/{repository}/manifests/{reference}", auth=registry.auth, timeout=30,
        headers={"Accept": ", ".join((OCI_INDEX, OCI_MANIFEST,
                                      "application/vnd.docker.distribution.manifest.v2+json",
                                      "application/vnd.docker.distribution.manifest.list.v2+json"))})
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return response.headers["Docker-Content-Digest"]
