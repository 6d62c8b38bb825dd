"""SQL for the stand-in's data: users, sessions, teams, channels, members, posts and file infos.

Everything lives in PostgreSQL, in tables named like Mattermost's own (lower-case, no underscores), so the
data survives a restart, an upgrade to another release and a database backup/restore. The functions take
the `Database` object (`.query(sql, params) -> rows`, `.execute(sql, params) -> int`) and return plain
dicts already shaped like the JSON the real API sends. Every statement is parameterised ($1, $2, ...).

One module per table (or per table and its membership table), each with its own CREATE statements:

    model.py      ids, timestamps, Conflict           passwords.py  password hashes
    users.py      users                               sessions.py   sessions
    teams.py      teams, teammembers                  channels.py   channels, channelmembers
    posts.py      posts                               files.py      fileinfo

Callers use the names below (`store.get_user(db, user_id)`), not the modules.
"""

from __future__ import annotations

from typing import Any

from . import channels, files, posts, sessions, teams, users
from .channels import channel_member_ids, get_channel, get_channel_by_name, is_channel_member
from .files import attachable_file_ids, get_file_info, get_file_path, insert_file_info
from .model import ID_ALPHABET, Conflict, is_valid_id, new_id, now_ms
from .passwords import check_password
from .posts import channel_posts, create_post, get_post, get_posts, neighbour_post_id, thread_posts
from .sessions import create_session, delete_session, get_session
from .teams import add_team_member, create_team, get_team, get_team_by_name, get_team_member, teams_for_user
from .users import count_users, find_user_for_login, find_user_for_login_by_id, get_user, insert_user

__all__ = [
    "ID_ALPHABET",
    "Conflict",
    "add_team_member",
    "attachable_file_ids",
    "channel_member_ids",
    "channel_posts",
    "check_password",
    "count_users",
    "create_post",
    "create_session",
    "create_tables",
    "create_team",
    "delete_session",
    "find_user_for_login",
    "find_user_for_login_by_id",
    "get_channel",
    "get_channel_by_name",
    "get_file_info",
    "get_file_path",
    "get_post",
    "get_posts",
    "get_session",
    "get_team",
    "get_team_by_name",
    "get_team_member",
    "get_user",
    "insert_file_info",
    "insert_user",
    "is_channel_member",
    "is_valid_id",
    "neighbour_post_id",
    "new_id",
    "now_ms",
    "teams_for_user",
    "thread_posts",
]

# Users first, file infos last, as the API fills them; the order is for reading only (no foreign keys).
SCHEMA = (*users.SCHEMA, *sessions.SCHEMA, *teams.SCHEMA, *channels.SCHEMA, *posts.SCHEMA, *files.SCHEMA)


def create_tables(db: Any) -> None:
    """Create every table and index the API needs; safe to run again on an existing database."""
    for statement in SCHEMA:
        db.execute(statement)
