"""The docker target: one Docker engine (DOCKER_HOST), blue-green service by service.

    target      DockerTarget: the rollout, its failure and rollback, the release records
    containers  containers created, started, waited on until healthy, stopped, tidied
    resources   images, networks, volumes, config and secret files, records and the deploy lock
    spec        a normalised Compose service as Engine API container settings (pure)
    pause       the network holder's image that keeps a fixed host port across releases
    teardown    an environment removed, its data volumes kept unless asked
"""

from steps.targets.docker.target import DockerTarget

__all__ = ["DockerTarget"]
