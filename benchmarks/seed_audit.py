"""Append chained audit entries to a PostgreSQL database fast (COPY), with signed checkpoints.

Each entry looks like what the service writes when a promotion is requested, carries the
hash of the one before (the chain `promotion-service audit verify` checks) and goes in
through COPY, so millions take a minute rather than an hour. With --checkpoint-file and
--key-file, a signed checkpoint is appended after every --checkpoint-every entries, as the
service's periodic checkpoints would be.

    python benchmarks/seed_audit.py --database-url URL --entries 2000000
        [--checkpoint-file FILE --key-file FILE] [--checkpoint-every 100000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from promotion_service.domain.audit_chain import GENESIS, HASHED_FIELDS, entry_hash  # noqa: E402
from promotion_service.domain.audit_checkpoint import Checkpoint  # noqa: E402

COLUMNS = ("prev_hash", "hash", *HASHED_FIELDS)


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (postgresql+psycopg://...) as psycopg takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def seed(url: str, count: int, *, checkpoint_file: Path | None = None, key: bytes = b"",
         checkpoint_every: int = 100_000) -> tuple[int, str]:
    """Append `count` entries after the chain's head; return (entries in all, head hash)."""
    with psycopg.connect(libpq_url(url)) as conn:
        total, prev = conn.execute(
            "SELECT (SELECT count(*) FROM audit_log), "
            "(SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1)").fetchone()
        prev = prev or GENESIS
        with conn.cursor().copy(f"COPY audit_log ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for n in range(total, total + count):
                fields = _entry(n)
                digest = entry_hash(prev, fields)
                copy.write_row((prev, digest, *(_column(fields[c]) for c in HASHED_FIELDS)))
                prev = digest
                if checkpoint_file is not None and (n + 1) % checkpoint_every == 0:
                    _checkpoint(checkpoint_file, key, n + 1, digest)
    total += count
    if checkpoint_file is not None and total % checkpoint_every:
        _checkpoint(checkpoint_file, key, total, prev)
    return total, prev


def _entry(n: int) -> dict:
    at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_700_000_000 + n)) + ".000000"
    return {
        "at": at, "actor": f"ci:group/app-{n % 50}", "role": "ci",
        "action": "promotion.requested", "subject_type": "promotion",
        "subject_id": str(n + 1), "before": None,
        "after": {"id": n + 1, "release_id": n // 3 + 1, "environment_id": n % 3 + 1,
                  "state": "requested", "kind": "auto", "requested_by": "ci-bot",
                  "reason": None, "pipeline_id": None, "release_id": None},
        "request_id": f"{n:032x}", "source_ip": "10.0.0.7",
    }


def _column(value: object) -> object:
    return json.dumps(value) if isinstance(value, dict) else value


def _checkpoint(path: Path, key: bytes, count: int, head: str) -> None:
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with path.open("a") as out:
        out.write(Checkpoint(count, head, at).signed(key).to_line())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True,
                        help="a migrated promotion service database (postgresql+psycopg://...)")
    parser.add_argument("--entries", type=int, required=True)
    parser.add_argument("--checkpoint-file", type=Path)
    parser.add_argument("--key-file", type=Path)
    parser.add_argument("--checkpoint-every", type=int, default=100_000)
    args = parser.parse_args()
    if (args.checkpoint_file is None) != (args.key_file is None):
        parser.error("--checkpoint-file and --key-file go together")
    key = args.key_file.read_bytes().strip() if args.key_file else b""
    start = time.perf_counter()
    total, _ = seed(args.database_url, args.entries, checkpoint_file=args.checkpoint_file,
                    key=key, checkpoint_every=args.checkpoint_every)
    elapsed = time.perf_counter() - start
    print(f"appended {args.entries:,} audit entries in {elapsed:.1f} s "
          f"({args.entries / elapsed:,.0f}/s); the log holds {total:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
