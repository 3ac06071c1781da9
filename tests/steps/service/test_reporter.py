"""A deployment reported `started` is always closed, whatever stops the deploy (issue 11.2)."""

from __future__ import annotations

import io
import os
import signal

import pytest

from steps.runtime.errors import ExternalError
from steps.runtime.log import Log
from steps.service.reports import Reporter, Terminated
from tests.steps.commands.fake_service import FakeService

IMAGE = "registry.example.com/team/app@sha256:" + "a" * 64


def reporter(fake: FakeService) -> Reporter:
    return Reporter(fake, "https://gitlab.example.com/job/1", IMAGE, "staging",  # type: ignore[arg-type]
                    Log(stream=io.StringIO()))


@pytest.mark.parametrize("error, reason", [
    (ExternalError("cannot pull the image: manifest unknown"),
     "cannot pull the image: manifest unknown"),
    (RuntimeError("the engine went away"), "RuntimeError: the engine went away"),
    (KeyboardInterrupt(), "KeyboardInterrupt: "),
])
def test_any_failure_after_started_is_reported_failed_with_its_reason(error, reason):
    fake = FakeService({"id": 5}, {"id": 5})
    with pytest.raises(type(error)), reporter(fake).deployment("release r1", release_id="r1"):
        raise error
    assert [(m, p) for m, p, _ in fake.requests] == [("POST", "deployments"),
                                                   ("PATCH", "deployments/5")]
    assert fake.requests[0][2]["record_id"] == "r1"
    assert fake.requests[1][2] == {"state": "failed", "message": reason}


def test_a_job_canceled_while_it_deploys_reports_failed():
    fake = FakeService({"id": 5}, {"id": 5})
    with pytest.raises(Terminated), reporter(fake).deployment("release r1"):
        os.kill(os.getpid(), signal.SIGTERM)
    assert fake.requests[1][2]["message"] == "the job was canceled (SIGTERM) while it deployed"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored afterwards


def test_a_service_that_cannot_hear_the_failure_does_not_hide_it():
    class Down(FakeService):
        def request(self, method, path, **kwargs):
            if method == "PATCH":
                raise ExternalError("promotion service unreachable")
            return super().request(method, path, **kwargs)

    with pytest.raises(RuntimeError, match="boom"), reporter(Down({"id": 5})).deployment("r"):
        raise RuntimeError("boom")
