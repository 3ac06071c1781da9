"""Promotion and deployment state tables."""

import pytest

from promotion_service.domain.states import (
    DeploymentState,
    PromotionState,
    deployment_sources,
    promotion_sources,
)


@pytest.mark.parametrize(("state", "terminal"), [
    ("requested", False), ("triggered", False), ("deploying", False), ("deployed", False),
    ("verified", True), ("failed", True), ("superseded", True),
])
def test_terminal_promotion_states(state, terminal):
    assert PromotionState(state).is_terminal is terminal
    assert PromotionState(state).is_in_flight is not terminal


def test_verified_only_after_deployed():
    assert promotion_sources(PromotionState.VERIFIED) == {PromotionState.DEPLOYED}


def test_superseded_only_before_deploying():
    assert promotion_sources(PromotionState.SUPERSEDED) == {PromotionState.REQUESTED,
                                                            PromotionState.TRIGGERED}


def test_a_rolled_back_deployment_was_started_or_succeeded():
    assert deployment_sources(DeploymentState.ROLLED_BACK) == {DeploymentState.STARTED,
                                                                DeploymentState.SUCCEEDED}
    assert DeploymentState.FAILED.is_terminal
