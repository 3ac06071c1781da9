"""Retries of transient failures (5xx, 429, connection trouble), shared by every outside call
the steps make: the registry client, `docker push` and the promotion service client.

tenacity does the retrying; it is imported only once a first attempt has failed, so a step
whose calls succeed at once never loads it (the CLI's start-up stays lean).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Transient(Exception):
    """A failure worth retrying; its message says what failed."""


def call_with_retries(fn: Callable[[], T], *, attempts: int, multiplier: float,
                      max_wait: float, jitter: float = 1.0,
                      on_retry: Callable[[BaseException], None] | None = None) -> T:
    """Call `fn` up to `attempts` times while it raises Transient, waiting about `multiplier`,
    then twice as long each time (plus up to `jitter`, at most `max_wait`) in between; after
    the last attempt the last Transient propagates for the caller to name the system."""
    try:
        return fn()
    except Transient as first:
        if attempts <= 1:
            raise
        if on_retry:
            on_retry(first)
    from tenacity import Retrying, retry_if_exception_type, stop_after_attempt
    from tenacity import wait_exponential_jitter as backoff

    retrying = Retrying(
        stop=stop_after_attempt(attempts - 1),
        wait=backoff(multiplier=multiplier, max=max_wait, jitter=jitter),
        retry=retry_if_exception_type(Transient),
        reraise=True,
        before_sleep=(lambda state: on_retry(state.outcome.exception())) if on_retry else None,
    )
    time.sleep(min(multiplier, max_wait))
    return retrying(fn)
