"""One API request: its query, its body (read lazily, with limits) and the caller's session."""

from __future__ import annotations

import json
import urllib.parse
from typing import TYPE_CHECKING, Any

from .. import store
from .errors import AppError, bad_body_param, too_large, unauthorized

if TYPE_CHECKING:
    from .http_server import Handler, StandinServer

MAX_JSON_BODY = 10 * 1024 * 1024


def parse_cookies(header: str | None) -> dict[str, str]:
    cookies: dict[str, str] = {}
    for pair in (header or "").split(";"):
        name, sep, value = pair.strip().partition("=")
        if sep and name and name not in cookies:
            cookies[name] = value.strip().strip('"')
    return cookies


class Request:
    """One API request, with lazy body reading and the caller's session."""

    def __init__(self, handler: Handler, request_id: str) -> None:
        self.handler = handler
        self.server: StandinServer = handler.server  # type: ignore[assignment]
        self.app = self.server.app
        self.db = self.app.db
        self.request_id = request_id
        self.method = handler.command
        split = urllib.parse.urlsplit(handler.path)
        self.path = split.path
        self.query = {k: v[0] for k, v in urllib.parse.parse_qs(split.query, keep_blank_values=True).items()}
        self.headers = handler.headers
        self.cookies = parse_cookies(self.headers.get("Cookie"))
        self._body: bytes | None = None
        self._session: dict[str, Any] | None = None
        self._session_resolved = False
        self.credential_source = ""

    # Body

    @property
    def content_length(self) -> int:
        try:
            return max(0, int(self.headers.get("Content-Length") or 0))
        except ValueError as exc:
            self.handler.close_connection = True
            raise AppError(400, "api.context.invalid_body_param.app_error", "Bad Content-Length.") from exc

    @property
    def chunked(self) -> bool:
        return "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()

    @property
    def body_pending(self) -> bool:
        return self._body is None and (self.chunked or self.content_length > 0)

    def body(self, limit: int = MAX_JSON_BODY) -> bytes:
        if self._body is not None:
            return self._body
        if self.chunked:
            self._body = self._read_chunked(limit)
            return self._body
        length = self.content_length
        if length > limit:
            raise too_large(length, limit)
        data = self.handler.rfile.read(length) if length else b""
        if len(data) < length:
            self.handler.close_connection = True
            raise AppError(400, "api.context.invalid_body_param.app_error", "Request body was cut short.")
        self._body = data
        return data

    def _read_chunked(self, limit: int) -> bytes:
        reader, chunks, total = self.handler.rfile, [], 0
        while True:
            size_line = reader.readline(65537)
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError as exc:
                self.handler.close_connection = True
                raise AppError(400, "api.context.invalid_body_param.app_error", "Bad chunked body.") from exc
            if size == 0:
                while reader.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > limit:
                self.handler.close_connection = True
                raise too_large(total, limit)
            chunks.append(reader.read(size))
            reader.readline(3)

    def json_object(self, name: str) -> dict[str, Any]:
        try:
            data = json.loads(self.body().decode("utf-8") or "null")
        except ValueError as exc:
            raise bad_body_param(name) from exc
        if not isinstance(data, dict):
            raise bad_body_param(name)
        return data

    # Session

    def _token(self) -> str:
        auth = (self.headers.get("Authorization") or "").strip()
        for scheme in ("BEARER", "TOKEN"):
            if auth[: len(scheme)].upper() == scheme and auth[len(scheme) : len(scheme) + 1] in (" ", "\t"):
                self.credential_source = "header"
                return auth[len(scheme) + 1 :].strip()
        if self.cookies.get("MMAUTHTOKEN"):
            self.credential_source = "cookie"
            return self.cookies["MMAUTHTOKEN"]
        if self.query.get("access_token"):
            self.credential_source = "query"
            return self.query["access_token"]
        return ""

    @property
    def session(self) -> dict[str, Any] | None:
        """The caller's live session, or None (no token, unknown/expired token, failed CSRF check)."""
        if not self._session_resolved:
            self._session_resolved = True
            token = self._token()
            session = store.get_session(self.db, token) if token else None
            if session and self.credential_source == "cookie" and self.method not in ("GET", "HEAD"):
                # Cookie sessions must prove the request came from the web app (CSRF protection).
                csrf_ok = self.headers.get("X-CSRF-Token") == session["csrf_token"]
                legacy_ok = self.headers.get("X-Requested-With") == "XMLHttpRequest"
                if not (csrf_ok or legacy_ok):
                    session = None
            self._session = session
        return self._session

    def require_session(self) -> dict[str, Any]:
        session = self.session
        if session is None:
            raise unauthorized()
        return session

    @property
    def user_id(self) -> str:
        return self.require_session()["user_id"]

    def is_system_admin(self) -> bool:
        session = self.session
        return bool(session) and "system_admin" in session["roles"].split()
