"""A deployment reported `started` is always closed, whatever stops the deploy (issue 11.2);
one refused before it starts is reported `failed` at once, unless a retry may still deploy it."""

from __future__ import annotations

import io
import os
import signal

import pytest

from steps.runtime.errors import ExternalError, Refused, UsageError
from steps.runtime.log import Log
from steps.runtime.masking import Masker
from steps.service.reports import Reporter, Terminated
from tests.steps.commands.fake_service import FakeService

IMAGE = "registry.example.com/team/app@sha256:" + "a" * 64


def reporter(fake: FakeService, masker: Masker | None = None) -> Reporter:
    return Reporter(fake, "https://gitlab.example.com/job/1", IMAGE, "staging",  # type: ignore[arg-type]
                    Log(stream=io.StringIO(), masker=masker), "sha256:" + "c" * 64)


@pytest.mark.parametrize("error, reason", [
    (ExternalError("cannot pull the image: manifest unknown"),
     "cannot pull the image: manifest unknown"),
    (RuntimeError("the engine went away"), "RuntimeError: the engine went away"),
    (KeyboardInterrupt(), "KeyboardInterrupt: "),
])
def test_any_failure_after_started_is_reported_failed_with_its_reason(error, reason):
    fake = FakeService({"id": 5}, {"id": 5})
    with pytest.raises(type(error)), reporter(fake).deployment("release r1", record_id="r1"):
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


@pytest.mark.parametrize("error, reason", [
    (Refused("release 4 holds the template sha256:1"), "release 4 holds the template sha256:1"),
    (Refused("no", ["first reason", "second"]), "no (first reason; second)"),
    (UsageError("compose.yml:3: services.web.ports: bad", "template_dir"),
     "compose.yml:3: services.web.ports: bad"),
])
def test_a_refusal_before_the_start_is_reported_failed_at_once(error, reason):
    fake = FakeService({"id": 6})
    with pytest.raises(type(error)), reporter(fake).before_start():
        raise error
    [(method, path, body)] = fake.requests
    assert (method, path, body["state"], body["message"]) == ("POST", "deployments", "failed",
                                                              reason)
    assert "template_hash" not in body and "record_id" not in body  # nothing was rolled out


@pytest.mark.parametrize("error", [ExternalError("engine down"), RuntimeError("bug")])
def test_a_failure_a_retry_may_fix_is_not_reported_before_the_start(error):
    fake = FakeService()
    with pytest.raises(type(error)), reporter(fake).before_start():
        raise error
    assert fake.requests == []  # the job's retry (exit 3) deploys the same promotion


def test_every_reason_sent_is_masked_as_the_log_is():
    masker = Masker()
    masker.add("hunter2-secret")
    fake = FakeService({"id": 6}, {"id": 7}, {"id": 7})
    with pytest.raises(UsageError), reporter(fake, masker).before_start():
        raise UsageError("port 'hunter2-secret' is not a number")
    with pytest.raises(ExternalError), reporter(fake, masker).deployment("r"):
        raise ExternalError("pull of x:hunter2-secret failed")
    messages = [body["message"] for _, _, body in fake.requests if "message" in body]
    assert messages == ["port '[MASKED]' is not a number", "r",
                        "pull of x:[MASKED] failed"]
