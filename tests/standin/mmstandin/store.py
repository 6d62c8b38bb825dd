"""SQL for the stand-in's data: users, sessions, teams, channels, members, posts and file infos.

Everything lives in PostgreSQL, in tables named like Mattermost's own (lower-case, no underscores), so the
data survives a restart, an upgrade to another release and a database backup/restore. The functions take
the `Database` object (`.query(sql, params) -> rows`, `.execute(sql, params) -> int`) and return plain
dicts already shaped like the JSON the real API sends. Every statement is parameterised ($1, $2, ...).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

# Mattermost's NewId: base32 of 16 random bytes, with its own alphabet, no padding (26 characters).
ID_ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"
_TO_ID_ALPHABET = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", ID_ALPHABET.encode("ascii"))
_ID_CHARS = frozenset(ID_ALPHABET + "abcdefghijklmnopqrstuvwxyz0123456789")

PASSWORD_SCHEME = "pbkdf2_sha256"  # noqa: S105 - a hash scheme name, not a secret
PASSWORD_ITERATIONS = 60_000

DEFAULT_CHANNELS = (("town-square", "Town Square"), ("off-topic", "Off-Topic"))

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
    """CREATE TABLE IF NOT EXISTS teams (
        id varchar(26) PRIMARY KEY,
        createat bigint NOT NULL,
        updateat bigint NOT NULL,
        deleteat bigint NOT NULL DEFAULT 0,
        displayname varchar(64) NOT NULL,
        name varchar(64) NOT NULL UNIQUE,
        description varchar(255) NOT NULL DEFAULT '',
        email varchar(128) NOT NULL DEFAULT '',
        type varchar(255) NOT NULL,
        companyname varchar(64) NOT NULL DEFAULT '',
        alloweddomains text NOT NULL DEFAULT '',
        inviteid varchar(32) NOT NULL,
        allowopeninvite boolean NOT NULL DEFAULT false,
        schemeid varchar(26),
        groupconstrained boolean
    )""",
    """CREATE TABLE IF NOT EXISTS teammembers (
        teamid varchar(26) NOT NULL,
        userid varchar(26) NOT NULL,
        roles varchar(256) NOT NULL DEFAULT '',
        deleteat bigint NOT NULL DEFAULT 0,
        schemeuser boolean NOT NULL DEFAULT true,
        schemeadmin boolean NOT NULL DEFAULT false,
        schemeguest boolean NOT NULL DEFAULT false,
        createat bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (teamid, userid)
    )""",
    "CREATE INDEX IF NOT EXISTS idx_teammembers_user_id ON teammembers (userid)",
    """CREATE TABLE IF NOT EXISTS channels (
        id varchar(26) PRIMARY KEY,
        createat bigint NOT NULL,
        updateat bigint NOT NULL,
        deleteat bigint NOT NULL DEFAULT 0,
        teamid varchar(26) NOT NULL,
        type varchar(1) NOT NULL,
        displayname varchar(64) NOT NULL,
        name varchar(64) NOT NULL,
        header varchar(1024) NOT NULL DEFAULT '',
        purpose varchar(250) NOT NULL DEFAULT '',
        lastpostat bigint NOT NULL DEFAULT 0,
        totalmsgcount bigint NOT NULL DEFAULT 0,
        extraupdateat bigint NOT NULL DEFAULT 0,
        creatorid varchar(26) NOT NULL DEFAULT '',
        lastrootpostat bigint NOT NULL DEFAULT 0,
        totalmsgcountroot bigint NOT NULL DEFAULT 0,
        UNIQUE (name, teamid)
    )""",
    """CREATE TABLE IF NOT EXISTS channelmembers (
        channelid varchar(26) NOT NULL,
        userid varchar(26) NOT NULL,
        roles varchar(256) NOT NULL DEFAULT '',
        lastviewedat bigint NOT NULL DEFAULT 0,
        msgcount bigint NOT NULL DEFAULT 0,
        mentioncount bigint NOT NULL DEFAULT 0,
        notifyprops text NOT NULL DEFAULT '{}',
        lastupdateat bigint NOT NULL DEFAULT 0,
        schemeuser boolean NOT NULL DEFAULT true,
        schemeadmin boolean NOT NULL DEFAULT false,
        schemeguest boolean NOT NULL DEFAULT false,
        PRIMARY KEY (channelid, userid)
    )""",
    "CREATE INDEX IF NOT EXISTS idx_channelmembers_user_id ON channelmembers (userid)",
    """CREATE TABLE IF NOT EXISTS posts (
        id varchar(26) PRIMARY KEY,
        createat bigint NOT NULL,
        updateat bigint NOT NULL,
        editat bigint NOT NULL DEFAULT 0,
        deleteat bigint NOT NULL DEFAULT 0,
        ispinned boolean NOT NULL DEFAULT false,
        userid varchar(26) NOT NULL,
        channelid varchar(26) NOT NULL,
        rootid varchar(26) NOT NULL DEFAULT '',
        originalid varchar(26) NOT NULL DEFAULT '',
        message varchar(65535) NOT NULL DEFAULT '',
        type varchar(26) NOT NULL DEFAULT '',
        props text NOT NULL DEFAULT '{}',
        hashtags varchar(1000) NOT NULL DEFAULT '',
        fileids varchar(300) NOT NULL DEFAULT '[]'
    )""",
    "CREATE INDEX IF NOT EXISTS idx_posts_channel_id_create_at ON posts (channelid, createat)",
    "CREATE INDEX IF NOT EXISTS idx_posts_root_id ON posts (rootid)",
    """CREATE TABLE IF NOT EXISTS fileinfo (
        id varchar(26) PRIMARY KEY,
        creatorid varchar(26) NOT NULL,
        postid varchar(26) NOT NULL DEFAULT '',
        channelid varchar(26) NOT NULL DEFAULT '',
        createat bigint NOT NULL,
        updateat bigint NOT NULL,
        deleteat bigint NOT NULL DEFAULT 0,
        path text NOT NULL,
        name text NOT NULL,
        extension varchar(64) NOT NULL DEFAULT '',
        size bigint NOT NULL,
        mimetype text NOT NULL DEFAULT '',
        width integer NOT NULL DEFAULT 0,
        height integer NOT NULL DEFAULT 0,
        haspreviewimage boolean NOT NULL DEFAULT false
    )""",
    "CREATE INDEX IF NOT EXISTS idx_fileinfo_post_id ON fileinfo (postid)",
)


class Conflict(Exception):
    """A unique column already holds the value (username, email, team name, channel name)."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{field} already exists")
        self.field = field


