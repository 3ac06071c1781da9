"""A burst of promotions, two worker processes, a GitLab failing a third of the triggers:
every promotion gets exactly one pipeline, on PostgreSQL (benchmarks/outbox_burst.py times it)."""

import os
import re
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

from docker_cd_local.gitlab_double import GitLabDouble
from promotion_service.db import engine_of, session_for
from promotion_service.db.models import Outbox, Promotion
from tests.promotion_service.gitlab_fixtures import (
    GITLAB_TOKEN,
    TRIGGER_TOKEN,
    database_app,
    make_project,
    make_promotion,
    make_release,
)

PROMOTIONS = 60


@pytest.fixture
def gitlab():
    with GitLabDouble(access_token=GITLAB_TOKEN) as double:
        double.add_project(42, "group/app", trigger_token=TRIGGER_TOKEN)
        double.fail_randomly("POST", "/projects/*/trigger/pipeline", rate=0.3,
                             rate_limit_period=1, seed=7)
        yield double


def worker(database_url, gitlab, log):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PROMOTION_")},
           "PROMOTION_DATABASE_URL": database_url, "PROMOTION_GITLAB_URL": gitlab.url,
           "PROMOTION_GITLAB_TOKEN": GITLAB_TOKEN, "PROMOTION_GITLAB_TRIGGER_TOKEN": TRIGGER_TOKEN,
           "PROMOTION_DISPATCHER_POLL_SECONDS": "0.05", "PROMOTION_DISPATCHER_BATCH_SIZE": "4",
           "PROMOTION_DISPATCHER_CONCURRENCY": "3",
           "PROMOTION_DISPATCHER_BACKOFF_SECONDS": "0.05"}
    return subprocess.Popen([sys.executable, "-m", "promotion_service", "worker"], env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


@pytest.mark.postgres
def test_two_workers_trigger_each_promotion_exactly_once_through_failures(
        postgres_url, gitlab, tmp_path):
    app = database_app(postgres_url)
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    workers = [worker(postgres_url, gitlab, log) for log in logs]
    try:
        with session_for(app) as session:  # one transaction: the burst lands at once
            project = make_project(session)
            ids = [make_promotion(session, project, make_release(session, project, n=n)).id
                   for n in range(PROMOTIONS)]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with session_for(app, write=False) as session:
                pending = session.scalar(select(func.count()).select_from(Outbox)
                                         .where(Outbox.state == "pending"))
            if not pending or any(w.poll() is not None for w in workers):
                break
            time.sleep(0.2)
    finally:
        for process in workers:
            process.terminate()
        for process in workers:
            process.wait(15)
    output = [log.read_text() for log in logs]
    assert not pending, f"rows still pending; worker logs:\n{output}"

    assert gitlab.triggers_per_promotion() == {str(i): 1 for i in ids}
    statuses = [c.status for c in gitlab.calls_to("POST", "/projects/*/trigger/pipeline")]
    assert 429 in statuses and 500 in statuses, "GitLab failed some triggers"
    assert len(statuses) == PROMOTIONS + statuses.count(429) + statuses.count(500)
    pipelines = {p.variables["CD_PROMOTION_ID"]: p.id for p in gitlab.pipelines}
    with session_for(app, write=False) as session:
        promotions = session.scalars(select(Promotion).where(Promotion.id.in_(ids))).all()
        assert {(p.state, p.pipeline_id) for p in promotions} == {
            ("triggered", pipelines[str(p.id)]) for p in promotions}
        assert set(session.scalars(select(Outbox.state))) == {"sent"}
    sent_by = [set(re.findall(r"outbox (\d+) \(trigger_pipeline\) sent", text))
               for text in output]
    assert all(sent_by) and not sent_by[0] & sent_by[1], "both workers sent, none twice"
    engine_of(app).dispose()
