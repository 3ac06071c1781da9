"""How long migration 0011 (the project on each audit entry) takes on PostgreSQL.

Usage: python3 benchmarks/audit_backfill.py [--entries 2000000] [--database-url URL]

Migrates a fresh database to 0010, fills it with one project's images, releases and
promotions (one for every 10 entries) and an audit log whose entries are about them (a
quarter each about promotions, images and releases, a quarter about tokens), then times
`db upgrade` to 0011, whose backfill gives each entry its project. While it runs, the log is
locked: the service's writes wait for it. Prints the time, the entries given a project and
the load average.
"""

from __future__ import annotations

import argparse
import os
import time

from sqlalchemy import create_engine, text

from benchmarks.postgres import postgres_url
from promotion_service.db.schema import upgrade

SEED = [
    """INSERT INTO projects (path, created_at) VALUES ('group/app', now())""",
    """INSERT INTO environments (project_id, name, position, policy)
       VALUES (1, 'test', 0, '{}')""",
    """INSERT INTO images (project_id, repository, digest, tags, registered_by, created_at)
       SELECT 1, 'registry.example.com/group/app', 'sha256:' || md5('i' || g) || md5('j' || g),
              '[]', 'ci', now() FROM generate_series(1, :subjects) g""",
    """INSERT INTO releases (project_id, digest, member_count, tags, registered_by, created_at)
       SELECT 1, 'sha256:' || md5('r' || g) || md5('s' || g), 1, '[]', 'ci', now()
       FROM generate_series(1, :subjects) g""",
    """INSERT INTO promotions (release_id, environment_id, state, kind, requested_by,
         created_at, updated_at)
       SELECT id, 1, 'verified', 'auto', 'ci', now(), now() FROM releases""",
    """INSERT INTO audit_log (at, actor, role, action, subject_type, subject_id, prev_hash, hash)
       SELECT 'x', 'ci', 'ci', 'seeded', (ARRAY['promotion', 'image', 'release', 'token'])
              [1 + g % 4], (1 + g % :subjects)::text, 'p' || md5('p' || g), 'h' || md5('h' || g)
       FROM generate_series(1, :entries) g""",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=2_000_000)
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: a "
                                               "throw-away server of its own)")
    args = parser.parse_args()
    with postgres_url(args.database_url) as url:
        upgrade(url, "0010")
        engine = create_engine(url)
        with engine.begin() as conn:
            for statement in SEED:
                conn.execute(text(statement), {"subjects": max(1, args.entries // 10),
                                               "entries": args.entries})
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        started = time.perf_counter()
        upgrade(url, "0011")
        took = time.perf_counter() - started
        with engine.connect() as conn:
            given = conn.execute(text("SELECT count(project_id) FROM audit_log")).scalar()
        engine.dispose()
    print(f"entries {args.entries}  given a project {given}  0011 took {took:.1f} s "
          f"({took / args.entries * 1e6:.0f} us an entry)  load average {load}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
