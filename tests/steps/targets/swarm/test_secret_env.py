"""Swarm release records keep no secret environment value; a rollback finds it again."""

from __future__ import annotations

import pytest

from steps.runtime.errors import Refused
from steps.targets.swarm import secret_env

SPEC = {"services": {"web": {"TaskTemplate": {"ContainerSpec": {
    "Env": ["API_TOKEN=t0k3n-value", "MODE=plain"]}}}}}


def test_the_record_has_hashes_and_a_rollback_gets_the_values_back_from_the_swarm():
    spec = {**SPEC, "secret_env": secret_env.hashes({"web": {"API_TOKEN": "t0k3n-value"}})}
    recorded = secret_env.redacted(spec)
    assert "t0k3n-value" not in str(recorded)
    env = recorded["services"]["web"]["TaskTemplate"]["ContainerSpec"]["Env"]
    assert env == ["API_TOKEN=[REDACTED]", "MODE=plain"]
    live = {"web": [["API_TOKEN=newer", "MODE=plain"], ["API_TOKEN=t0k3n-value"]]}
    back = secret_env.restored(recorded, live)
    assert back["services"]["web"]["TaskTemplate"]["ContainerSpec"]["Env"] == [
        "API_TOKEN=t0k3n-value", "MODE=plain"]
    with pytest.raises(Refused, match=r"API_TOKEN for service web .* no longer on the swarm"):
        secret_env.restored(recorded, {"web": [["API_TOKEN=other"], None]})
