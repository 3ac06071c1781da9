"""Promotion and deployment states with explicit transition tables."""

from __future__ import annotations

from enum import StrEnum


class PromotionState(StrEnum):
    """Where a promotion of one image into one environment stands."""

    REQUESTED = "requested"
    TRIGGERED = "triggered"
    DEPLOYING = "deploying"
    DEPLOYED = "deployed"
    VERIFIED = "verified"
    FAILED = "failed"
    SUPERSEDED = "superseded"

    @property
    def is_terminal(self) -> bool:
        """A terminal promotion never moves again."""
        return not PROMOTION_TRANSITIONS[self]

    @property
    def is_in_flight(self) -> bool:
        """In flight: counts against 'one promotion per image and environment'."""
        return self in IN_FLIGHT


class DeploymentState(StrEnum):
    """What a deploy job reported for one image in one environment."""

    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"

    @property
    def is_terminal(self) -> bool:
        """A terminal deployment never moves again."""
        return not DEPLOYMENT_TRANSITIONS[self]


PROMOTION_TRANSITIONS: dict[PromotionState, frozenset[PromotionState]] = {
    PromotionState.REQUESTED: frozenset({PromotionState.TRIGGERED, PromotionState.DEPLOYING,
                                         PromotionState.FAILED, PromotionState.SUPERSEDED}),
    PromotionState.TRIGGERED: frozenset({PromotionState.DEPLOYING, PromotionState.DEPLOYED,
                                         PromotionState.FAILED, PromotionState.SUPERSEDED}),
    PromotionState.DEPLOYING: frozenset({PromotionState.DEPLOYED, PromotionState.FAILED}),
    PromotionState.DEPLOYED: frozenset({PromotionState.VERIFIED, PromotionState.FAILED}),
    PromotionState.VERIFIED: frozenset(),
    PromotionState.FAILED: frozenset(),
    PromotionState.SUPERSEDED: frozenset(),
}
IN_FLIGHT = frozenset({PromotionState.REQUESTED, PromotionState.TRIGGERED,
                       PromotionState.DEPLOYING, PromotionState.DEPLOYED})

DEPLOYMENT_TRANSITIONS: dict[DeploymentState, frozenset[DeploymentState]] = {
    DeploymentState.STARTED: frozenset({DeploymentState.SUCCEEDED, DeploymentState.FAILED,
                                        DeploymentState.ROLLED_BACK}),
    DeploymentState.SUCCEEDED: frozenset({DeploymentState.ROLLED_BACK}),
    DeploymentState.FAILED: frozenset(),
    DeploymentState.ROLLED_BACK: frozenset(),
}
DEPLOYMENT_INITIAL = frozenset({DeploymentState.STARTED, DeploymentState.SUCCEEDED,
                                DeploymentState.FAILED})


def promotion_sources(target: PromotionState) -> frozenset[PromotionState]:
    """States from which `target` may be reached (used for conditional UPDATEs)."""
    return frozenset(s for s, nxt in PROMOTION_TRANSITIONS.items() if target in nxt)


def deployment_sources(target: DeploymentState) -> frozenset[DeploymentState]:
    """States from which `target` may be reached (used for conditional UPDATEs)."""
    return frozenset(s for s, nxt in DEPLOYMENT_TRANSITIONS.items() if target in nxt)


def illegal_move(kind: str, current: str, target: str, allowed: frozenset[str]) -> str:
    """A message for an illegal move that says what would have been legal."""
    options = ", ".join(sorted(allowed)) or "none: it is final"
    return f"{kind} is {current}; it cannot become {target} (possible next states: {options})"
