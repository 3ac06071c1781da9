"""Audit hash chain."""

import hashlib
import json

import pytest

from promotion_service.domain.audit_chain import (
    GENESIS,
    HASHED_FIELDS,
    entry_hash,
    stored_canonical,
)
from promotion_service.domain.audit_checkpoint import walk

# what the chain's hash is defined over (docs/promotion-service.md, "Audit log")
REFERENCE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)

AWKWARD = [
    None,
    {},
    [],
    "a string, not an object",
    {"id": 7, "state": "requested", "reason": None, "ok": True, "no": False},
    {"name": "José Müller 😀", "ключ": "значение", "emoji": "\U0001f680"},
    {"floats": [0.1, 1.0, -0.0, 1e16, 1.5e16, 1e-05, 1.5e-07, 123456789.125, 1e22,
                5e-324, 1.7976931348623157e308, float("inf"), float("-inf")]},
    {"nan": float("nan")},
    {"ints": [0, -1, 2**63 - 1, -(2**63), 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**30]},
    {"z": {"b": [1, {"d": None, "c": [True, {"y": [], "x": {}}]}], "a": []}, "a": {"": ""}},
    {"b": 1, "B": 2, "_": 3, "a10": 4, "a2": 5, "a1": 6, " ": 7, "~": 8},
    {"é": 1, "e": 2, "😀": 3, "\uffff": 4, "z": 5},
    {"escapes": "\x00\x01\x1f\x7f\"\\/\t\n\r\b\f</script>"},
    {"surrogate": "\ud800", "pair": "\ud83d\ude00"},
    {"deep": [[[[[[{"n": 1.5}]]]]]], "flat": [[[[["x"]]]]]},
]


def stored(entry):
    """The entry's HASHED_FIELDS as the audit_log row holds them: JSON columns as their text
    (what SQLAlchemy's JSON type writes, json.dumps)."""
    return tuple(json.dumps(entry[k]) if k in ("before", "after") and entry[k] is not None
                 else entry[k] for k in HASHED_FIELDS)


def chain(n):
    entries, prev = [], GENESIS
    for i in range(1, n + 1):
        entry = {"id": i, "at": f"2026-01-01T00:00:0{i}", "actor": "a", "role": "ci",
                 "action": "x", "subject_type": "image", "subject_id": str(i),
                 "before": None, "after": {"n": i}, "request_id": None, "source_ip": None,
                 "prev_hash": prev}
        entry["hash"] = prev = entry_hash(prev, entry)
        entries.append(entry)
    return entries


def rows(entries):
    """The entries as audit verify reads them from the table."""
    return [(e["id"], e["prev_hash"], e["hash"], *stored(e)) for e in entries]


def test_an_intact_chain_verifies():
    assert walk(rows(chain(5)), []) == (5, None, None)


def test_a_walk_from_a_known_head_checks_only_the_entries_after_it():
    entries = chain(5)
    assert walk(rows(entries[3:]), [], start=(3, entries[2]["hash"])) == (5, None, None)
    entries[4]["after"] = {"n": 99}
    _, broken, _ = walk(rows(entries[3:]), [], start=(3, entries[2]["hash"]))
    assert broken.entry_id == 5 and "edited" in broken.problem
    # entries 1 to 3 are not read again: a head they do not end on is a break at entry 4
    _, broken, _ = walk(rows(entries[3:]), [], start=(3, entries[1]["hash"]))
    assert broken.entry_id == 4 and "removed" in broken.problem


def test_an_edited_entry_is_found():
    entries = chain(5)
    entries[2]["after"] = {"n": 99}
    _, broken, _ = walk(rows(entries), [])
    assert broken.entry_id == 3 and "edited" in broken.problem


def test_a_removed_entry_is_found():
    entries = chain(5)
    del entries[1]
    _, broken, _ = walk(rows(entries), [])
    assert broken.entry_id == 3 and "removed" in broken.problem


def test_key_order_does_not_matter():
    entry = chain(1)[0]
    assert entry_hash(GENESIS, dict(reversed(list(entry.items())))) == entry["hash"]


@pytest.mark.parametrize("value", AWKWARD, ids=range(len(AWKWARD)))
def test_the_stored_form_hashes_to_the_same_bytes_as_the_written_one(value):
    entry = {"at": "2026-01-01T00:00:00.000001", "actor": "gitlab:josé", "role": "ci",
             "action": "x.y", "subject_type": "image", "subject_id": None,
             "before": value, "after": {"was": value, "list": [value, value]},
             "request_id": None, "source_ip": "::1"}
    reference = REFERENCE.encode({k: json.loads(json.dumps(entry[k])) for k in HASHED_FIELDS})
    assert stored_canonical(stored(entry)) == reference.encode()
    for ascii_only in (entry | {"actor": "ci", "after": value}, entry | {"before": None}):
        reference = REFERENCE.encode({k: json.loads(json.dumps(ascii_only[k]))
                                      for k in HASHED_FIELDS})
        assert stored_canonical(stored(ascii_only)) == reference.encode()
        written = entry_hash(GENESIS, ascii_only)
        assert hashlib.sha256(GENESIS.encode() + b"\n" + stored_canonical(
            stored(ascii_only))).hexdigest() == written
