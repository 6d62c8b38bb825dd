"""The users table: accounts, their profile as the API shows it, and the lookups login needs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .model import Conflict, is_unique_violation, load_json, new_id, now_ms
from .passwords import hash_password

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS users (
        id varchar(26) PRIMARY KEY,
        createat bigint NOT NULL,
        updateat bigint NOT NULL,
        deleteat bigint NOT NULL DEFAULT 0,
        username varchar(64) NOT NULL UNIQUE,
        password varchar(256) NOT NULL DEFAULT '',
        authdata varchar(128),
        authservice varchar(32) NOT NULL DEFAULT '',
        email varchar(128) NOT NULL UNIQUE,
        emailverified boolean NOT NULL DEFAULT false,
        nickname varchar(64) NOT NULL DEFAULT '',
        firstname varchar(64) NOT NULL DEFAULT '',
        lastname varchar(64) NOT NULL DEFAULT '',
        position varchar(128) NOT NULL DEFAULT '',
        roles varchar(256) NOT NULL DEFAULT '',
        locale varchar(5) NOT NULL DEFAULT 'en',
        notifyprops text NOT NULL DEFAULT '{}',
        timezone text NOT NULL DEFAULT '{}',
        props text NOT NULL DEFAULT '{}',
        lastpasswordupdate bigint NOT NULL DEFAULT 0
    )""",
)

_USER_COLUMNS = (
    "id, createat, updateat, deleteat, username, authservice, email, emailverified, nickname, firstname, "
    "lastname, position, roles, locale, notifyprops, timezone, props, lastpasswordupdate"
)
SELECT_USER_BY_ID = f"SELECT {_USER_COLUMNS} FROM users WHERE id = $1"  # noqa: S608 - constant columns
SELECT_USER_FOR_LOGIN = f"SELECT {_USER_COLUMNS}, password FROM users WHERE username = $1 OR email = $1"  # noqa: S608
SELECT_USER_FOR_LOGIN_BY_ID = f"SELECT {_USER_COLUMNS}, password FROM users WHERE id = $1"  # noqa: S608


def default_notify_props() -> dict[str, str]:
    """model.User.SetDefaultNotifications()."""
    return {
        "email": "true",
        "push": "mention",
        "desktop": "mention",
        "desktop_sound": "true",
        "mention_keys": "",
        "channel": "true",
        "push_status": "away",
        "comments": "never",
        "first_name": "false",
        "desktop_threads": "all",
        "email_threads": "all",
        "push_threads": "all",
    }


def default_timezone() -> dict[str, str]:
    return {"automaticTimezone": "", "manualTimezone": "", "useAutomaticTimezone": "true"}


def _user(row: Sequence[Any]) -> dict[str, Any]:
    return {
        "id": row[0],
        "create_at": row[1],
        "update_at": row[2],
        "delete_at": row[3],
        "username": row[4],
        "auth_data": "",
        "auth_service": row[5],
        "email": row[6],
        "email_verified": bool(row[7]),
        "nickname": row[8],
        "first_name": row[9],
        "last_name": row[10],
        "position": row[11],
        "roles": row[12],
        "locale": row[13],
        "notify_props": load_json(row[14], {}),
        "timezone": load_json(row[15], {}),
        "props": load_json(row[16], {}),
        "last_password_update": row[17],
        "disable_welcome_email": False,
    }


def count_users(db: Any) -> int:
    return int(db.query("SELECT count(*) FROM users")[0][0])


def insert_user(
    db: Any,
    *,
    username: str,
    email: str,
    password: str,
    roles: str,
    nickname: str = "",
    first_name: str = "",
    last_name: str = "",
    position: str = "",
    locale: str = "en",
    email_verified: bool = False,
) -> dict[str, Any]:
    """Store a new user (password hashed here) and return it; Conflict on a taken username/email."""
    for field, sql in (
        ("username", "SELECT 1 FROM users WHERE username = $1"),
        ("email", "SELECT 1 FROM users WHERE email = $1"),
    ):
        if db.query(sql, [username if field == "username" else email]):
            raise Conflict(field)
    user_id, created = new_id(), now_ms()
    try:
        db.execute(
            "INSERT INTO users (id, createat, updateat, deleteat, username, password, authservice, email, "
            "emailverified, nickname, firstname, lastname, position, roles, locale, notifyprops, timezone, "
            "props, lastpasswordupdate) "
            "VALUES ($1, $2, $2, 0, $3, $4, '', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, '{}', $2)",
            [
                user_id,
                created,
                username,
                hash_password(password),
                email,
                email_verified,
                nickname,
                first_name,
                last_name,
                position,
                roles,
                locale,
                json.dumps(default_notify_props()),
                json.dumps(default_timezone()),
            ],
        )
    except Exception as exc:
        if is_unique_violation(exc):
            raise Conflict("email" if "email" in str(exc) else "username") from exc
        raise
    user = get_user(db, user_id)
    assert user is not None
    return user


def get_user(db: Any, user_id: str) -> dict[str, Any] | None:
    rows = db.query(SELECT_USER_BY_ID, [user_id])
    return _user(rows[0]) if rows else None


def find_user_for_login(db: Any, login_id: str) -> tuple[dict[str, Any], str] | None:
    """(user, password hash) for a username or an email (case-insensitive); None when none matches."""
    rows = db.query(SELECT_USER_FOR_LOGIN, [login_id.strip().lower()])
    if not rows:
        return None
    return _user(rows[0]), rows[0][-1]


def find_user_for_login_by_id(db: Any, user_id: str) -> tuple[dict[str, Any], str] | None:
    rows = db.query(SELECT_USER_FOR_LOGIN_BY_ID, [user_id])
    if not rows:
        return None
    return _user(rows[0]), rows[0][-1]
