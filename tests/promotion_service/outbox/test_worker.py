"""`promotion-service worker`: sends the outbox, runs the periodic checks, stops on SIGTERM."""

import os
import signal
import subprocess
import sys

import pytest
from sqlalchemy import select

from promotion_service.db import session_for
from promotion_service.db.gitlab_models import MergeRequestCheck
from promotion_service.db.models import Outbox, Promotion
from promotion_service.outbox import worker
from tests.promotion_service.gitlab_fixtures import (
    GITLAB_TOKEN,
    TRIGGER_TOKEN,
    make_project,
    make_promotion,
    make_release,
)


@pytest.fixture
def promotion_id(app, gitlab):
    app.config.update(GITLAB_URL=gitlab.url, GITLAB_TOKEN=GITLAB_TOKEN,
                      GITLAB_TRIGGER_TOKEN_TOKEN=TRIGGER_TOKEN)
    with session_for(app) as session:
        project = make_project(session)
        return make_promotion(session, project, make_release(session, project)).id


def test_once_sends_what_is_due_and_runs_the_periodic_checks(app, gitlab, promotion_id):
    with session_for(app) as session:
        session.add(MergeRequestCheck(gitlab_project_id=42, project_path="group/app", mr_iid=3,
                                      check_id=5, sha="f" * 40, status="pending", reasons=[]))
    assert worker.run(app, once=True) == 0
    assert [p.variables["CD_PROMOTION_ID"] for p in gitlab.pipelines] == [str(promotion_id)]
    with session_for(app, write=False) as session:
        assert session.get(Promotion, promotion_id).state == "triggered"
        check = session.scalars(select(MergeRequestCheck)).one()
    assert check.status == "pending"  # still no image for that commit: nothing to answer yet


def test_worker_process_sends_and_stops_cleanly_on_sigterm(app, gitlab, promotion_id, tmp_path):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PROMOTION_")},
           "PROMOTION_DATABASE_URL": app.config["DATABASE_URL"],
           "PROMOTION_POLICY_FILE": app.config["POLICY_FILE"],
           "PROMOTION_GITLAB_URL": gitlab.url, "PROMOTION_GITLAB_TOKEN": GITLAB_TOKEN,
           "PROMOTION_GITLAB_TRIGGER_TOKEN_TOKEN": TRIGGER_TOKEN,
           "PROMOTION_DISPATCHER_POLL_SECONDS": "0.1"}
    log = tmp_path / "worker.log"
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from promotion_service.cli import main; "
         "sys.exit(main())", "worker"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        gitlab.wait_for(lambda g: g.pipelines, timeout=30)
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert len(gitlab.pipelines) == 1
    with session_for(app, write=False) as session:
        assert session.scalars(select(Outbox)).one().state == "sent"


def test_old_webhook_delivery_keys_are_forgotten(app, gitlab, promotion_id):
    from datetime import timedelta

    from promotion_service.db.gitlab_models import WebhookDelivery
    from promotion_service.db.models import utcnow

    with session_for(app) as session:
        session.add(WebhookDelivery(key="old", event="Pipeline Hook",
                                    received_at=utcnow() - timedelta(days=8)))
        session.add(WebhookDelivery(key="recent", event="Pipeline Hook"))
    worker.run(app, once=True)
    with session_for(app, write=False) as session:
        assert [d.key for d in session.scalars(select(WebhookDelivery))] == ["recent"]


def test_worker_without_gitlab_url_says_which_variable_to_set(app, promotion_id):
    app.config["GITLAB_URL"] = None
    with pytest.raises(ValueError, match="PROMOTION_GITLAB_URL"):
        worker.run(app, once=True)
