"""Retries of transient failures (5xx, 429, connection trouble), shared by every outside call
the steps make: the registry client, `docker push` and the promotion service client.

An exception is worth retrying when its `transient` attribute is true: `Transient` always is;
a library's own error (the registry's RegistryError) says so per failure.

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

    transient = True


def is_transient(error: BaseException) -> bool:
    """Whether retrying may help: the error says it is transient."""
    return bool(getattr(error, "transient", False))


def call_with_retries(fn: Callable[[], T], *, attempts: int, multiplier: float,
                      max_wait: float, jitter: float = 1.0,
                      on_retry: Callable[[BaseException], None] | None = None) -> T:
    """Call `fn` up to `attempts` times while it raises a transient error, waiting about
    `multiplier`, then twice as long each time (plus up to `jitter`, at most `max_wait`) in
    between; after the last attempt the last error propagates for the caller to name the
    system."""
    try:
        return fn()
    except Exception as first:
        if attempts <= 1 or not is_transient(first):
            raise
        if on_retry:
            on_retry(first)
    from tenacity import Retrying, retry_if_exception, stop_after_attempt
    from tenacity import wait_exponential_jitter as backoff

    retrying = Retrying(
        stop=stop_after_attempt(attempts - 1),
        wait=backoff(multiplier=multiplier, max=max_wait, jitter=jitter),
        retry=retry_if_exception(is_transient),
        reraise=True,
        before_sleep=(lambda state: on_retry(state.outcome.exception())) if on_retry else None,
    )
    time.sleep(min(multiplier, max_wait))
    return retrying(fn)
