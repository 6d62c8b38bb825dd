"""The web app: install_dir/client when a release ships one, else a placeholder page like its index.html."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from .errors import AppError
from .request import Request
from .responses import MIME_TYPES, Response

WEB_APP_PAGE = (
    b'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Mattermost</title></head>'
    b'<body><noscript>To use Mattermost, please enable JavaScript.</noscript><div id="root"></div>'
    b"</body></html>"
)


def web_app(req: Request) -> Response:
    """Any non-API path gets the web app, as the real server's static handler does."""
    if req.method not in ("GET", "HEAD"):
        raise AppError(404, "api.context.404.app_error", "Sorry, we could not find the page.")
    client_dir = Path(getattr(req.app, "install_dir", None) or "/nonexistent") / "client"
    relative = urllib.parse.unquote(req.path).lstrip("/")
    try:
        candidate = (client_dir / relative).resolve()
        found = bool(relative) and candidate.is_file() and client_dir.resolve() in candidate.parents
    except (OSError, ValueError):  # e.g. a NUL byte in the path
        found = False
    if found:
        content_type = MIME_TYPES.guess_type(candidate.name)[0] or "application/octet-stream"
        return Response(200, content_type=content_type, file_path=candidate)
    index = client_dir / "index.html"
    if index.is_file():
        return Response(200, content_type="text/html; charset=utf-8", file_path=index)
    return Response(200, WEB_APP_PAGE, content_type="text/html; charset=utf-8")
