"""Baselines for benchmarks/service.py: the cheapest Flask endpoints under the same gunicorn.

/constant returns a constant JSON; /insert does one SQLite INSERT (WAL, committed);
/read does one primary-key SELECT. The database file comes from BENCH_SQLITE; /pg-read
does the same SELECT on PostgreSQL (BENCH_POSTGRES).
"""

from __future__ import annotations

import os
import sqlite3
import threading

from flask import Flask

app = Flask(__name__)
_local = threading.local()


def _db() -> sqlite3.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = sqlite3.connect(os.environ["BENCH_SQLITE"], timeout=30,
                                             isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE IF NOT EXISTS bare (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("INSERT OR IGNORE INTO bare (id, body) VALUES (1, 'x')")
    return conn


@app.get("/constant")
def constant() -> dict:
    """No work at all: the server's and Flask's own cost."""
    return {"status": "ok", "allowed": True}


@app.post("/insert")
def insert() -> tuple[dict, int]:
    """One INSERT, committed."""
    cursor = _db().execute("INSERT INTO bare (body) VALUES (?)", ("x" * 64,))
    return {"id": cursor.lastrowid}, 201


@app.get("/read")
def read() -> dict:
    """One primary-key read."""
    row = _db().execute("SELECT id, body FROM bare WHERE id = 1").fetchone()
    return {"id": row[0], "body": row[1]}


@app.get("/pg-read")
def pg_read() -> dict:
    """One primary-key read on PostgreSQL (BENCH_POSTGRES, a libpq URL), autocommit."""
    conn = getattr(_local, "pg", None)
    if conn is None:
        import psycopg

        conn = _local.pg = psycopg.connect(os.environ["BENCH_POSTGRES"], autocommit=True)
    row = conn.execute("SELECT id, body FROM bare WHERE id = %s", (1,)).fetchone()
    return {"id": row[0], "body": row[1]}
