"""Sends the outbox to GitLab: each row claimed by one dispatcher, retried until it lands or fails.

Rows are written by the service in the same transaction as what caused them (a promotion, a
status-check answer), so nothing is lost when the process dies between commit and send: the
next dispatcher (a thread of any service instance, or `promotion-service worker`) picks the
row up once its lease has expired.

Claiming: on PostgreSQL ``SELECT ... FOR UPDATE SKIP LOCKED`` (concurrent dispatchers skip each
other's rows); elsewhere one conditional ``UPDATE ... WHERE locked_until < now`` per row, which
only one dispatcher can win. Transient GitLab errors are retried with exponential backoff and
jitter (tenacity's wait strategy, honouring Retry-After); a terminal error (a 4xx that cannot
succeed) fails the row and, for a trigger, its promotion, with GitLab's message.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session
from tenacity import RetryCallState, wait_exponential, wait_random_exponential

from .config import ConfigError, is_on
from .db import begin_write
from .domain.actor import Actor
from .domain.states import PromotionState
from .gitlab import GitLabClient, GitLabError, TerminalGitLabError
from .models import Outbox, Promotion, utcnow

log = logging.getLogger(__name__)

ACTOR = Actor.system("dispatcher")


@dataclass(frozen=True)
class DispatcherSettings:
    """How the dispatcher behaves; read from the app config (PROMOTION_* variables)."""

    trigger_ref: str = "main"
    trigger_token: str | None = None
    lease_seconds: float = 60.0
    batch_size: int = 10
    max_attempts: int = 20
    backoff_initial: float = 1.0
    backoff_max: float = 300.0
    poll_seconds: float = 1.0
    gitlab_timeout: float = 10.0

    @classmethod
    def from_config(cls, config: Any) -> DispatcherSettings:
        """Build from Flask config; a bad number names its PROMOTION_ variable."""
        def number(key: str, default: float, kind: type = float) -> Any:
            raw = config.get(key)
            if raw in (None, ""):
                return default
            try:
                value = kind(raw)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"PROMOTION_{key} must be a {kind.__name__} number, not {raw!r}"
                ) from None
            if value <= 0:
                raise ConfigError(f"PROMOTION_{key} must be greater than 0, not {raw!r}")
            return value

        return cls(
            trigger_ref=config.get("GITLAB_TRIGGER_REF") or "main",
            trigger_token=config.get("GITLAB_TRIGGER_TOKEN") or None,
            lease_seconds=number("DISPATCHER_LEASE_SECONDS", cls.lease_seconds),
            batch_size=number("DISPATCHER_BATCH_SIZE", cls.batch_size, int),
            max_attempts=number("DISPATCHER_MAX_ATTEMPTS", cls.max_attempts, int),
            backoff_initial=number("DISPATCHER_BACKOFF_SECONDS", cls.backoff_initial),
            backoff_max=number("DISPATCHER_BACKOFF_MAX_SECONDS", cls.backoff_max),
            poll_seconds=number("DISPATCHER_POLL_SECONDS", cls.poll_seconds),
            gitlab_timeout=number("GITLAB_TIMEOUT_SECONDS", cls.gitlab_timeout),
        )


def retry_delay(attempt: int, retry_after: float | None, settings: DispatcherSettings) -> float:
    """Seconds before attempt ``attempt + 1``: exponential, jittered, at least Retry-After.

    Half the exponential step is fixed and half random ("equal jitter"), so retries of many
    rows spread out even once the cap is reached.
    """
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    half_initial, half_max = settings.backoff_initial / 2, settings.backoff_max / 2
    wait = wait_exponential(multiplier=half_initial, max=half_max) + wait_random_exponential(
        multiplier=half_initial, max=half_max)
    delay = wait(state)
    if retry_after is not None:
        delay = max(delay, min(retry_after, 3600.0))
    return delay


# -- what each kind of row does -----------------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    """How one kind of outbox row is sent: the GitLab call runs outside any transaction."""

    send: Callable[[Dispatcher, dict[str, Any]], Any]
    skip: Callable[[Session, Outbox], str | None] = lambda session, row: None
    record: Callable[[Session, Outbox, Any], str | None] = lambda session, row, result: None


KINDS: dict[str, Kind] = {}


def _project(payload: dict[str, Any]) -> int | str:
    return payload.get("gitlab_project_id") or payload["project_path"]


def _trigger_skip(session: Session, row: Outbox) -> str | None:
    promotion = session.get(Promotion, row.promotion_id) if row.promotion_id else None
    if promotion is None:
        return None
    if promotion.pipeline_id is not None:
        return f"pipeline {promotion.pipeline_id} already runs this promotion; not triggered again"
    if PromotionState(promotion.state).is_terminal:
        return f"promotion is {promotion.state}; not triggered"
    return None


def _trigger_send(dispatcher: Dispatcher, payload: dict[str, Any]) -> Any:
    return dispatcher.gitlab.trigger_pipeline(
        _project(payload),
        payload.get("ref") or dispatcher.settings.trigger_ref,
        payload.get("variables") or {},
        trigger_token=dispatcher.settings.trigger_token,
    )


def _trigger_record(session: Session, row: Outbox, pipeline: Any) -> str | None:
    """Record the pipeline on its promotion, unless another pipeline claimed it first."""
    from .errors import Conflict
    from .store.promotions import mark_triggered

    if row.promotion_id is None:
        return None
    try:
        promotion = mark_triggered(session, row.promotion_id, pipeline.id, pipeline.web_url,
                                   ACTOR)
    except Conflict as e:
        log.warning("promotion %s: pipeline %s not recorded: %s", row.promotion_id, pipeline.id, e)
        return f"pipeline {pipeline.id} created but not recorded: {e}"
    if promotion.pipeline_id != pipeline.id:
        # The gate (or a pipeline hook) let another pipeline claim it: that one deploys.
        log.warning("promotion %s: pipeline %s created, but pipeline %s claimed it",
                    row.promotion_id, pipeline.id, promotion.pipeline_id)
        return (f"pipeline {pipeline.id} created, but pipeline {promotion.pipeline_id} "
                "already claimed the promotion; its gate call will be refused")
    return None


KINDS["trigger_pipeline"] = Kind(send=_trigger_send, skip=_trigger_skip, record=_trigger_record)
KINDS["status_check_response"] = Kind(
    send=lambda d, p: d.gitlab.answer_status_check(
        _project(p), int(p["mr_iid"]), sha=p["sha"], check_id=int(p["check_id"]),
        status=p["status"]),
)
KINDS["commit_status"] = Kind(
    send=lambda d, p: d.gitlab.set_commit_status(
        _project(p), p["sha"], p["state"], ref=p.get("ref"),
        description=p.get("description") or "", target_url=p.get("target_url")),
)
KINDS["play_job"] = Kind(send=lambda d, p: d.gitlab.play_job(_project(p), int(p["job_id"])))
KINDS["deployment_approval"] = Kind(
    send=lambda d, p: d.gitlab.approve_deployment(
        _project(p), int(p["deployment_id"]), status=p.get("status", "approved"),
        comment=p.get("comment"), represented_as=p.get("represented_as")),
)


def enqueue(session: Session, kind: str, payload: dict[str, Any],
            promotion_id: int | None = None) -> Outbox:
    """Add a row for the dispatcher, in the caller's transaction."""
    if kind not in KINDS:
        raise ValueError(f"unknown outbox kind {kind!r}")
    row = Outbox(kind=kind, payload=payload, promotion_id=promotion_id, state="pending",
                 attempts=0, available_at=utcnow())
    session.add(row)
    return row


