"""Audit hash chain."""

from promotion_service.domain.audit_chain import GENESIS, entry_hash, verify_chain


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


def test_an_intact_chain_verifies():
    assert verify_chain(chain(5)) is None


def test_an_edited_entry_is_found():
    entries = chain(5)
    entries[2]["after"] = {"n": 99}
    broken = verify_chain(entries)
    assert broken.entry_id == 3 and "edited" in broken.problem


def test_a_removed_entry_is_found():
    entries = chain(5)
    del entries[1]
    assert verify_chain(entries).entry_id == 3


def test_key_order_does_not_matter():
    entry = chain(1)[0]
    assert entry_hash(GENESIS, dict(reversed(list(entry.items())))) == entry["hash"]
