"""Post routes: new posts (announced on the websocket), single posts, threads, channel pages."""

from __future__ import annotations

import json
from typing import Any

from .. import store, websocket
from .channels import can_read_channel, readable_channel, writable_channel
from .errors import AppError, bad_body_param, bad_url_param, forbidden
from .request import Request
from .responses import Response, json_response
from .routing import require_id

POSTS_PER_PAGE_DEFAULT, POSTS_PER_PAGE_MAX = 60, 200
MAX_FILES_PER_POST = 10
POST_MESSAGE_MAX_RUNES = 16383


def post_list(posts: list[dict[str, Any]], order: list[str], **cursor: Any) -> dict[str, Any]:
    return {
        "order": order,
        "posts": {post["id"]: post for post in posts},
        "next_post_id": cursor.get("next_post_id", ""),
        "prev_post_id": cursor.get("prev_post_id", ""),
        "has_next": cursor.get("has_next", False),
        "first_inaccessible_post_time": 0,
    }


def _readable_post(req: Request, post_id: str) -> dict[str, Any]:
    post = store.get_post(req.db, require_id(post_id, "post_id"))
    if post is None:
        raise AppError(404, "app.post.get.app_error", "Unable to get the post.")
    channel = store.get_channel(req.db, post["channel_id"])
    if channel is None or not can_read_channel(req, channel):
        raise forbidden()
    return post


def create_post(req: Request) -> Response:
    req.require_session()
    data = req.json_object("post")
    channel_id = data.get("channel_id")
    if not store.is_valid_id(channel_id):
        raise bad_body_param("channel_id")
    channel = writable_channel(req, channel_id)
    message = data.get("message", "")
    if not isinstance(message, str) or len(message) > POST_MESSAGE_MAX_RUNES:
        raise AppError(400, "model.post.is_valid.message_length.app_error", "Message too long or invalid.")
    root_id = data.get("root_id") or ""
    if root_id:
        root = store.get_post(req.db, root_id) if store.is_valid_id(root_id) else None
        if root is None or root["channel_id"] != channel_id or root["root_id"]:
            raise AppError(400, "api.post.create_post.root_id.app_error", "Invalid RootId parameter.")
    props = data.get("props") or {}
    if not isinstance(props, dict):
        raise bad_body_param("props")
    file_ids = data.get("file_ids") or []
    if not isinstance(file_ids, list) or not all(isinstance(f, str) for f in file_ids):
        raise bad_body_param("file_ids")
    if len(file_ids) > MAX_FILES_PER_POST:
        raise AppError(400, "model.post.is_valid.file_ids.app_error", "Invalid file ids.")
    # Like the real server, ids that are not the caller's unattached uploads to this channel are dropped.
    attachable = store.attachable_file_ids(req.db, file_ids, req.user_id, channel_id)
    post = store.create_post(
        req.db,
        user_id=req.user_id,
        channel_id=channel_id,
        message=message,
        root_id=root_id,
        props=props,
        file_ids=attachable,
    )
    post["pending_post_id"] = str(data.get("pending_post_id") or "")
    _publish_posted(req, channel, post)
    return json_response(post, 201)


def _publish_posted(req: Request, channel: dict[str, Any], post: dict[str, Any]) -> None:
    hub: websocket.Hub = req.server.hub
    if not hub.connections():
        return
    sender = store.get_user(req.db, post["user_id"])
    data = {
        "channel_display_name": channel["display_name"],
        "channel_name": channel["name"],
        "channel_type": channel["type"],
        "post": json.dumps(post, separators=(",", ":")),
        "sender_name": "@" + (sender["username"] if sender else ""),
        "set_online": True,
        "team_id": channel["team_id"],
    }
    broadcast = websocket.empty_broadcast(channel_id=channel["id"])
    hub.publish(store.channel_member_ids(req.db, channel["id"]), "posted", data, broadcast)


def get_post(req: Request, post_id: str) -> Response:
    req.require_session()
    return json_response(_readable_post(req, post_id))


def get_post_thread(req: Request, post_id: str) -> Response:
    req.require_session()
    post = _readable_post(req, post_id)
    posts = store.thread_posts(req.db, post["root_id"] or post["id"])
    return json_response(post_list(posts, [p["id"] for p in posts]))


def _page_param(req: Request, name: str, default: int, maximum: int | None = None) -> int:
    raw = req.query.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise bad_url_param(name) from exc
    if value < 0:
        raise bad_url_param(name)
    return min(value, maximum) if maximum is not None else value


def get_channel_posts(req: Request, channel_id: str) -> Response:
    req.require_session()
    channel = readable_channel(req, channel_id)
    page = _page_param(req, "page", 0)
    per_page = _page_param(req, "per_page", POSTS_PER_PAGE_DEFAULT, POSTS_PER_PAGE_MAX)
    posts = store.channel_posts(req.db, channel["id"], page * per_page, per_page) if per_page else []
    order = [p["id"] for p in posts]
    # Replies in the page come with their thread's root, which is in "posts" but not in "order".
    missing_roots = {p["root_id"] for p in posts if p["root_id"]} - set(order)
    roots = store.get_posts(req.db, sorted(missing_roots)) if missing_roots else []
    cursor: dict[str, Any] = {}
    if posts:
        newest, oldest = posts[0], posts[-1]
        cursor["next_post_id"] = store.neighbour_post_id(
            req.db, channel["id"], newest["create_at"], newest["id"], newer=True
        )
        cursor["prev_post_id"] = store.neighbour_post_id(
            req.db, channel["id"], oldest["create_at"], oldest["id"], newer=False
        )
        cursor["has_next"] = bool(cursor["next_post_id"])
    return json_response(post_list(posts + roots, order, **cursor))