# -- the dispatcher ----------------------------------------------------------------------------
class Dispatcher:
    """Claims due outbox rows and sends them; safe to run many at once."""

    def __init__(self, session_factory: Callable[[], Any], gitlab: GitLabClient,
                 settings: DispatcherSettings, *, name: str | None = None) -> None:
        self.session_factory = session_factory  # a context manager yielding a Session
        self.gitlab = gitlab
        self.settings = settings
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def claim(self, session: Session) -> list[int]:
        """Lease up to batch_size due rows to this dispatcher; return their ids."""
        now = utcnow()
        until = now + timedelta(seconds=self.settings.lease_seconds)
        due = (
            select(Outbox.id)
            .where(Outbox.state == "pending", Outbox.available_at <= now,
                   or_(Outbox.locked_until.is_(None), Outbox.locked_until < now))
            .order_by(Outbox.available_at, Outbox.id)
            .limit(self.settings.batch_size)
        )
        if session.get_bind().dialect.name == "postgresql":
            ids = list(session.scalars(due.with_for_update(skip_locked=True)))
            if ids:
                session.execute(update(Outbox).where(Outbox.id.in_(ids))
                                .values(locked_by=self.name, locked_until=until))
            session.commit()
            return ids
        claimed = []
        for row_id in session.scalars(due).all():
            won = session.execute(
                update(Outbox)
                .where(Outbox.id == row_id, Outbox.state == "pending",
                       or_(Outbox.locked_until.is_(None), Outbox.locked_until < now))
                .values(locked_by=self.name, locked_until=until)
            ).rowcount
            if won:
                claimed.append(row_id)
        session.commit()
        return claimed

    def run_once(self) -> int:
        """Claim and send one batch; return how many rows were handled."""
        with self.session_factory() as session:
            ids = self.claim(session)
        for row_id in ids:
            with self.session_factory() as session:
                self._send(session, row_id)
        return len(ids)

    def _mine(self, row_id: int) -> Any:
        return update(Outbox).where(
            Outbox.id == row_id, Outbox.locked_by == self.name, Outbox.state == "pending"
        )

    def _send(self, session: Session, row_id: int) -> None:
        row = session.get(Outbox, row_id)
        if row is None or row.state != "pending" or row.locked_by != self.name:
            return
        kind = KINDS.get(row.kind)
        attempts = row.attempts + 1
        try:
            if kind is None:
                raise TerminalGitLabError(f"no handler for outbox kind {row.kind!r}")
            skipped = kind.skip(session, row)
            if skipped is None:
                payload = dict(row.payload)
                session.commit()  # hold no transaction (nor SQLite's write lock) during the call
                result = kind.send(self, payload)
                begin_write(session)
                row = session.get(Outbox, row_id)
                outcome = kind.record(session, row, result)
            else:
                outcome = f"skipped: {skipped}"
        except GitLabError as e:
            session.rollback()
            self._failed_attempt(session, row_id, attempts, e)
            return
        except Exception as e:  # a bug or a bad payload: keep the row, retry later, log loudly
            session.rollback()
            log.exception("outbox %s failed unexpectedly", row_id)
            self._failed_attempt(session, row_id, attempts, GitLabError(
                f"internal error: {type(e).__name__}: {e}"))
            return
        session.execute(self._mine(row_id).values(
            state="sent", sent_at=utcnow(), attempts=attempts, locked_by=None, locked_until=None,
            last_error=None if outcome is None else outcome[:2000]))
        session.commit()
        log.info("outbox %s (%s) sent after %d attempt(s)%s", row_id, row.kind, attempts,
                 f": {outcome}" if outcome else "")

    def _failed_attempt(self, session: Session, row_id: int, attempts: int,
                        error: GitLabError) -> None:
        begin_write(session)
        row = session.get(Outbox, row_id)
        give_up = not error.transient or attempts >= self.settings.max_attempts
        if give_up:
            message = str(error) if not error.transient else (
                f"GitLab still failing after {attempts} attempts: {error}")
            session.execute(self._mine(row_id).values(
                state="failed", attempts=attempts, last_error=message[:2000],
                locked_by=None, locked_until=None))
            if row is not None and row.promotion_id is not None:
                self._fail_promotion(session, row.promotion_id, message)
            session.commit()
            log.error("outbox %s (%s) failed: %s", row_id, row.kind if row else "?", message)
            return
        delay = retry_delay(attempts, error.retry_after, self.settings)
        session.execute(self._mine(row_id).values(
            attempts=attempts, last_error=str(error)[:2000], locked_by=None, locked_until=None,
            available_at=utcnow() + timedelta(seconds=delay)))
        session.commit()
        log.warning("outbox %s: attempt %d failed (%s); retrying in %.1fs",
                    row_id, attempts, error, delay)

    @staticmethod
    def _fail_promotion(session: Session, promotion_id: int, message: str) -> None:
        from .errors import Conflict
        from .store.promotions import mark_failed

        try:
            mark_failed(session, promotion_id,
                        f"could not start the deploy pipeline in GitLab: {message}", ACTOR)
        except Conflict as e:
            log.warning("promotion %s not marked failed: %s", promotion_id, e)

    def run(self, stop: threading.Event, *, periodic: Callable[[], None] | None = None,
            periodic_seconds: float = 10.0) -> None:
        """Loop until ``stop`` is set: send what is due, then wait a poll interval."""
        next_periodic = 0.0
        while not stop.is_set():
            busy = 0
            try:
                busy = self.run_once()
                if periodic is not None and time.monotonic() >= next_periodic:
                    next_periodic = time.monotonic() + periodic_seconds
                    periodic()
            except Exception:  # the database may be briefly away; never let the loop die
                log.exception("dispatcher %s: iteration failed", self.name)
            if not busy:
                stop.wait(self.settings.poll_seconds)


