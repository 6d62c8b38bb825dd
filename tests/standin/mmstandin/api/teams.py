"""Team routes: creating teams, looking them up, and team membership."""

from __future__ import annotations

import re
from typing import Any

from .. import store
from .errors import AppError, bad_body_param, forbidden
from .request import Request
from .responses import Response, json_response
from .routing import require_id
from .settings import setting_bool
from .users import user_param

RESERVED_TEAM_NAMES = frozenset(
    {
        "admin", "api", "channel", "claim", "error", "files", "help", "landing", "login", "mfa", "oauth",
        "plug", "plugins", "post", "signup", "boards", "playbooks",
    }
)  # fmt: skip
TEAM_NAME_RE = re.compile(r"^[a-z0-9]+([a-z\-0-9]+|(__)?)[a-z0-9]+$")


def team_member(req: Request, team_id: str) -> dict[str, Any] | None:
    """The caller's active membership of the team."""
    member = store.get_team_member(req.db, team_id, req.user_id)
    return member if member and not member["delete_at"] else None


def can_manage_team(req: Request, team_id: str) -> bool:
    if req.is_system_admin():
        return True
    member = team_member(req, team_id)
    return bool(member and member["scheme_admin"])


def sanitize_team(req: Request, team: dict[str, Any]) -> dict[str, Any]:
    if can_manage_team(req, team["id"]):
        return team
    return dict(team, email="", invite_id="")


def _visible_team(req: Request, team: dict[str, Any] | None, missing_id: str) -> dict[str, Any]:
    if team is None:
        raise AppError(404, missing_id, "Unable to find the existing team.")
    open_team = team["type"] == "O" and team["allow_open_invite"]
    if not open_team and not req.is_system_admin() and team_member(req, team["id"]) is None:
        raise forbidden()
    return sanitize_team(req, team)


def create_team(req: Request) -> Response:
    req.require_session()
    data = req.json_object("team")
    if not setting_bool(req.app, "TeamSettings", "EnableTeamCreation", True) and not req.is_system_admin():
        raise AppError(
            403, "api.team.is_team_creation_allowed.disabled.app_error", "Team creation has been disabled."
        )
    name = str(data.get("name") or "")
    display_name = str(data.get("display_name") or "").strip()
    team_type = str(data.get("type") or "")
    if name in RESERVED_TEAM_NAMES:
        raise AppError(400, "model.team.is_valid.reserved.app_error", "This URL is not available.")
    if not 2 <= len(name) <= 64 or not TEAM_NAME_RE.match(name):
        raise AppError(
            400,
            "model.team.is_valid.url.app_error",
            "URL must be at least 2 characters long, only contain lowercase letters, numbers and dashes.",
        )
    if not display_name or len(display_name) > 64:
        raise AppError(400, "model.team.is_valid.name.app_error", "Invalid name.")
    if team_type not in ("O", "I"):
        raise AppError(400, "model.team.is_valid.type.app_error", "Invalid type.")
    try:
        team = store.create_team(
            req.db,
            creator_id=req.user_id,
            name=name,
            display_name=display_name,
            team_type=team_type,
            allow_open_invite=bool(data.get("allow_open_invite", False)),
            description=str(data.get("description") or "")[:255],
            email=str(data.get("email") or "")[:128],
            company_name=str(data.get("company_name") or "")[:64],
            allowed_domains=str(data.get("allowed_domains") or ""),
        )
    except store.Conflict as exc:
        raise AppError(
            400, "app.team.save.existing.app_error", "A team with that name already exists"
        ) from exc
    return json_response(team, 201)


def get_team_by_name(req: Request, team_name: str) -> Response:
    req.require_session()
    team = store.get_team_by_name(req.db, team_name)
    return json_response(_visible_team(req, team, "app.team.get_by_name.missing.app_error"))


def get_team(req: Request, team_id: str) -> Response:
    req.require_session()
    team = store.get_team(req.db, require_id(team_id, "team_id"))
    return json_response(_visible_team(req, team, "app.team.get.find.app_error"))


def get_user_teams(req: Request, user_id: str) -> Response:
    req.require_session()
    user_id = user_param(req, user_id)
    if user_id != req.user_id and not req.is_system_admin():
        raise forbidden()
    return json_response([sanitize_team(req, t) for t in store.teams_for_user(req.db, user_id)])


def add_team_member(req: Request, team_id: str) -> Response:
    req.require_session()
    team_id = require_id(team_id, "team_id")
    data = req.json_object("team_member")
    if data.get("team_id", team_id) != team_id:
        raise bad_body_param("team_id")
    user_id = data.get("user_id")
    if not store.is_valid_id(user_id):
        raise bad_body_param("user_id")
    team = store.get_team(req.db, team_id)
    if team is None:
        raise AppError(404, "app.team.get.find.app_error", "Unable to find the existing team.")
    joining_open_team = user_id == req.user_id and team["type"] == "O" and team["allow_open_invite"]
    # Out of the box every team member holds add_user_to_team, not only team admins.
    if not (joining_open_team or req.is_system_admin() or team_member(req, team_id)):
        raise forbidden()
    if store.get_user(req.db, user_id) is None:
        raise AppError(404, "app.user.missing_account.const", "Unable to find the user.")
    return json_response(store.add_team_member(req.db, team_id, user_id), 201)


def get_team_member(req: Request, team_id: str, user_id: str) -> Response:
    req.require_session()
    team_id = require_id(team_id, "team_id")
    user_id = user_param(req, user_id)
    if not req.is_system_admin() and team_member(req, team_id) is None:
        raise forbidden()
    member = store.get_team_member(req.db, team_id, user_id)
    if member is None:
        raise AppError(
            404, "app.team.get_member.missing.app_error", "No team member found for that user ID and team ID."
        )
    return json_response(member)
