"""Promotions: rows, conditional state moves, and promotions with their release and
environment names (one query, however many rows)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Row, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from ..db.listing import Extended, Listing
from ..db.models import Environment, Project, Promotion, Release, ReleaseMember, utcnow
from ..domain.states import IN_FLIGHT, PromotionState

_IN_FLIGHT = [s.value for s in IN_FLIGHT]
_NAMED = (select(Promotion, Release, Environment.name)
          .join(Release, Release.id == Promotion.release_id)
          .join(Environment, Environment.id == Promotion.environment_id))


def get(session: Session, promotion_id: int, *, fresh: bool = False) -> Promotion | None:
    """The promotion with this id (re-read from the database with fresh=True)."""
    return session.get(Promotion, promotion_id, populate_existing=fresh)


_ROW = select(Promotion.id, Promotion.release_id, Promotion.environment_id, Promotion.state,
              Promotion.kind, Promotion.pipeline_id, Promotion.record_id)


def get_row(conn: Session | Connection, promotion_id: int) -> Any:
    """The promotion's columns the gate reads, through any connection (no ORM object)."""
    conn = conn.connection() if isinstance(conn, Session) else conn
    return conn.execute(_ROW.where(Promotion.id == promotion_id)).first()


def in_flight(session: Session, release_id: int, environment_id: int) -> Promotion | None:
    """The one promotion of the release into the environment still on its way, if any."""
    return session.scalar(select(Promotion).where(
        Promotion.release_id == release_id, Promotion.environment_id == environment_id,
        Promotion.state.in_(_IN_FLIGHT)))


def latest(session: Session, release_id: int, environment_id: int,
           state: PromotionState | None = None) -> Promotion | None:
    """The release's latest promotion into the environment (in that state, if given)."""
    stmt = select(Promotion).where(Promotion.release_id == release_id,
                                   Promotion.environment_id == environment_id)
    if state is not None:
        stmt = stmt.where(Promotion.state == state.value)
    return session.scalar(stmt.order_by(Promotion.id.desc()).limit(1))


def count_of(session: Session, release_id: int, environment_id: int) -> int:
    """How many promotions of the release into the environment there have been."""
    return session.scalar(select(func.count(Promotion.id)).where(
        Promotion.release_id == release_id, Promotion.environment_id == environment_id)) or 0


def add(session: Session, *, release_id: int, environment_id: int, kind: str,
        requested_by: str, reason: str | None, record_id: str | None = None) -> Promotion:
    """A new requested promotion (flushed: the database keeps one in flight per pair)."""
    promotion = Promotion(release_id=release_id, environment_id=environment_id, kind=kind,
                          state=PromotionState.REQUESTED.value, requested_by=requested_by,
                          reason=reason, record_id=record_id)
    session.add(promotion)
    session.flush()
    return promotion


def move(session: Session, promotion_id: int, sources: Iterable[PromotionState],
         values: dict[str, Any]) -> bool:
    """Set the values only if the promotion is in one of the source states; True if moved."""
    return bool(session.execute(
        update(Promotion)
        .where(Promotion.id == promotion_id,
               Promotion.state.in_([s.value for s in sources]))
        .values(**values).execution_options(synchronize_session=False)).rowcount)


def fail_in_flight(session: Session, release_ids: list[int], message: str) -> list[int]:
    """Fail every promotion of these releases still on its way; their ids."""
    ids = list(session.scalars(select(Promotion.id).where(
        Promotion.release_id.in_(release_ids), Promotion.state.in_(_IN_FLIGHT))))
    if ids:
        session.execute(update(Promotion).where(Promotion.id.in_(ids),
                                                Promotion.state.in_(_IN_FLIGHT))
                        .values(state=PromotionState.FAILED.value, failure_message=message,
                                updated_at=utcnow())
                        .execution_options(synchronize_session=False))
    return ids


def get_many(session: Session, promotion_ids: list[int], *, fresh: bool = False
             ) -> list[Promotion]:
    """The promotions with these ids, in one query (re-read from the database with fresh=True;
    otherwise one the session already holds keeps what it read)."""
    return list(session.scalars(select(Promotion).where(Promotion.id.in_(promotion_ids)),
                                execution_options={"populate_existing": fresh}))


