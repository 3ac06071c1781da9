"""The outbox dispatcher against the GitLab double: exactly one pipeline per promotion."""

import threading
import time
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from promotion_service.db import engine_of, session_for
from promotion_service.db.models import AuditEntry, Outbox, Promotion, utcnow
from promotion_service.gitlab.client import GitLabClient
from promotion_service.outbox.dispatcher import Dispatcher, retry_delay
from promotion_service.outbox.handlers import ACTOR, HANDLERS
from promotion_service.outbox.settings import DispatcherSettings
from promotion_service.services import audit as audit_service
from promotion_service.services.promotion import mark_triggered, mark_triggered_many
from promotion_service.store import promotions as promotions_store
from promotion_service.store.outbox import KINDS, enqueue
from tests.promotion_service.gitlab_fixtures import (
    GITLAB_TOKEN,
    TRIGGER_TOKEN,
    database_app,
    make_project,
    make_promotion,
    make_release,
)

FAST = DispatcherSettings(trigger_token=TRIGGER_TOKEN, backoff_initial=0.01, backoff_max=0.05,
                          lease_seconds=30, poll_seconds=0.01, max_attempts=5)


@pytest.fixture
def app(database_url):
    app = database_app(database_url)
    yield app
    engine_of(app).dispose()


@pytest.fixture
def project(app):
    with session_for(app) as session:
        project = make_project(session)
        session.expunge(project)
    return project


def dispatcher(app, gitlab, settings=FAST, name=None):
    gitlab.add_user("approver-bot", token="glpat-approver")
    return Dispatcher(lambda: session_for(app), GitLabClient(gitlab.url, GITLAB_TOKEN,
                                                             approver_token="glpat-approver"),
                      settings, name=name)


def promote(app, project, n=1):
    with session_for(app) as session:
        image = make_release(session, project, n=n)
        return make_promotion(session, project, image).id


def read(app, model, row_id):
    with session_for(app, write=False) as session:
        row = session.get(model, row_id)
        session.expunge(row)
        return row


def drain(app, d, rounds=200):
    """Run the dispatcher until nothing is due, making backed-off rows due at once."""
    for _ in range(rounds):
        with session_for(app) as session:
            session.execute(update(Outbox).where(Outbox.state == "pending")
                            .values(available_at=utcnow() - timedelta(seconds=1)))
        if not d.run_once():
            return


def test_a_promotion_triggers_exactly_one_pipeline_with_its_variables(app, gitlab, project):
    promotion_id = promote(app, project)
    d = dispatcher(app, gitlab)
    assert d.run_once() == 1
    assert d.run_once() == 0
    [pipeline] = gitlab.pipelines
    assert pipeline.variables["CD_PROMOTION_ID"] == str(promotion_id)
    assert pipeline.variables["CD_TARGET_ENVIRONMENT"] == "staging"
    assert pipeline.variables["CD_IMAGE"].startswith("registry.example.com/group/app@sha256:")
    assert pipeline.variables["CD_IMAGE_APP"] == pipeline.variables["CD_IMAGE"]
    assert pipeline.variables["CD_RELEASE_ID"].isdigit()
    promotion = read(app, Promotion, promotion_id)
    assert (promotion.state, promotion.pipeline_id) == ("triggered", pipeline.id)
    assert promotion.pipeline_url == pipeline.web_url


def test_a_release_of_several_images_triggers_with_each_members_digest(app, gitlab, project):
    with session_for(app) as session:
        release = make_release(session, project, names=("api", "worker", "front-end"))
        promotion_id = make_promotion(session, project, release).id
        refs = {m.name: f"{m.repository}@{m.digest}" for m in release.members}
    dispatcher(app, gitlab).run_once()
    [pipeline] = gitlab.pipelines
    assert pipeline.variables["CD_RELEASE_ID"] == str(release.id)
    assert pipeline.variables["CD_IMAGE_API"] == refs["api"]
    assert pipeline.variables["CD_IMAGE_WORKER"] == refs["worker"]
    assert pipeline.variables["CD_IMAGE_FRONT_END"] == refs["front-end"]
    assert "CD_IMAGE" not in pipeline.variables  # no single image to name
    assert pipeline.variables["CD_PROMOTION_ID"] == str(promotion_id)


