"""HTTP routes of the stand-in: a subset of Mattermost's API v4 with the real JSON shapes.

A smoke test written against a real Mattermost server must run unchanged against this one, so the
routes, status codes, AppError bodies, headers (X-Version-Id, X-Request-Id, Token, MMAUTHTOKEN) and
permission rules follow the real server's defaults. Data goes to PostgreSQL through `store`, uploaded
files under FileSettings.Directory (`app.data_dir`) with the real server's path layout.

`serve(app, host, port)` returns a ThreadingHTTPServer that is bound but not yet serving; the caller
runs `serve_forever()` in a thread and calls `shutdown()` to stop (open websockets notice within 0.5 s).

    __init__.py           the routing table and serve()
    http_server.py        HTTP/1.1 server and request handler     routing.py    Router, URL parameters
    request.py            body, session, CSRF check               responses.py  Response, JSON bodies
    errors.py             AppError                                settings.py   config with defaults
    system.py  users.py  teams.py  channels.py  posts.py  files.py  websocket_upgrade.py   the routes
    webapp.py             any non-API path
"""

from __future__ import annotations

from typing import Any

from . import channels, files, posts, system, teams, users, websocket_upgrade
from .http_server import StandinServer
from .routing import Router

# The first match wins, so a literal segment ("/users/websocket") must come before the {param} route
# that would also match it ("/users/{user_id}").
ROUTER = Router(
    [
        ("GET", "/system/ping", system.get_system_ping),
        ("GET", "/config/client", system.get_client_config),
        ("POST", "/users", users.create_user),
        ("POST", "/users/login", users.login),
        ("POST", "/users/logout", users.logout),
        ("GET", "/users/websocket", websocket_upgrade.connect_websocket),
        ("GET", "/users/{user_id}", users.get_user),
        ("POST", "/teams", teams.create_team),
        ("GET", "/teams/name/{team_name}", teams.get_team_by_name),
        ("GET", "/teams/{team_id}", teams.get_team),
        ("GET", "/users/{user_id}/teams", teams.get_user_teams),
        ("POST", "/teams/{team_id}/members", teams.add_team_member),
        ("GET", "/teams/{team_id}/members/{user_id}", teams.get_team_member),
        ("GET", "/teams/{team_id}/channels/name/{channel_name}", channels.get_channel_by_name),
        ("GET", "/channels/{channel_id}", channels.get_channel),
        ("POST", "/posts", posts.create_post),
        ("GET", "/posts/{post_id}", posts.get_post),
        ("GET", "/posts/{post_id}/thread", posts.get_post_thread),
        ("GET", "/channels/{channel_id}/posts", posts.get_channel_posts),
        ("POST", "/files", files.upload_files),
        ("GET", "/files/{file_id}", files.get_file),
        ("GET", "/files/{file_id}/info", files.get_file_info),
        ("GET", "/websocket", websocket_upgrade.connect_websocket),
    ]
)


def serve(app: Any, host: str, port: int) -> StandinServer:
    """A bound API server for the app; run serve_forever() in a thread, shutdown() to stop."""
    return StandinServer((host, port), app, ROUTER)
