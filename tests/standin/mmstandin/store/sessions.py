"""The sessions table: login tokens, their expiry and the CSRF token of cookie sessions."""

from __future__ import annotations

from typing import Any

from .model import new_id, now_ms

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS sessions (
        id varchar(26) PRIMARY KEY,
        token varchar(26) NOT NULL UNIQUE,
        createat bigint NOT NULL,
        expiresat bigint NOT NULL,
        lastactivityat bigint NOT NULL,
        userid varchar(26) NOT NULL,
        deviceid text NOT NULL DEFAULT '',
        roles varchar(256) NOT NULL DEFAULT '',
        csrftoken varchar(26) NOT NULL DEFAULT '',
        props text NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX IF NOT EXISTS idx_sessions_user_id ON sessions (userid)",
)


def create_session(
    db: Any, user_id: str, roles: str, lifetime_ms: int, device_id: str = ""
) -> dict[str, Any]:
    session = {
        "id": new_id(),
        "token": new_id(),
        "create_at": now_ms(),
        "user_id": user_id,
        "roles": roles,
        "csrf_token": new_id(),
        "device_id": device_id,
    }
    session["expires_at"] = session["create_at"] + lifetime_ms
    db.execute(
        "INSERT INTO sessions (id, token, createat, expiresat, lastactivityat, userid, deviceid, roles, "
        "csrftoken) VALUES ($1, $2, $3, $4, $3, $5, $6, $7, $8)",
        [
            session["id"],
            session["token"],
            session["create_at"],
            session["expires_at"],
            user_id,
            device_id,
            roles,
            session["csrf_token"],
        ],
    )
    return session


def get_session(db: Any, token: str) -> dict[str, Any] | None:
    """The live session for a token: None when unknown, expired, or its user is deactivated."""
    rows = db.query(
        "SELECT s.id, s.token, s.createat, s.expiresat, s.userid, s.roles, s.csrftoken "
        "FROM sessions s JOIN users u ON u.id = s.userid "
        "WHERE s.token = $1 AND s.expiresat > $2 AND u.deleteat = 0",
        [token, now_ms()],
    )
    if not rows:
        return None
    row = rows[0]
    return {
        "id": row[0],
        "token": row[1],
        "create_at": row[2],
        "expires_at": row[3],
        "user_id": row[4],
        "roles": row[5],
        "csrf_token": row[6],
    }


def delete_session(db: Any, token: str) -> None:
    db.execute("DELETE FROM sessions WHERE token = $1", [token])
