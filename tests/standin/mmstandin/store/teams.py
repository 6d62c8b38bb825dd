"""The teams and teammembers tables; a new team comes with its default channels."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .channels import DEFAULT_CHANNELS, default_channel_notify_props
from .model import Conflict, is_unique_violation, new_id, now_ms

SCHEMA = (
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
)

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
        if is_unique_violation(exc):
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
