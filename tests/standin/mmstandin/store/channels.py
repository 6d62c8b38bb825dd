"""The channels and channelmembers tables (teams.py creates the default channels with each team)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

DEFAULT_CHANNELS = (("town-square", "Town Square"), ("off-topic", "Off-Topic"))

SCHEMA = (
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
)

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
