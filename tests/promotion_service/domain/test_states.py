"""Promotion and deployment state tables."""

import pytest

from promotion_service.domain.states import (
    DeploymentState,
    PromotionState,
    deployment_sources,
    promotion_sources,
)

P = PromotionState


@pytest.mark.parametrize(("state", "terminal"), [
    (P.REQUESTED, False), (P.TRIGGERED, False), (P.DEPLOYING, False), (P.DEPLOYED, False),
    (P.VERIFIED, True), (P.FAILED, True), (P.SUPERSEDED, True),
])
def test_terminal_promotion_states(state, terminal):
    assert state.is_terminal is terminal
    assert state.is_in_flight is not terminal


def test_verified_only_after_deployed():
    assert promotion_sources(P.VERIFIED) == {P.DEPLOYED}


def test_superseded_only_before_deploying():
    assert promotion_sources(P.SUPERSEDED) == {P.REQUESTED, P.TRIGGERED}


def test_a_rolled_back_deployment_was_started_or_succeeded():
    assert deployment_sources(DeploymentState.ROLLED_BACK) == {DeploymentState.STARTED,
                                                                DeploymentState.SUCCEEDED}
    assert DeploymentState.FAILED.is_terminal
