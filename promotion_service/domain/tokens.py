"""API tokens: ``pst_<id>_<secret>``; only a SHA-256 of the whole token is kept."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX = "pst"
_SHAPE = re.compile(rf"{PREFIX}_([0-9]{{1,9}})_[A-Za-z0-9_-]{{16,128}}", re.ASCII)


def new_token(token_id: int) -> str:
    """A fresh token; its id part finds the row, the rest is the secret."""
    return f"{PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    """What is stored: the token's SHA-256 (hex)."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_id(token: str) -> int | None:
    """The row id a presented token names, or None when it is not shaped like a token."""
    match = _SHAPE.fullmatch(token)  # ASCII digits only: int() takes other scripts' digits
    return int(match.group(1)) if match else None


def hash_matches(stored_hash: str, token: str) -> bool:
    """Compare in constant time, so the comparison leaks nothing about the stored hash."""
    return hmac.compare_digest(stored_hash, hash_token(token))