# Identifiers, time, passwords --------------------------------------------------------------------------


def new_id() -> str:
    """A 26-character id exactly like Mattermost's model.NewId()."""
    encoded = base64.b32encode(os.urandom(16)).translate(_TO_ID_ALPHABET)
    return encoded.decode("ascii").rstrip("=")


def is_valid_id(value: object) -> bool:
    """model.IsValidId: 26 lower-case alphanumerics."""
    return isinstance(value, str) and len(value) == 26 and all(c in _ID_CHARS for c in value)


def now_ms() -> int:
    return int(time.time() * 1000)


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, PASSWORD_ITERATIONS)
    return "$".join(
        (
            PASSWORD_SCHEME,
            str(PASSWORD_ITERATIONS),
            base64.b64encode(salt).decode(),
            base64.b64encode(digest).decode(),
        )
    )


def check_password(password: str, hashed: str) -> bool:
    try:
        scheme, iterations, salt, digest = hashed.split("$")
        if scheme != PASSWORD_SCHEME:
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.pbkdf2_hmac(
            "sha256", password.encode("utf-8"), base64.b64decode(salt), int(iterations)
        )
    except ValueError:
        return False
    return hmac.compare_digest(expected, actual)


def create_tables(db: Any) -> None:
    """Create every table and index the API needs; safe to run again on an existing database."""
    for statement in SCHEMA:
        db.execute(statement)