def test_without_trigger_token_the_pipelines_api_is_used_on_the_configured_ref(
        app, gitlab, project):
    gitlab.add_project(42, "group/app", trigger_token=TRIGGER_TOKEN, refs=("main", "deploy"))
    promote(app, project)
    dispatcher(app, gitlab, replace(FAST, trigger_token=None, trigger_ref="deploy")).run_once()
    [pipeline] = gitlab.pipelines
    assert (pipeline.source, pipeline.ref) == ("api", "deploy")


def test_server_errors_are_retried_with_backoff_until_one_pipeline(app, gitlab, project):
    gitlab.fail("POST", "/projects/42/trigger/pipeline", status=500, times=3)
    promotion_id = promote(app, project)
    d = dispatcher(app, gitlab)
    d.run_once()
    with session_for(app, write=False) as session:
        row = session.scalars(select(Outbox)).one()
        assert (row.state, row.attempts) == ("pending", 1)
        assert "500" in row.last_error
        assert row.available_at > utcnow() - timedelta(seconds=1)
    drain(app, d)
    assert len(gitlab.pipelines) == 1
    assert [c.status for c in gitlab.calls_to("POST", "/projects/42/trigger/pipeline")] == [
        500, 500, 500, 201]
    assert read(app, Promotion, promotion_id).state == "triggered"


def test_rate_limit_waits_at_least_retry_after(app, gitlab, project):
    gitlab.fail("POST", "/projects/42/trigger/pipeline", status=429,
                headers={"Retry-After": "120"}, body={"message": "Retry later"})
    promote(app, project)
    dispatcher(app, gitlab).run_once()
    with session_for(app, write=False) as session:
        row = session.scalars(select(Outbox)).one()
    assert row.available_at >= utcnow() + timedelta(seconds=110)
    assert gitlab.pipelines == []


def test_unreachable_gitlab_is_retried(app, project):
    promote(app, project)
    dead = Dispatcher(lambda: session_for(app), GitLabClient("http://127.0.0.1:9"), FAST)
    dead.run_once()
    with session_for(app, write=False) as session:
        row = session.scalars(select(Outbox)).one()
    assert (row.state, row.attempts) == ("pending", 1)
    assert "connection refused" in row.last_error


def test_a_refusal_fails_the_promotion_with_gitlabs_message_in_api_and_audit(app, gitlab):
    with session_for(app) as session:
        unknown = make_project(session, path="group/gone", gitlab_id=99)
        promotion_id = make_promotion(session, unknown, make_release(session, unknown)).id
    dispatcher(app, gitlab).run_once()
    promotion = read(app, Promotion, promotion_id)
    assert promotion.state == "failed"
    assert "HTTP 404: 404 Not Found" in promotion.failure_message  # triggers.rb: not_found!
    with session_for(app, write=False) as session:
        row = session.scalars(select(Outbox)).one()
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "promotion.failed")
                                ).one()
    assert row.state == "failed" and row.attempts == 1
    assert entry.actor == "dispatcher"
    assert "HTTP 404: 404 Not Found" in entry.after["message"]
    assert gitlab.pipelines == []


def test_giving_up_after_max_attempts_fails_the_promotion(app, gitlab, project):
    gitlab.fail("POST", "/projects/42/trigger/pipeline", status=503, times=100)
    promotion_id = promote(app, project)
    drain(app, dispatcher(app, gitlab, replace(FAST, max_attempts=3)))
    promotion = read(app, Promotion, promotion_id)
    assert promotion.state == "failed"
    assert "after 3 attempts" in promotion.failure_message
    assert len(gitlab.calls) == 3


def test_a_promotion_already_claimed_by_a_pipeline_is_not_triggered_again(app, gitlab, project):
    promotion_id = promote(app, project)
    with session_for(app) as session:
        session.get(Promotion, promotion_id).pipeline_id = 555
    dispatcher(app, gitlab).run_once()
    assert gitlab.calls == []
    with session_for(app, write=False) as session:
        row = session.scalars(select(Outbox)).one()
    assert row.state == "sent" and "already runs" in row.last_error


