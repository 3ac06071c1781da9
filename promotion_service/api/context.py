"""What views read from the running app besides the request: the policy set."""

from __future__ import annotations

from flask import current_app

from ..policy_file import PolicySet


def policies() -> PolicySet:
    """The policy set loaded at start-up (PROMOTION_POLICY_FILE, else the built-in one)."""
    return current_app.extensions["promotion_policies"]
