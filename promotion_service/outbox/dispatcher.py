"""Sends the outbox to GitLab: each row claimed by one dispatcher, retried until it lands or fails.

Rows are written by the service in the same transaction as what caused them (a promotion, a
status-check answer), so nothing is lost when the process dies between commit and send: the
next dispatcher (a thread of any service instance, or `promotion-service worker`) picks the
row up once its lease has expired.

Claiming is store.outbox.claim's (SKIP LOCKED on PostgreSQL, a conditional UPDATE per row
elsewhere). Transient GitLab errors are retried with exponential backoff and jitter
(tenacity's wait strategy, honouring Retry-After); a terminal error (a 4xx that cannot
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
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy.orm import Session
from tenacity import RetryCallState, wait_exponential, wait_random_exponential

from ..db import begin_write, is_postgres, session_for, write_transaction
from ..db.models import Outbox, utcnow
from ..errors import Conflict
from ..gitlab.client import GitLabClient, client_from_config
from ..gitlab.errors import GitLabError, TerminalGitLabError
from ..services.promotion import mark_failed
from ..store import outbox
from .handlers import ACTOR, HANDLERS, Handler
from .settings import DispatcherSettings

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class _Answer:
    """What GitLab returned for a row's call, still to be recorded (with the row as it was
    read for the call: recording reads it no more)."""

    row: Outbox
    handler: Handler
    attempts: int
    result: Any

    @property
    def row_id(self) -> int:
        return self.row.id

    @property
    def kind(self) -> str:
        return self.row.kind


class Dispatcher:
    """Claims due outbox rows and sends them; safe to run many at once."""

    def __init__(self, session_factory: Callable[[], Any], gitlab: GitLabClient,
                 settings: DispatcherSettings, *, name: str | None = None) -> None:
        self.session_factory = session_factory  # a context manager yielding a Session
        self.gitlab = gitlab
        self.settings = settings
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def claim(self, session: Session) -> list[int]:
        """Lease up to batch_size due rows to this dispatcher; return their ids.

        On PostgreSQL without the writers' lock: SKIP LOCKED never waits for a row lock, so
        it cannot deadlock, and a claim writes no audit entry.
        """
        if not is_postgres(session):
            begin_write(session)
        ids = outbox.claim(session, self.name, lease_seconds=self.settings.lease_seconds,
                           batch_size=self.settings.batch_size)
        session.commit()
        return ids

    def run_once(self) -> int:
        """Claim and send one batch; return how many rows were handled.

        Rows of a kind that may go in any order (triggers) go out ``concurrency`` at a time,
        and what GitLab answered is recorded while the others are still in flight: each
        write transaction records every answer that landed since the last one, so the
        writers' lock is taken once per group, not per row, and a row is recorded moments
        after its call (well within the lease it was sent under). Any other row goes alone
        and in order. Each row is read with its lease renewed (one statement) in its own
        session, and sent outside any transaction; a group's answers are recorded in a few
        statements for them all (each handler's ``record``).
        """
        with self.session_factory() as session:
            ids = self.claim(session)
            kinds = outbox.kinds(session, ids) if ids else {}
        if not ids:
            return 0
        with ThreadPoolExecutor(min(self.settings.concurrency, len(ids)),
                                thread_name_prefix="outbox-send") as pool:
            for run in self._runs(ids, kinds):
                in_flight = {pool.submit(self._call, row_id) for row_id in run}
                while in_flight:
                    landed, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    self._record([answer for answer in map(self._answer, landed)
                                  if answer is not None])
        return len(ids)

    def _answer(self, future: Future) -> _Answer | None:
        """A call's answer; a call that broke leaves its row leased (taken again after the
        lease) without keeping the others of its group from being recorded."""
        error = future.exception()
        if error is None:
            return future.result()
        log.error("dispatcher %s: sending a row failed: %s", self.name, error, exc_info=error)
        return None

    @staticmethod
    def _runs(ids: list[int], kinds: dict[int, str]) -> list[list[int]]:
        """The batch in order, with runs of rows that may go in any order grouped."""
        runs: list[list[int]] = []
        grouping = False  # is the last run a group of any-order rows?
        for row_id in ids:
            handler = HANDLERS.get(kinds.get(row_id, ""))
            any_order = handler is not None and handler.in_any_order
            if any_order and grouping:
                runs[-1].append(row_id)
            else:
                runs.append([row_id])
            grouping = any_order
        return runs

    def _call(self, row_id: int) -> _Answer | None:
        """Send one row; GitLab's answer to record, or None when the row is settled here."""
        with self.session_factory() as session:
            row = self._renew(session, row_id)
            if row is None:
                return None
            handler = HANDLERS.get(row.kind)
            attempts = row.attempts + 1
            try:
                if handler is None:
                    raise TerminalGitLabError(f"no handler for outbox kind {row.kind!r}")
                skipped = handler.skip(session, row)
                if skipped is not None:
                    session.commit()  # the renewal; the write takes a transaction of its own
                    begin_write(session)
                    self._sent(session, row_id, row.kind, attempts, f"skipped: {skipped}")
                    return None
                payload = dict(row.payload)
                session.commit()  # hold no transaction (nor SQLite's write lock) during the call
                return _Answer(row, handler, attempts,
                               handler.send(self.gitlab, self.settings, payload))
            except GitLabError as e:
                session.rollback()
                outcome = self._settle(session, handler, row_id, e)
                if outcome is None:
                    self._failed_attempt(session, row_id, attempts, e)
                else:
                    self._sent(session, row_id, row.kind, attempts, outcome)
                return None
            except Exception as e:  # a bug or a bad payload: keep the row, retry later, log loudly
                session.rollback()
                log.exception("outbox %s failed unexpectedly", row_id)
                self._failed_attempt(session, row_id, attempts, GitLabError(
                    f"internal error: {type(e).__name__}: {e}"))
                return None

    def _renew(self, session: Session, row_id: int) -> Outbox | None:
        """The row, read with a full lease for the call and its recording (a batch may have
        taken a while) in one statement; None when this dispatcher no longer holds it.

        On PostgreSQL the renewal and the reads before the call run in autocommit: no BEGIN
        and COMMIT round trips around them.
        """
        if not is_postgres(session):
            begin_write(session)
        elif not session.in_transaction():
            session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        row = outbox.renew(session, row_id, self.name, self.settings.lease_seconds)
        if row is None:
            session.rollback()
            lost = outbox.get(session, row_id)
            if lost is not None and lost.state == "pending" and lost.locked_by == self.name:
                log.warning("outbox %s: lease ran out before sending; left to whoever "
                            "holds it now", row_id)
        return row

    def _record(self, answers: list[_Answer]) -> None:
        """Record GitLab's answers and mark the rows sent, in one write transaction.

        The whole batch is tried first; if any row's recording raises, the batch is rolled
        back and recorded again a row at a time (a savepoint each), so the other rows still
        land and only the troubled one is retried later.
        """
        if not answers:
            return
        try:
            with self.session_factory() as session, write_transaction(session):
                sent = list(zip(answers, self._recorded(session, answers), strict=True))
                outbox.mark_sent(session, self.name, [
                    (answer.row_id, answer.attempts, outcome) for answer, outcome in sent])
            for answer, outcome in sent:
                self._log_sent(answer.row_id, answer.kind, answer.attempts, outcome)
            return
        except Exception:  # found again below, row by row
            log.warning("outbox: recording a batch failed; recording its rows one by one")
        troubled: list[tuple[_Answer, Exception]] = []
        with self.session_factory() as session, write_transaction(session):
            for answer in answers:
                try:
                    with session.begin_nested():
                        self._record_one(session, answer)
                except Exception as e:  # kept, retried below, logged
                    troubled.append((answer, e))
        for answer, error in troubled:
            log.error("outbox %s: recording the answer failed: %s", answer.row_id, error,
                      exc_info=error)
            with self.session_factory() as session:
                self._failed_attempt(session, answer.row_id, answer.attempts, GitLabError(
                    f"internal error: {type(error).__name__}: {error}"))

    @staticmethod
    def _recorded(session: Session, answers: list[_Answer]) -> list[str | None]:
        """Record what GitLab answered, each kind's answers at once; for each answer, what
        happened beside (None: nothing)."""
        outcomes: dict[int, str | None] = {}
        for kind in dict.fromkeys(answer.kind for answer in answers):
            group = [answer for answer in answers if answer.kind == kind]
            recorded = group[0].handler.record(session, [(a.row, a.result) for a in group])
            outcomes.update(zip((a.row_id for a in group), recorded, strict=True))
        return [outcomes[answer.row_id] for answer in answers]

    def _record_one(self, session: Session, answer: _Answer) -> None:
        [outcome] = self._recorded(session, [answer])
        self._sent(session, answer.row_id, answer.kind, answer.attempts, outcome, commit=False)

    def _sent(self, session: Session, row_id: int, kind: str, attempts: int,
              outcome: str | None, *, commit: bool = True) -> None:
        outbox.mark_sent(session, self.name, [(row_id, attempts, outcome)])
        if commit:
            session.commit()
        self._log_sent(row_id, kind, attempts, outcome)

    @staticmethod
    def _log_sent(row_id: int, kind: str, attempts: int, outcome: str | None) -> None:
        log.info("outbox %s (%s) sent after %d attempt(s)%s", row_id, kind, attempts,
                 f": {outcome}" if outcome else "")

    @staticmethod
    def _settle(session: Session, handler: Handler | None, row_id: int,
                error: GitLabError) -> str | None:
        """A refusal that leaves nothing to send: the outcome (in a write transaction)."""
        if handler is None or error.transient:
            return None
        begin_write(session)
        row = outbox.get(session, row_id)
        outcome = handler.settle(session, row, error) if row is not None else None
        if outcome is None:
            session.rollback()
        return outcome

    def _failed_attempt(self, session: Session, row_id: int, attempts: int,
                        error: GitLabError) -> None:
        give_up = not error.transient or attempts >= self.settings.max_attempts
        # A retry only moves the row's own lease (as a claim does): on PostgreSQL it needs
        # no writers' lock; failing the row fails its promotion too, an audited write.
        if give_up or not is_postgres(session):
            begin_write(session)
        row = outbox.get(session, row_id)
        if give_up:
            message = str(error) if not error.transient else (
                f"GitLab still failing after {attempts} attempts: {error}")
            outbox.mark_failed(session, row_id, self.name, attempts, message)
            if row is not None and row.promotion_id is not None:
                self._fail_promotion(session, row.promotion_id, message)
            session.commit()
            log.error("outbox %s (%s) failed: %s", row_id, row.kind if row else "?", message)
            return
        delay = retry_delay(attempts, error.retry_after, self.settings)
        outbox.retry_at(session, row_id, self.name, attempts, str(error),
                        utcnow() + timedelta(seconds=delay))
        session.commit()
        log.warning("outbox %s: attempt %d failed (%s); retrying in %.1fs",
                    row_id, attempts, error, delay)

    @staticmethod
    def _fail_promotion(session: Session, promotion_id: int, message: str) -> None:
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
    settings = DispatcherSettings.from_config(app.config)
    gitlab = client_from_config(app.config, timeout=settings.gitlab_timeout)
    # read sessions: each write (claim, record, retry) begins its own write transaction
    return Dispatcher(lambda: session_for(app, write=False), gitlab, settings, name=name)
