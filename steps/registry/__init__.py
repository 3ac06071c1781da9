"""A small client for the registry HTTP API (OCI Distribution Spec), lean enough for a CLI.

Why not a library: python-dxf sends tokens only over https and refuses auth on plain-http
registries, and has no retries; oras-py re-serialises manifests (changing their digest) and
validates them as OCI image manifests only, with no cross-repository mounts. Both pull in
requests, which alone costs more start-up time than a same-repository retag may take. So
this client sits on the standard library's http.client (one kept-alive connection per host
and thread), with tenacity for retries (imported only when a retry is needed).

    manifest    media types, Repo, Manifest, digest_of (pure)
    transport   HTTP exchanges: kept-alive connections, redirects; connection trouble transient
    auth        the 401 challenge answered: basic, or Bearer tokens cached per scope
    client      RegistryClient: manifests, tags and blobs, retried when transient
    errors      RegistryError, transient or refused or neither; step_error: its exit code
"""

from steps.registry.client import RegistryClient
from steps.registry.errors import RegistryError, step_error
from steps.registry.manifest import ACCEPT, DOCKER_MANIFEST, OCI_INDEX, Manifest, Repo, digest_of
from steps.registry.transport import Transport

__all__ = ["ACCEPT", "DOCKER_MANIFEST", "OCI_INDEX", "Manifest", "RegistryClient",
           "RegistryError", "Repo", "Transport", "digest_of", "step_error"]
