"""The fileinfo table: uploaded files' metadata; the bytes live under FileSettings.Directory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .model import is_valid_id

SCHEMA = (
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
