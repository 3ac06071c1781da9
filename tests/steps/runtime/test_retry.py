"""Retries shared by the registry, `docker push` and promotion service clients."""

import pytest

from steps.runtime.retry import Transient, call_with_retries


def flaky(failures, error=Transient):
    """A call that raises `error` `failures` times, then answers; it counts its calls."""
    calls = []

    def call():
        calls.append(1)
        if len(calls) <= failures:
            raise error(f"failure {len(calls)}")
        return "answer"

    return call, calls


def test_transient_failures_are_retried_until_an_answer():
    call, calls = flaky(2)
    noted = []
    assert call_with_retries(call, attempts=3, multiplier=0, max_wait=0, jitter=0,
                             on_retry=lambda e: noted.append(str(e))) == "answer"
    assert len(calls) == 3
    assert noted == ["failure 1", "failure 2"]


@pytest.mark.parametrize("attempts", [1, 3])
def test_after_the_last_attempt_the_last_failure_propagates(attempts):
    call, calls = flaky(10)
    with pytest.raises(Transient, match=f"failure {attempts}"):
        call_with_retries(call, attempts=attempts, multiplier=0, max_wait=0, jitter=0)
    assert len(calls) == attempts


def test_other_errors_are_not_retried():
    call, calls = flaky(1, error=ValueError)
    with pytest.raises(ValueError, match="failure 1"):
        call_with_retries(call, attempts=5, multiplier=0, max_wait=0, jitter=0)
    assert len(calls) == 1
