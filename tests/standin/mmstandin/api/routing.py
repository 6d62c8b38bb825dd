"""Which function answers a request: an API v4 route by method and path, else the web app."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Iterable

from .. import store
from .errors import AppError, bad_url_param
from .request import Request
from .responses import Response
from .webapp import web_app

API_ROOT = "/api/v4"

Route = Callable[..., Response]


class Router:
    """API routes in table order: the first whose path and method match answers.

    A path is written as in the real server's router, "/teams/{team_id}/members": each {name} matches
    one URL segment and reaches the route function as a keyword argument, percent-decoded.
    """

    def __init__(self, table: Iterable[tuple[str, str, Route]]) -> None:
        self.routes = [(method, _path_pattern(path), func) for method, path, func in table]

    def dispatch(self, req: Request) -> Response:
        if req.path != API_ROOT and not req.path.startswith(API_ROOT + "/"):
            return web_app(req)
        method_mismatch = False
        for method, pattern, func in self.routes:
            match = pattern.match(req.path)
            if not match:
                continue
            if method == req.method or (method == "GET" and req.method == "HEAD"):
                params = {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()}
                return func(req, **params)
            method_mismatch = True
        if method_mismatch:
            raise AppError(405, "api.context.405.app_error", "Method not allowed.")
        raise AppError(404, "api.context.404.app_error", "Sorry, we could not find the page.")


def _path_pattern(path: str) -> re.Pattern[str]:
    return re.compile(
        "^" + re.escape(API_ROOT) + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "/?$"
    )


def require_id(value: str, name: str) -> str:
    """A {name} URL parameter that must be a Mattermost id: anything else is a 400, never a lookup."""
    if not store.is_valid_id(value):
        raise bad_url_param(name)
    return value