def from_app(app: Flask, *, name: str | None = None) -> Dispatcher:
    """A dispatcher using the app's database and GitLab settings."""
    from .db import session_for

    settings = DispatcherSettings.from_config(app.config)
    gitlab = client_from_config(app.config, timeout=settings.gitlab_timeout)
    return Dispatcher(lambda: session_for(app), gitlab, settings, name=name)


def client_from_config(config: Any, *, timeout: float = 10.0) -> GitLabClient:
    """The GitLab client configured by PROMOTION_GITLAB_URL / PROMOTION_GITLAB_TOKEN."""
    url = config.get("GITLAB_URL")
    if not url:
        raise ConfigError("PROMOTION_GITLAB_URL is not set; set it to your GitLab's base URL, "
                         "e.g. https://gitlab.example.com")
    return GitLabClient(url, config.get("GITLAB_TOKEN") or None, timeout=timeout)


def init_app(app: Flask) -> None:
    """Start an in-process dispatcher thread per process when PROMOTION_DISPATCHER_THREAD=1.

    The configuration is checked now (a mistake stops the service from starting); the thread
    starts with the first request each process serves (health probes count), so that it runs
    in every forked gunicorn worker and never in the master.
    """
    if not is_on(app.config.get("DISPATCHER_THREAD")):
        return
    from_app(app)  # validate PROMOTION_GITLAB_* and PROMOTION_DISPATCHER_* now
    state = {"pid": None}

    @app.before_request
    def _ensure_dispatcher_thread() -> None:
        if state["pid"] == os.getpid():
            return
        with _thread_lock:
            if state["pid"] == os.getpid():
                return
            state["pid"] = os.getpid()
            start_thread(app)


_thread_lock = threading.Lock()


def start_thread(app: Flask) -> tuple[threading.Thread, threading.Event]:
    """Run a dispatcher in a daemon thread of this process; set the event to stop it."""
    from .worker import periodic_seconds, periodic_tasks

    stop = threading.Event()
    dispatcher = from_app(app)
    thread = threading.Thread(
        target=dispatcher.run, args=(stop,),
        kwargs={"periodic": periodic_tasks(app), "periodic_seconds": periodic_seconds(app)},
        name="outbox-dispatcher", daemon=True,
    )
    thread.start()
    log.info("dispatcher thread %s started", dispatcher.name)
    return thread, stop