def move_many(session: Session, promotion_ids: list[int], sources: Iterable[PromotionState],
              values: dict[str, Any]) -> list[Promotion]:
    """Set the values on those of the promotions in one of the source states, in one
    statement; those moved, as they are now."""
    if not promotion_ids:
        return []
    return list(session.scalars(
        update(Promotion)
        .where(Promotion.id.in_(promotion_ids),
               Promotion.state.in_([s.value for s in sources]))
        .values(**values).returning(Promotion),
        execution_options={"populate_existing": True, "synchronize_session": False}))


def record_pipelines(session: Session, pipelines: list[tuple[int, int | None, str | None]]
                     ) -> None:
    """Keep the first pipeline that ran each promotion, and the URL of that one only:
    (promotion id, pipeline id, pipeline URL), in order, in one statement (executemany)."""
    if not pipelines:
        return
    table = Promotion.__table__
    session.connection().execute(
        update(table).where(table.c.id == bindparam("promotion"),
                            or_(table.c.pipeline_id.is_(None),
                                table.c.pipeline_id == bindparam("pipeline")))
        .values(pipeline_id=bindparam("pipeline"), pipeline_url=bindparam("url")),
        [{"promotion": promotion_id, "pipeline": pipeline_id, "url": url}
         for promotion_id, pipeline_id, url in pipelines])


def claim(session: Session, promotion_id: int, pipeline_id: int) -> bool:
    """The pipeline claims the promotion unless another one did first; True if it is its."""
    return bool(session.execute(
        update(Promotion).where(Promotion.id == promotion_id,
                                (Promotion.pipeline_id.is_(None))
                                | (Promotion.pipeline_id == pipeline_id))
        .values(pipeline_id=pipeline_id).execution_options(synchronize_session=False)).rowcount)


def pipeline_of(session: Session, promotion_id: int) -> int | None:
    """The pipeline that claimed the promotion, as the database has it now."""
    return session.scalar(select(Promotion.pipeline_id).where(Promotion.id == promotion_id))


def waiting_of_older_releases(session: Session, environment_id: int, release_id: int) -> list[int]:
    """Promotions into the environment of releases older than this one, not yet deploying."""
    return list(session.scalars(select(Promotion.id).where(
        Promotion.environment_id == environment_id, Promotion.release_id < release_id,
        Promotion.state.in_([PromotionState.REQUESTED.value,
                             PromotionState.TRIGGERED.value]))).all())


def counts_by_state(session: Session) -> list[tuple[str, int]]:
    """(state, how many) for every state in use."""
    return [(state, count) for state, count in session.execute(
        select(Promotion.state, func.count()).group_by(Promotion.state))]


def named(promotion: Promotion, release: Release, environment: Environment) -> Extended:
    """The promotion with its release's name and environment name (already at hand)."""
    return Extended(promotion, image=release.label, environment=environment.name)


def get_named(session: Session, promotion_id: int) -> Extended | None:
    """The promotion with its release and environment names, in one query."""
    row = session.execute(_NAMED.where(Promotion.id == promotion_id)).first()
    return None if row is None else _named_row(row)


def listing(session: Session, *, project: str | None = None, environment: str | None = None,
            state: str | None = None, repository: str | None = None,
            digest: str | None = None, release_id: int | None = None) -> Listing:
    """Promotions, newest first, filtered, each with its release and environment names."""
    stmt = _NAMED
    if project is not None:
        stmt = stmt.join(Project, Project.id == Release.project_id).where(
            Project.path == project)
    for column, value in ((Environment.name, environment), (Promotion.state, state),
                          (Promotion.release_id, release_id)):
        if value is not None:
            stmt = stmt.where(column == value)
    if repository is not None or digest is not None:
        members = select(ReleaseMember.release_id)
        for column, value in ((ReleaseMember.repository, repository),
                              (ReleaseMember.digest, digest)):
            if value is not None:
                members = members.where(column == value)
        stmt = stmt.where(Promotion.release_id.in_(members))
    return Listing(session, stmt, Promotion.id, _named_row)


def _named_row(row: Row[Any]) -> Extended:
    return Extended(row.Promotion, image=row.Release.label, environment=row.name)
