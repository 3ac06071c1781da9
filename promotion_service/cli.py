"""`promotion-service`: serve, db upgrade, token create/list/revoke, audit verify, worker."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .config import ConfigError
from .domain.actor import ROLES, Actor
from .domain.policy import PolicyError
from .errors import ServiceError

EXIT_OK, EXIT_NO, EXIT_USAGE, EXIT_OUTSIDE = 0, 1, 2, 3


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; exit 0 ok, 1 the answer is no, 2 usage, 3 an outside system failed."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    try:
        return args.func(args)
    except (ConfigError, PolicyError, ServiceError) as exc:
        return _fail(args, str(exc), EXIT_USAGE)
    except Exception as exc:  # a database or other outside failure
        from sqlalchemy.exc import SQLAlchemyError

        if isinstance(exc, OSError):
            return _fail(args, f"{exc.filename or 'file'}: {exc.strerror or exc}", EXIT_OUTSIDE)
        if isinstance(exc, SQLAlchemyError):
            return _fail(args, f"database: {type(exc).__name__}: {exc.args[0] if exc.args else exc}"
                         " (check PROMOTION_DATABASE_URL and run 'promotion-service db upgrade')",
                         EXIT_OUTSIDE)
        raise


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    if getattr(args, "debug", False):
        logging.exception("details")
    print(f"Error: {message}", file=sys.stderr)
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="promotion-service",
        description="docker-cd promotion service. Configuration: PROMOTION_* variables "
                    "(PROMOTION_DATABASE_URL, PROMOTION_POLICY_FILE, ...).")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = _command(sub, "serve", "run the HTTP API (waitress: one process, a pool of threads)",
                     _serve)
    serve.add_argument("--bind", default=os.environ.get("PROMOTION_BIND", "127.0.0.1:8080"),
                       help="HOST:PORT to listen on (PROMOTION_BIND; default 127.0.0.1:8080)")
    serve.add_argument("--threads", type=int, default=int(os.environ.get("PROMOTION_THREADS", 8)),
                       help="threads running requests (PROMOTION_THREADS; default 8)")

    db = sub.add_parser("db", help="database schema").add_subparsers(required=True,
                                                                      metavar="ACTION")
    up = _command(db, "upgrade", "apply migrations (PROMOTION_DATABASE_URL)", _db_upgrade)
    up.add_argument("--revision", default="head")

    token = sub.add_parser("token", help="API tokens").add_subparsers(required=True,
                                                                     metavar="ACTION")
    create = _command(token, "create", "create a token of a person; prints it alone on stdout "
                      "(once)", _token_create)
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--name", required=True,
                        help="the token's unique name (case-insensitive), e.g. alice-laptop")
    create.add_argument("--person", help="who holds it: their GitLab username, the actor in the "
                                         "audit log [default: --name]")
    scope = create.add_mutually_exclusive_group()
    scope.add_argument("--project", help="limit the token to one project path (a ci token "
                                         "needs this or --all-projects)")
    scope.add_argument("--all-projects", action="store_true",
                       help="a ci token for every project, on purpose (Jenkins, one runner "
                            "for many projects)")
    _command(token, "list", "list tokens (never their values)", _token_list)
    revoke = _command(token, "revoke", "revoke a token by name", _token_revoke)
    revoke.add_argument("name")

    audit = sub.add_parser("audit", help="audit log").add_subparsers(required=True,
                                                                    metavar="ACTION")
    _command(audit, "verify", "check the hash chain (and its checkpoints, when configured); "
             "exit 1 if it was tampered with", _audit_verify)
    _command(audit, "checkpoint", "append a signed checkpoint of the chain to "
             "PROMOTION_AUDIT_CHECKPOINT_FILE now", _audit_checkpoint)

    worker = _command(sub, "worker", "send outbox rows to GitLab and run periodic checks",
                      _worker)
    worker.add_argument("--once", action="store_true", help="one pass, then exit")
    return parser


def _command(sub: Any, name: str, help_text: str,
             func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(func=func)
    return parser


def _app() -> Any:
    from . import create_app

    return create_app()


def _serve(args: argparse.Namespace) -> int:
    from .serving import serve

    if args.threads < 1:
        raise ConfigError("--threads: must be at least 1")
    # a pooled connection per request thread: one opened beyond the pool is closed after its
    # request, and PostgreSQL plans every statement afresh on the next (plans are per connection)
    os.environ.setdefault("PROMOTION_DB_POOL_SIZE", str(args.threads))
    app = _app()
    serve(app, args.bind, threads=args.threads,
          max_connections=app.config["MAX_CONNECTIONS"], idle_timeout=app.config["IDLE_TIMEOUT"])
    return EXIT_OK


def _db_upgrade(args: argparse.Namespace) -> int:
    from .db.schema import grant_service_role, role_of, upgrade

    app = _app()
    url, owner_url = app.config["DATABASE_URL"], app.config.get("DATABASE_OWNER_URL")
    if owner_url and not owner_url.startswith("postgresql"):
        raise ConfigError("PROMOTION_DATABASE_OWNER_URL: only for PostgreSQL (a role that owns "
                          "the tables, besides the service's own role)")
    upgrade(owner_url or url, args.revision)
    print(f"database at revision {args.revision}", file=sys.stderr)
    if owner_url and role_of(owner_url) != role_of(url):
        grant_service_role(owner_url, role_of(url) or "")
        print(f"role {role_of(url)} may use the tables; the audit log only by appending",
              file=sys.stderr)
    return EXIT_OK


def _token_create(args: argparse.Namespace) -> int:
    from .db import session_for
    from .services import tokens

    with session_for(_app()) as session:
        _, token = tokens.create(session, _cli_actor(), name=args.name, role=args.role,
                                 person_name=args.person, project=args.project,
                                 all_projects=args.all_projects)
    print(token)
    return EXIT_OK


def _token_list(args: argparse.Namespace) -> int:
    from .db import session_for
    from .services import tokens

    with session_for(_app(), write=False) as session:
        for row in tokens.list_all(session):
            state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
            print(f"{row.name}\t{row.person}\t{row.role}\t{row.project or '*'}\t{state}")
    return EXIT_OK


def _token_revoke(args: argparse.Namespace) -> int:
    from .db import session_for
    from .services import tokens

    with session_for(_app()) as session:
        _, withdrawn = tokens.revoke(session, _cli_actor(), args.name)
    print(f"token {args.name} revoked; approvals it gave withdrawn: "
          f"{', '.join(map(str, withdrawn)) or 'none'}", file=sys.stderr)
    return EXIT_OK


def _audit_verify(args: argparse.Namespace) -> int:
    from .db import session_for
    from .services import audit

    app = _app()
    anchor = audit.anchor_from_config(app.config)
    with session_for(app, write=False) as session:
        verdict = audit.verify(session, anchor)
    _store_verdict(app, verdict)
    if verdict.problem is not None:
        where = (f"audit log entry {verdict.problem.entry_id}: "
                 if verdict.problem.entry_id is not None else "audit log: ")
        print(f"Error: {where}{verdict.problem.problem}", file=sys.stderr)
        return EXIT_NO
    if anchor is None:
        print(f"audit log chain intact: {verdict.count} entries (no checkpoints configured: "
              "removing the newest entries or rewriting the chain cannot be detected; set "
              "PROMOTION_AUDIT_CHECKPOINT_FILE and PROMOTION_AUDIT_KEY_FILE)", file=sys.stderr)
    else:
        print(f"audit log intact: {verdict.count} entries, consistent with "
              f"{verdict.checkpoints} checkpoints in {anchor.path}", file=sys.stderr)
    return EXIT_OK


def _store_verdict(app: Any, verdict: Any) -> None:
    """Keep the verdict for the audit page (after the walk, in a transaction of its own); a
    database that refuses the write (a read-only role, busy) costs a warning, not the answer."""
    from sqlalchemy.exc import SQLAlchemyError

    from .db import session_for
    from .services import audit

    try:
        with session_for(app, write=False) as session:
            audit.record(session, verdict)
    except SQLAlchemyError as exc:
        print(f"warning: the verdict was not stored for the audit page: "
              f"{type(getattr(exc, 'orig', None) or exc).__name__}", file=sys.stderr)


def _audit_checkpoint(args: argparse.Namespace) -> int:
    from .db import session_for
    from .services import audit

    app = _app()
    anchor = audit.anchor_from_config(app.config)
    if anchor is None:
        raise ConfigError("PROMOTION_AUDIT_CHECKPOINT_FILE and PROMOTION_AUDIT_KEY_FILE are not "
                          "set: say where checkpoints go and which key signs them")
    with session_for(app, write=False) as session:
        checkpoint = audit.write_checkpoint(session, anchor)
    assert checkpoint is not None  # written: no previous one to compare with
    print(f"checkpoint: {checkpoint.count} entries, head {checkpoint.head[:12]}... "
          f"appended to {anchor.path}", file=sys.stderr)
    return EXIT_OK


def _worker(args: argparse.Namespace) -> int:
    from .outbox.worker import run

    return run(_app(), once=args.once)


def _cli_actor() -> Actor:
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown"
    return Actor(name=f"cli:{user}", role="admin")