def test_a_row_leased_by_a_dead_dispatcher_is_sent_after_the_lease(app, gitlab, project):
    promote(app, project)
    dead = dispatcher(app, gitlab, name="dead")
    with session_for(app) as session:
        assert dead.claim(session)  # claimed, then the process "died" before sending
    alive = dispatcher(app, gitlab, name="alive")
    assert alive.run_once() == 0, "the lease still holds"
    with session_for(app) as session:
        session.execute(update(Outbox).values(locked_until=utcnow() - timedelta(seconds=1)))
    assert alive.run_once() == 1
    assert len(gitlab.pipelines) == 1


def test_concurrent_dispatchers_send_each_row_once(app, gitlab, project):
    ids = [promote(app, project, n) for n in range(12)]
    dispatchers = [dispatcher(app, gitlab, replace(FAST, batch_size=3), name=f"d{i}")
                   for i in range(4)]
    barrier = threading.Barrier(len(dispatchers))

    def work(d):
        barrier.wait()
        while d.run_once():
            pass

    threads = [threading.Thread(target=work, args=(d,)) for d in dispatchers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    sent = sorted(int(p.variables["CD_PROMOTION_ID"]) for p in gitlab.pipelines)
    assert sent == ids


def test_answers_are_recorded_as_they_land_while_a_slow_call_is_out(app, gitlab, project):
    ids = [promote(app, project, n) for n in range(3)]
    gitlab.fail("POST", "/projects/*/trigger/pipeline", status=500, delay=4)  # the first call
    d = dispatcher(app, gitlab, replace(FAST, batch_size=3, concurrency=3))
    sending = threading.Thread(target=d.run_once)
    sending.start()

    def triggered():
        with session_for(app, write=False) as session:
            return session.scalars(select(Promotion.id).where(
                Promotion.id.in_(ids), Promotion.pipeline_id.is_not(None))).all()

    deadline = time.monotonic() + 3.5  # the slow call answers after 4 s
    while len(triggered()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    recorded, slow_call_still_out = len(triggered()) == 2, sending.is_alive()
    sending.join(30)
    assert recorded and slow_call_still_out, "the two answers waited for the slow call"
    slow = next(i for i in ids if i not in triggered())
    with session_for(app, write=False) as session:
        states = dict(session.execute(select(Outbox.promotion_id, Outbox.state)).all())
    assert states == {**{i: "sent" for i in ids}, slow: "pending"}  # the 500 is retried


def test_answers_recorded_together_are_recorded_as_each_alone_would_be(app, project):
    """The dispatcher records the triggers that landed together at once: the promotions, the
    pipelines they keep and the audit log end as when each is recorded by itself."""
    def scenario(record, first):
        with session_for(app) as session:
            fresh, claimed, again = (make_promotion(session, project,
                                                    make_release(session, project, n=n)).id
                                     for n in range(first, first + 3))
            session.get(Promotion, claimed).pipeline_id = 555  # the gate let pipeline 555 in
            session.get(Promotion, again).pipeline_id = 77  # its hook came first
        pipelines = [(fresh, 1, "http://gitlab/p/1"), (claimed, 2, "http://gitlab/p/2"),
                     (again, 77, "http://gitlab/p/77")]
        with session_for(app) as session:
            entries = session.scalar(select(func.count()).select_from(AuditEntry))
            record(session, pipelines)
        with session_for(app, write=False) as session:
            promotions = [session.get(Promotion, p) for p, _, _ in pipelines]
            audit = session.scalars(select(AuditEntry).order_by(AuditEntry.id)
                                    .offset(entries)).all()
            return ([(p.state, p.pipeline_id, p.pipeline_url) for p in promotions],
                    [(e.action, e.after["state"], e.after["pipeline_id"]) for e in audit])

    def alone(session, pipelines):
        for promotion_id, pipeline_id, url in pipelines:
            mark_triggered(session, promotion_id, pipeline_id, url, ACTOR)

    def together(session, pipelines):
        mark_triggered_many(session, pipelines, ACTOR)

    assert scenario(together, 0) == scenario(alone, 3) == (
        [("triggered", 1, "http://gitlab/p/1"), ("triggered", 555, None),
         ("triggered", 77, "http://gitlab/p/77")],
        [("promotion.triggered", "triggered", None), ("promotion.triggered", "triggered", 555),
         ("promotion.triggered", "triggered", 77)])
    with session_for(app, write=False) as session:
        assert audit_service.verify(session).problem is None


def test_a_promotion_triggered_after_it_was_read_is_recorded_without_a_second_entry(
        app, project, monkeypatch):
    """Another writer (the pipeline's hook) moves the promotion to triggered between the
    read and the move: recording the pipeline is then a no-op for its state, as re-doing a
    move is, and writes no second audit entry."""
    promotion_id = promote(app, project)
    move_many = promotions_store.move_many

    def moved_first(session, ids, sources, values):
        session.execute(update(Promotion).where(Promotion.id.in_(ids))
                        .values(state="triggered"))
        return move_many(session, ids, sources, values)

    monkeypatch.setattr(promotions_store, "move_many", moved_first)
    with session_for(app) as session:
        entries = session.scalar(select(func.count()).select_from(AuditEntry))
        promotion = mark_triggered(session, promotion_id, 9, "http://gitlab/p/9", ACTOR)
        assert (promotion.state, promotion.pipeline_id) == ("triggered", 9)
    with session_for(app, write=False) as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == entries


def test_other_kinds_reach_their_endpoints(app, gitlab):
    gitlab.add_deployment(42, 9, environment="production", job_id=7, sha="a" * 40)
    gitlab.add_commit(42, "a" * 40, ref="feature")
    gitlab.add_merge_request(42, 12, sha="a" * 40)
    gitlab.add_status_check(42, 5)
    with session_for(app) as session:
        enqueue(session, "status_check_response", {"gitlab_project_id": 42, "mr_iid": 12,
                                                   "sha": "a" * 40, "check_id": 5,
                                                   "status": "failed"})
        enqueue(session, "commit_status", {"gitlab_project_id": 42, "sha": "a" * 40,
                                           "ref": "feature", "state": "success"})
        enqueue(session, "deployment_approval", {"gitlab_project_id": 42, "deployment_id": 9,
                                                 "comment": "ok"})
        enqueue(session, "play_job", {"gitlab_project_id": 42, "job_id": 7})
    dispatcher(app, gitlab).run_once()
    assert [(c.method, c.path, c.status) for c in gitlab.calls] == [
        ("POST", "/projects/42/merge_requests/12/status_check_responses", 201),
        ("POST", f"/projects/42/statuses/{'a' * 40}", 201),
        ("POST", "/projects/42/deployments/9/approval", 201),
        ("GET", "/projects/42/jobs/7", 200),  # played only while it is manual
        ("POST", "/projects/42/jobs/7/play", 200),
    ]


def test_unknown_kind_is_refused_when_enqueued(app):
    with session_for(app) as session, pytest.raises(ValueError, match="unknown outbox kind"):
        enqueue(session, "send_email", {})


def test_every_kind_the_outbox_accepts_has_a_handler():
    assert set(HANDLERS) == set(KINDS)


@pytest.mark.parametrize("attempt", [1, 2, 5, 30])
def test_retry_delay_grows_is_capped_and_jittered(attempt):
    settings = DispatcherSettings(backoff_initial=1.0, backoff_max=60.0)
    delays = {retry_delay(attempt, None, settings) for _ in range(20)}
    assert all(0 <= d <= 61 for d in delays)
    assert len(delays) > 1, "jitter spreads retries"
    assert retry_delay(attempt, 90.0, settings) >= 90.0


def test_settings_name_the_variable_on_bad_numbers():
    with pytest.raises(ValueError, match="PROMOTION_DISPATCHER_LEASE_SECONDS"):
        DispatcherSettings.from_config({"DISPATCHER_LEASE_SECONDS": "soon"})


def test_the_service_refuses_to_start_a_dispatcher_thread_without_gitlab_url(database_url):
    from promotion_service import create_app
    from promotion_service.config import ConfigError

    with pytest.raises(ConfigError, match="PROMOTION_GITLAB_URL is not set"):
        create_app({"DATABASE_URL": database_url, "DISPATCHER_THREAD": "1"})
