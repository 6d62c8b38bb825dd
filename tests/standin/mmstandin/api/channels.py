"""Channel routes, and who may read or write a channel (posts and files ask here too)."""

from __future__ import annotations

from typing import Any

from .. import store
from .errors import AppError, forbidden
from .request import Request
from .responses import Response, json_response
from .routing import require_id
from .teams import team_member


def can_read_channel(req: Request, channel: dict[str, Any]) -> bool:
    if req.is_system_admin() or store.is_channel_member(req.db, channel["id"], req.user_id):
        return True
    return channel["type"] == "O" and team_member(req, channel["team_id"]) is not None


def readable_channel(req: Request, channel_id: str) -> dict[str, Any]:
    channel = store.get_channel(req.db, require_id(channel_id, "channel_id"))
    if channel is None:
        raise AppError(404, "app.channel.get.existing.app_error", "Unable to find the existing channel.")
    if not can_read_channel(req, channel):
        raise forbidden()
    return channel


def writable_channel(req: Request, channel_id: str) -> dict[str, Any]:
    """The channel, if the caller may post or upload to it: members may, and system admins.

    Reading is wider (any team member reads an open channel), writing needs the membership itself.
    """
    channel = store.get_channel(req.db, channel_id)
    if channel is None or not (
        req.is_system_admin() or store.is_channel_member(req.db, channel_id, req.user_id)
    ):
        raise forbidden()
    return channel


def get_channel_by_name(req: Request, team_id: str, channel_name: str) -> Response:
    req.require_session()
    team_id = require_id(team_id, "team_id")
    if not req.is_system_admin() and team_member(req, team_id) is None:
        raise forbidden()
    channel = store.get_channel_by_name(req.db, team_id, channel_name)
    if channel is None or (channel["type"] == "P" and not can_read_channel(req, channel)):
        raise AppError(404, "app.channel.get_by_name.missing.app_error", "Channel does not exist.")
    return json_response(channel)


def get_channel(req: Request, channel_id: str) -> Response:
    req.require_session()
    return json_response(readable_channel(req, channel_id))
