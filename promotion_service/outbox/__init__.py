"""The outbox's sending side: dispatchers claim rows (written by store.outbox.enqueue in
the transaction that caused them), call GitLab, record the answer; the worker adds the
periodic checks."""

from __future__ import annotations

from flask import Flask

from ..config import is_on
from .dispatcher import from_app
from .worker import start_thread_per_process


def init_app(app: Flask) -> None:
    """With PROMOTION_DISPATCHER_THREAD=1, run a dispatcher thread in each service process.

    The configuration is checked now: a mistake stops the service from starting.
    """
    if not is_on(app.config.get("DISPATCHER_THREAD")):
        return
    from_app(app)  # validate PROMOTION_GITLAB_* and PROMOTION_DISPATCHER_* now
    start_thread_per_process(app)
