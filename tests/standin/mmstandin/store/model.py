"""What every table module shares, after Mattermost's model package: ids, timestamps, conflicts."""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any

# Mattermost's NewId: base32 of 16 random bytes, with its own alphabet, no padding (26 characters).
ID_ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"
_TO_ID_ALPHABET = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", ID_ALPHABET.encode("ascii"))
_ID_CHARS = frozenset(ID_ALPHABET + "abcdefghijklmnopqrstuvwxyz0123456789")


class Conflict(Exception):
    """A unique column already holds the value (username, email, team name, channel name)."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{field} already exists")
        self.field = field


def new_id() -> str:
    """A 26-character id exactly like Mattermost's model.NewId()."""
    encoded = base64.b32encode(os.urandom(16)).translate(_TO_ID_ALPHABET)
    return encoded.decode("ascii").rstrip("=")


def is_valid_id(value: object) -> bool:
    """model.IsValidId: 26 lower-case alphanumerics."""
    return isinstance(value, str) and len(value) == 26 and all(c in _ID_CHARS for c in value)


def now_ms() -> int:
    return int(time.time() * 1000)


def is_unique_violation(exc: Exception) -> bool:
    """SQLSTATE 23505: a concurrent insert won the race the SELECT-first checks cannot close."""
    return getattr(exc, "sqlstate", None) == "23505"


def load_json(text: str | None, default: Any) -> Any:
    """A JSON text column as data; a blank or damaged value reads as the default, never as a 500."""
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default
