"""The Response every route returns, its JSON form, and the file-name-to-type map routes share."""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The interpreter's built-in extension map only, so results do not depend on the host's /etc/mime.types.
MIME_TYPES = mimetypes.MimeTypes()


class Response:
    """What a route returns: status, body (bytes or a file to stream) and extra headers."""

    def __init__(
        self,
        status: int = 200,
        body: bytes = b"",
        *,
        content_type: str = "application/json",
        headers: list[tuple[str, str]] | None = None,
        file_path: Path | None = None,
        upgrade: Callable[[], None] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or []
        self.file_path = file_path
        self.upgrade = upgrade


def json_response(obj: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, json.dumps(obj, separators=(",", ":")).encode("utf-8"), headers=headers)