def _is_unique_violation(exc: Exception) -> bool:
    return getattr(exc, "sqlstate", None) == "23505"


def _loads(text: str | None, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


# Users -------------------------------------------------------------------------------------------------

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
        "notify_props": _loads(row[14], {}),
        "timezone": _loads(row[15], {}),
        "props": _loads(row[16], {}),
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
        if _is_unique_violation(exc):
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


# Sessions ----------------------------------------------------------------------------------------------


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


# Teams -------------------------------------------------------------------------------------------------

_TEAM_COLUMNS = (
    "id, createat, updateat, deleteat, displayname, name, description, email, type, companyname, "
    "alloweddomains, inviteid, allowopeninvite, schemeid, groupconstrained"
)


def _team(row: Sequence[Any]) -> dict[str, Any]:
    return {
        "id": row[0],
        "create_at": row[1],
        "update_at": row[2],
        "delete_at": row[3],
        "display_name": row[4],
        "name": row[5],
        "description": row[6],
        "email": row[7],
        "type": row[8],
        "company_name": row[9],
        "allowed_domains": row[10],
        "invite_id": row[11],
        "allow_open_invite": bool(row[12]),
        "last_team_icon_update": 0,
        "scheme_id": row[13],
        "group_constrained": row[14],
        "policy_id": None,
        "cloud_limits_archived": False,
    }


def create_team(
    db: Any,
    *,
    creator_id: str,
    name: str,
    display_name: str,
    team_type: str,
    allow_open_invite: bool,
    description: str = "",
    email: str = "",
    company_name: str = "",
    allowed_domains: str = "",
) -> dict[str, Any]:
    """Create a team, its default channels and the creator's memberships in one atomic statement."""
    team_id, created = new_id(), now_ms()
    (town_square, _), (off_topic, _) = DEFAULT_CHANNELS
    town_square_id, off_topic_id = new_id(), new_id()
    try:
        db.query(
            "WITH team AS ("
            "  INSERT INTO teams (id, createat, updateat, deleteat, displayname, name, description, email, "
            "    type, companyname, alloweddomains, inviteid, allowopeninvite, schemeid, groupconstrained) "
            "  VALUES ($1, $2, $2, 0, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, false) RETURNING id"
            "), member AS ("
            "  INSERT INTO teammembers (teamid, userid, roles, deleteat, schemeuser, schemeadmin, "
            "    schemeguest, createat) VALUES ($1, $12, '', 0, true, true, false, $2)"
            "), channel AS ("
            "  INSERT INTO channels (id, createat, updateat, deleteat, teamid, type, displayname, name, "
            "    creatorid) VALUES ($13, $2, $2, 0, $1, 'O', $14, $15, ''), "
            "    ($16, $2, $2, 0, $1, 'O', $17, $18, '')"
            "), channel_member AS ("
            "  INSERT INTO channelmembers (channelid, userid, notifyprops, lastupdateat) "
            "  VALUES ($13, $12, $19, $2), ($16, $12, $19, $2)"
            ") SELECT id FROM team",
            [
                team_id,
                created,
                display_name,
                name,
                description,
                email,
                team_type,
                company_name,
                allowed_domains,
                new_id(),
                allow_open_invite,
                creator_id,
                town_square_id,
                DEFAULT_CHANNELS[0][1],
                town_square,
                off_topic_id,
                DEFAULT_CHANNELS[1][1],
                off_topic,
                json.dumps(default_channel_notify_props()),
            ],
        )
    except Exception as exc:
        if _is_unique_violation(exc):
            raise Conflict("name") from exc
        raise
    team = get_team(db, team_id)
    assert team is not None
    return team


def get_team(db: Any, team_id: str) -> dict[str, Any] | None:
    rows = db.query(f"SELECT {_TEAM_COLUMNS} FROM teams WHERE id = $1", [team_id])  # noqa: S608
    return _team(rows[0]) if rows else None


def get_team_by_name(db: Any, name: str) -> dict[str, Any] | None:
    rows = db.query(f"SELECT {_TEAM_COLUMNS} FROM teams WHERE name = $1", [name])  # noqa: S608
    return _team(rows[0]) if rows else None


def teams_for_user(db: Any, user_id: str) -> list[dict[str, Any]]:
    columns = ", ".join("t." + c.strip() for c in _TEAM_COLUMNS.split(","))
    rows = db.query(
        f"SELECT {columns} FROM teams t JOIN teammembers m ON m.teamid = t.id "  # noqa: S608
        "WHERE m.userid = $1 AND m.deleteat = 0 AND t.deleteat = 0 ORDER BY t.displayname, t.id",
        [user_id],
    )
    return [_team(row) for row in rows]


def _team_member(row: Sequence[Any]) -> dict[str, Any]:
    scheme_user, scheme_admin, scheme_guest = bool(row[4]), bool(row[5]), bool(row[6])
    # The store layer of the real server folds the scheme flags into "roles".
    roles = [r for r in row[2].split() if r]
    if scheme_guest:
        roles.insert(0, "team_guest")
    if scheme_user:
        roles.insert(0, "team_user")
    if scheme_admin:
        roles.append("team_admin")
    return {
        "team_id": row[0],
        "user_id": row[1],
        "roles": " ".join(dict.fromkeys(roles)),
        "delete_at": row[3],
        "scheme_guest": scheme_guest,
        "scheme_user": scheme_user,
        "scheme_admin": scheme_admin,
        "explicit_roles": row[2],
        "create_at": row[7],
    }


def get_team_member(db: Any, team_id: str, user_id: str) -> dict[str, Any] | None:
    rows = db.query(
        "SELECT teamid, userid, roles, deleteat, schemeuser, schemeadmin, schemeguest, createat "
        "FROM teammembers WHERE teamid = $1 AND userid = $2",
        [team_id, user_id],
    )
    return _team_member(rows[0]) if rows else None


def add_team_member(db: Any, team_id: str, user_id: str) -> dict[str, Any]:
    """Make the user an active member of the team and of its default channels."""
    created = now_ms()
    db.query(
        "WITH member AS ("
        "  INSERT INTO teammembers (teamid, userid, roles, deleteat, schemeuser, schemeadmin, schemeguest, "
        "    createat) VALUES ($1, $2, '', 0, true, false, false, $3) "
        "  ON CONFLICT (teamid, userid) DO UPDATE SET deleteat = 0"
        "), channel_member AS ("
        "  INSERT INTO channelmembers (channelid, userid, notifyprops, lastupdateat) "
        "  SELECT c.id, $2, $4, $3 FROM channels c "
        "  WHERE c.teamid = $1 AND c.name = ANY(string_to_array($5, ',')) AND c.deleteat = 0 "
        "  ON CONFLICT (channelid, userid) DO NOTHING"
        ") SELECT 1",
        [
            team_id,
            user_id,
            created,
            json.dumps(default_channel_notify_props()),
            ",".join(name for name, _ in DEFAULT_CHANNELS),
        ],
    )
    member = get_team_member(db, team_id, user_id)
    assert member is not None
    return member


# Channels ----------------------------------------------------------------------------------------------

_CHANNEL_COLUMNS = (
    "id, createat, updateat, deleteat, teamid, type, displayname, name, header, purpose, lastpostat, "
    "totalmsgcount, extraupdateat, creatorid, lastrootpostat, totalmsgcountroot"
)


def default_channel_notify_props() -> dict[str, str]:
    return {
        "desktop": "default",
        "email": "default",
        "ignore_channel_mentions": "default",
        "mark_unread": "all",
        "push": "default",
    }


def _channel(row: Sequence[Any]) -> dict[str, Any]:
    return {
        "id": row[0],
        "create_at": row[1],
        "update_at": row[2],
        "delete_at": row[3],
        "team_id": row[4],
        "type": row[5],
        "display_name": row[6],
        "name": row[7],
        "header": row[8],
        "purpose": row[9],
        "last_post_at": row[10],
        "total_msg_count": row[11],
        "extra_update_at": row[12],
        "creator_id": row[13],
        "scheme_id": None,
        "props": None,
        "group_constrained": None,
        "shared": None,
        "total_msg_count_root": row[15],
        "policy_id": None,
        "last_root_post_at": row[14],
    }


def get_channel(db: Any, channel_id: str) -> dict[str, Any] | None:
    rows = db.query(f"SELECT {_CHANNEL_COLUMNS} FROM channels WHERE id = $1", [channel_id])  # noqa: S608
    return _channel(rows[0]) if rows else None


def get_channel_by_name(db: Any, team_id: str, name: str) -> dict[str, Any] | None:
    rows = db.query(
        f"SELECT {_CHANNEL_COLUMNS} FROM channels WHERE teamid = $1 AND name = $2",  # noqa: S608
        [team_id, name],
    )
    return _channel(rows[0]) if rows else None


def is_channel_member(db: Any, channel_id: str, user_id: str) -> bool:
    return bool(
        db.query("SELECT 1 FROM channelmembers WHERE channelid = $1 AND userid = $2", [channel_id, user_id])
    )


def channel_member_ids(db: Any, channel_id: str) -> list[str]:
    return [
        row[0] for row in db.query("SELECT userid FROM channelmembers WHERE channelid = $1", [channel_id])
    ]


# Posts -------------------------------------------------------------------------------------------------

# reply_count and last_reply_at describe the whole thread, for the root and for each reply alike.
_POST_SELECT = (
    "SELECT p.id, p.createat, p.updateat, p.editat, p.deleteat, p.ispinned, p.userid, p.channelid, "
    "p.rootid, p.originalid, p.message, p.type, p.props, p.hashtags, p.fileids, "
    "(SELECT count(*) FROM posts r WHERE r.rootid = COALESCE(NULLIF(p.rootid, ''), p.id) "
    "  AND r.deleteat = 0), "
    "(SELECT COALESCE(max(r.createat), 0) FROM posts r WHERE r.rootid = COALESCE(NULLIF(p.rootid, ''), p.id) "
    "  AND r.deleteat = 0) "
    "FROM posts p "
)


def _post(row: Sequence[Any]) -> dict[str, Any]:
    post: dict[str, Any] = {
        "id": row[0],
        "create_at": row[1],
        "update_at": row[2],
        "edit_at": row[3],
        "delete_at": row[4],
        "is_pinned": bool(row[5]),
        "user_id": row[6],
        "channel_id": row[7],
        "root_id": row[8],
        "original_id": row[9],
        "message": row[10],
        "type": row[11],
        "props": _loads(row[12], {}),
        "hashtags": row[13],
        "pending_post_id": "",
        "reply_count": row[15],
        "last_reply_at": row[16],
        "participants": None,
        "metadata": {},
    }
    file_ids = _loads(row[14], [])
    if file_ids:
        post["file_ids"] = file_ids
    return post


def _with_file_metadata(db: Any, posts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill metadata.files of the posts that carry attachments, in their file_ids order."""
    with_files = [p for p in posts if p.get("file_ids")]
    if not with_files:
        return posts
    infos = files_for_posts(db, [p["id"] for p in with_files])
    for post in with_files:
        by_id = {info["id"]: info for info in infos if info["post_id"] == post["id"]}
        files = [by_id[file_id] for file_id in post["file_ids"] if file_id in by_id]
        if files:
            post["metadata"]["files"] = files
    return posts


def hashtags_of(message: str) -> str:
    """Words starting with '#', as the real server stores them in Posts.Hashtags (simplified)."""
    tags = []
    for word in message.split():
        tag = word.strip(".,;:!?()[]{}\"'")
        if len(tag) > 1 and tag.startswith("#") and not tag.startswith("##") and tag[1].isalpha():
            tags.append(tag)
    return " ".join(dict.fromkeys(tags))[:1000]


def attachable_file_ids(db: Any, file_ids: Sequence[str], user_id: str, channel_id: str) -> list[str]:
    """The file ids the user uploaded to this channel and that no post holds yet, in request order."""
    wanted = [f for f in dict.fromkeys(file_ids) if is_valid_id(f)]
    if not wanted:
        return []
    rows = db.query(
        "SELECT id FROM fileinfo WHERE id = ANY(string_to_array($1, ',')) AND creatorid = $2 "
        "AND channelid = $3 AND postid = '' AND deleteat = 0",
        [",".join(wanted), user_id, channel_id],
    )
    found = {row[0] for row in rows}
    return [f for f in wanted if f in found]


def create_post(
    db: Any,
    *,
    user_id: str,
    channel_id: str,
    message: str,
    root_id: str = "",
    props: dict[str, Any] | None = None,
    file_ids: Sequence[str] = (),
) -> dict[str, Any]:
    """Insert a post, attach its files and bump the channel counters in one atomic statement."""
    post_id, created = new_id(), now_ms()
    is_root = 0 if root_id else 1
    db.query(
        "WITH post AS ("
        "  INSERT INTO posts (id, createat, updateat, editat, deleteat, ispinned, userid, channelid, rootid, "
        "    originalid, message, type, props, hashtags, fileids) "
        "  VALUES ($1, $2, $2, 0, 0, false, $3, $4, $5, '', $6, '', $7, $8, $9) RETURNING id"
        "), attach AS ("
        "  UPDATE fileinfo SET postid = $1, updateat = $2 "
        "  WHERE id = ANY(string_to_array($10, ',')) AND postid = ''"
        "), channel AS ("
        "  UPDATE channels SET lastpostat = $2, totalmsgcount = totalmsgcount + 1, "
        "    lastrootpostat = CASE WHEN $11 = 1 THEN $2 ELSE lastrootpostat END, "
        "    totalmsgcountroot = totalmsgcountroot + $11 "
        "  WHERE id = $4"
        ") SELECT id FROM post",
        [
            post_id,
            created,
            user_id,
            channel_id,
            root_id,
            message,
            json.dumps(props or {}),
            hashtags_of(message),
            json.dumps(list(file_ids)),
            ",".join(file_ids),
            is_root,
        ],
    )
    post = get_post(db, post_id)
    assert post is not None
    return post


def get_post(db: Any, post_id: str, include_deleted: bool = False) -> dict[str, Any] | None:
    rows = db.query(_POST_SELECT + "WHERE p.id = $1", [post_id])
    if not rows or (rows[0][4] and not include_deleted):
        return None
    return _with_file_metadata(db, [_post(rows[0])])[0]


def thread_posts(db: Any, root_id: str) -> list[dict[str, Any]]:
    """The root and all its replies, newest first."""
    rows = db.query(
        _POST_SELECT + "WHERE (p.id = $1 OR p.rootid = $1) AND p.deleteat = 0 ORDER BY p.createat DESC, p.id",
        [root_id],
    )
    return _with_file_metadata(db, [_post(row) for row in rows])


def channel_posts(db: Any, channel_id: str, offset: int, limit: int) -> list[dict[str, Any]]:
    """One page of the channel's posts (replies included), newest first."""
    rows = db.query(
        _POST_SELECT + "WHERE p.channelid = $1 AND p.deleteat = 0 "
        "ORDER BY p.createat DESC, p.id DESC OFFSET $2 LIMIT $3",
        [channel_id, offset, limit],
    )
    return _with_file_metadata(db, [_post(row) for row in rows])


def get_posts(db: Any, post_ids: Iterable[str]) -> list[dict[str, Any]]:
    ids = ",".join(post_ids)
    if not ids:
        return []
    rows = db.query(_POST_SELECT + "WHERE p.id = ANY(string_to_array($1, ',')) AND p.deleteat = 0", [ids])
    return _with_file_metadata(db, [_post(row) for row in rows])


def neighbour_post_id(db: Any, channel_id: str, create_at: int, post_id: str, newer: bool) -> str:
    """The id of the post right after (newer=True) or right before a post in the channel's order."""
    if newer:
        sql = (
            "SELECT id FROM posts WHERE channelid = $1 AND deleteat = 0 AND (createat, id) > ($2, $3) "
            "ORDER BY createat, id LIMIT 1"
        )
    else:
        sql = (
            "SELECT id FROM posts WHERE channelid = $1 AND deleteat = 0 AND (createat, id) < ($2, $3) "
            "ORDER BY createat DESC, id DESC LIMIT 1"
        )
    rows = db.query(sql, [channel_id, create_at, post_id])
    return rows[0][0] if rows else ""


# File infos --------------------------------------------------------------------------------------------

_FILE_COLUMNS = (
    "id, creatorid, postid, channelid, createat, updateat, deleteat, name, extension, size, mimetype, "
    "width, height, haspreviewimage, path"
)


def _file_info(row: Sequence[Any]) -> dict[str, Any]:
    return {
        "id": row[0],
        "user_id": row[1],
        "post_id": row[2],
        "channel_id": row[3],
        "create_at": row[4],
        "update_at": row[5],
        "delete_at": row[6],
        "name": row[7],
        "extension": row[8],
        "size": row[9],
        "mime_type": row[10],
        "width": row[11],
        "height": row[12],
        "has_preview_image": bool(row[13]),
        "mini_preview": None,
        "remote_id": "",
        "archived": False,
    }


def insert_file_info(
    db: Any,
    *,
    file_id: str,
    user_id: str,
    channel_id: str,
    created: int,
    path: str,
    name: str,
    extension: str,
    size: int,
    mime_type: str,
    width: int,
    height: int,
) -> dict[str, Any]:
    db.execute(
        "INSERT INTO fileinfo (id, creatorid, postid, channelid, createat, updateat, deleteat, path, name, "
        "extension, size, mimetype, width, height, haspreviewimage) "
        "VALUES ($1, $2, '', $3, $4, $4, 0, $5, $6, $7, $8, $9, $10, $11, $12)",
        [
            file_id,
            user_id,
            channel_id,
            created,
            path,
            name,
            extension,
            size,
            mime_type,
            width,
            height,
            bool(width and height),
        ],
    )
    info = get_file_info(db, file_id)
    assert info is not None
    return info


def get_file_info(db: Any, file_id: str) -> dict[str, Any] | None:
    rows = db.query(f"SELECT {_FILE_COLUMNS} FROM fileinfo WHERE id = $1 AND deleteat = 0", [file_id])  # noqa: S608
    return _file_info(rows[0]) if rows else None


def get_file_path(db: Any, file_id: str) -> str | None:
    """The stored path of a file, relative to FileSettings.Directory."""
    rows = db.query("SELECT path FROM fileinfo WHERE id = $1 AND deleteat = 0", [file_id])
    return rows[0][0] if rows else None


def files_for_posts(db: Any, post_ids: Sequence[str]) -> list[dict[str, Any]]:
    rows = db.query(
        f"SELECT {_FILE_COLUMNS} FROM fileinfo "  # noqa: S608
        "WHERE postid = ANY(string_to_array($1, ',')) AND deleteat = 0 ORDER BY createat, id",
        [",".join(post_ids)],
    )
    return [_file_info(row) for row in rows]
