"""The posts table: messages, threads (root_id) and the channel counters a new post moves."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from .files import files_for_posts
from .model import load_json, new_id, now_ms

SCHEMA = (
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
)

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
        "props": load_json(row[12], {}),
        "hashtags": row[13],
        "pending_post_id": "",
        "reply_count": row[15],
        "last_reply_at": row[16],
        "participants": None,
        "metadata": {},
    }
    file_ids = load_json(row[14], [])
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
