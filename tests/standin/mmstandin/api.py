"""HTTP routes of the stand-in: a subset of Mattermost's API v4 with the real JSON shapes.

A smoke test written against a real Mattermost server must run unchanged against this one, so the
routes, status codes, AppError bodies, headers (X-Version-Id, X-Request-Id, Token, MMAUTHTOKEN) and
permission rules follow the real server's defaults. Data goes to PostgreSQL through `store`, uploaded
files under FileSettings.Directory (`app.data_dir`) with the real server's path layout.

`serve(app, host, port)` returns a ThreadingHTTPServer that is bound but not yet serving; the caller
runs `serve_forever()` in a thread and calls `shutdown()` to stop (open websockets notice within 0.5 s).
"""

from __future__ import annotations

import email.message
import email.utils
import http.server
import json
import logging
import mimetypes
import re
import shutil
import socket
import socketserver
import struct
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import store, websocket

API_ROOT = "/api/v4"
MAX_JSON_BODY = 10 * 1024 * 1024
DEFAULT_MAX_FILE_SIZE = 104_857_600
DEFAULT_SESSION_HOURS = 720
POSTS_PER_PAGE_DEFAULT, POSTS_PER_PAGE_MAX = 60, 200
MAX_FILES_PER_POST = 10
POST_MESSAGE_MAX_RUNES = 16383

RESERVED_USERNAMES = frozenset({"all", "channel", "matterbot", "system"})
RESERVED_TEAM_NAMES = frozenset(
    {
        "admin", "api", "channel", "claim", "error", "files", "help", "landing", "login", "mfa", "oauth",
        "plug", "plugins", "post", "signup", "boards", "playbooks",
    }
)  # fmt: skip
USERNAME_RE = re.compile(r"^[a-z0-9.\-_]{1,64}$")
TEAM_NAME_RE = re.compile(r"^[a-z0-9]+([a-z\-0-9]+|(__)?)[a-z0-9]+$")
EMAIL_RE = re.compile(r"^[^@\s\"<>(),;:]+@[^@\s\"<>(),;:]+$")
PASSWORD_SYMBOLS = " !\"\\#$%&'()*+,-./:;<=>?@[]^_`|~"  # noqa: S105 - a character class
MEDIA_TYPES_WITH_SIZE = ("image/png", "image/jpeg", "image/gif", "image/bmp")

# The interpreter's built-in extension map only, so results do not depend on the host's /etc/mime.types.
_MIME_TYPES = mimetypes.MimeTypes()

WEB_APP_PAGE = (
    b'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Mattermost</title></head>'
    b'<body><noscript>To use Mattermost, please enable JavaScript.</noscript><div id="root"></div>'
    b"</body></html>"
)


# Errors and responses ----------------------------------------------------------------------------------


class AppError(Exception):
    """An API error, sent as Mattermost's AppError JSON with its HTTP status."""

    def __init__(
        self,
        status: int,
        error_id: str,
        message: str,
        detailed: str = "",
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(f"{status} {error_id}: {message}")
        self.status = status
        self.error_id = error_id
        self.message = message
        self.detailed = detailed
        self.headers = headers or []

    def response(self, request_id: str) -> Response:
        body = {
            "id": self.error_id,
            "message": self.message,
            "detailed_error": self.detailed,
            "request_id": request_id,
            "status_code": self.status,
        }
        return json_response(body, self.status, self.headers)


def unauthorized() -> AppError:
    return AppError(
        401, "api.context.session_expired.app_error", "Invalid or expired session, please login again."
    )


def forbidden(detailed: str = "") -> AppError:
    return AppError(
        403, "api.context.permissions.app_error", "You do not have the appropriate permissions.", detailed
    )


def bad_url_param(name: str) -> AppError:
    return AppError(
        400, "api.context.invalid_url_param.app_error", f"Invalid or missing {name} parameter in request URL."
    )


def bad_body_param(name: str) -> AppError:
    return AppError(
        400, "api.context.invalid_body_param.app_error", f"Invalid or missing {name} in request body."
    )


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


# Configuration access ----------------------------------------------------------------------------------


def setting(app: Any, section: str, key: str, default: Any) -> Any:
    value = ((getattr(app, "config", None) or {}).get(section) or {}).get(key)
    return default if value is None else value


def setting_bool(app: Any, section: str, key: str, default: bool) -> bool:
    value = setting(app, section, key, default)
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def setting_int(app: Any, section: str, key: str, default: int) -> int:
    try:
        return int(setting(app, section, key, default))
    except (TypeError, ValueError):
        return default


# Requests ----------------------------------------------------------------------------------------------


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


def too_large(length: int, limit: int) -> AppError:
    return AppError(
        413,
        "api.file.upload_file.too_large_detailed.app_error",
        f"Unable to upload file. {length} bytes exceeds the maximum allowed {limit} bytes.",
    )


# Routing -----------------------------------------------------------------------------------------------

Route = Callable[..., Response]
ROUTES: list[tuple[str, re.Pattern[str], Route]] = []


def route(method: str, path: str) -> Callable[[Route], Route]:
    pattern = re.compile(
        "^" + re.escape(API_ROOT) + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "/?$"
    )

    def register(func: Route) -> Route:
        ROUTES.append((method, pattern, func))
        return func

    return register


def dispatch(req: Request) -> Response:
    if req.path != API_ROOT and not req.path.startswith(API_ROOT + "/"):
        return web_app(req)
    method_mismatch = False
    for method, pattern, func in ROUTES:
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
        content_type = _MIME_TYPES.guess_type(candidate.name)[0] or "application/octet-stream"
        return Response(200, content_type=content_type, file_path=candidate)
    index = client_dir / "index.html"
    if index.is_file():
        return Response(200, content_type="text/html; charset=utf-8", file_path=index)
    return Response(200, WEB_APP_PAGE, content_type="text/html; charset=utf-8")


def _require_id(value: str, name: str) -> str:
    if not store.is_valid_id(value):
        raise bad_url_param(name)
    return value


# System ------------------------------------------------------------------------------------------------


def _database_ok(app: Any) -> bool:
    try:
        return bool(app.db.ping())
    except Exception:  # a broken connection must read as UNHEALTHY, never as a 500 traceback
        return False


def _filestore_ok(app: Any) -> bool:
    """Like the real file backend's TestConnection: the data directory must take a new file."""
    try:
        data_dir = Path(app.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".testfile-"):
            pass
    except OSError:
        return False
    return True


@route("GET", "/system/ping")
def get_system_ping(req: Request) -> Response:
    body = {
        "status": "OK",
        "ActiveSearchBackend": "database",
        "AndroidLatestVersion": "",
        "AndroidMinVersion": "",
        "IosLatestVersion": "",
        "IosMinVersion": "",
    }
    healthy = bool(getattr(req.app, "healthy", True))
    database_ok = _database_ok(req.app)
    headers = []
    if req.query.get("get_server_status", "").lower() == "true":
        filestore_ok = _filestore_ok(req.app)
        body["database_status"] = "OK" if database_ok else "UNHEALTHY"
        body["filestore_status"] = "OK" if filestore_ok else "UNHEALTHY"
        headers = [
            ("database_status", body["database_status"]),
            ("filestore_status", body["filestore_status"]),
        ]
        healthy = healthy and filestore_ok
    if not (healthy and database_ok):
        body["status"] = "UNHEALTHY"
        if req.query.get("use_rest_semantics", "").lower() != "true":
            return json_response(body, 500, headers)
    return json_response(body, 200, headers)


@route("GET", "/config/client")
def get_client_config(req: Request) -> Response:
    build = getattr(req.app, "build", None) or {}
    enterprise = bool(build.get("enterprise"))
    config = {
        "Version": str(build.get("version", "")),
        "BuildNumber": str(build.get("build_number", "")),
        "BuildDate": str(build.get("build_date", "")),
        "BuildHash": str(build.get("build_hash", "")),
        "BuildHashEnterprise": str(
            build.get("build_hash_enterprise") or (build.get("build_hash", "") if enterprise else "none")
        ),
        "BuildEnterpriseReady": "true" if enterprise else "false",
        "SiteURL": str(setting(req.app, "ServiceSettings", "SiteURL", "")),
        "SiteName": str(setting(req.app, "TeamSettings", "SiteName", "Mattermost")),
        "DiagnosticsEnabled": "true"
        if setting_bool(req.app, "LogSettings", "EnableDiagnostics", True)
        else "false",
        "EnableSignUpWithEmail": "true",
        "EnableSignInWithEmail": "true",
        "EnableSignInWithUsername": "true",
    }
    try:
        config["NoAccounts"] = "true" if store.count_users(req.db) == 0 else "false"
    except Exception:  # the client config must answer even while the database is away
        req.server.logger.debug("client config without NoAccounts: database unavailable")
    return json_response(config)


# Users -------------------------------------------------------------------------------------------------


def sanitize_user(req: Request, user: dict[str, Any]) -> dict[str, Any]:
    """What the caller may see of a user: everything for themself and admins, a profile for others."""
    session = req.session
    if session and (session["user_id"] == user["id"] or req.is_system_admin()):
        return user
    user = dict(user, notify_props={}, email_verified=False)
    user.pop("last_password_update", None)
    if not setting_bool(req.app, "PrivacySettings", "ShowEmailAddress", True):
        user["email"] = ""
    if not setting_bool(req.app, "PrivacySettings", "ShowFullName", True):
        user["first_name"] = user["last_name"] = ""
    return user


def check_password_rules(app: Any, password: str) -> None:
    minimum = setting_int(app, "PasswordSettings", "MinimumLength", 8)
    rules = [
        ("lowercase", "PasswordSettings", "Lowercase", lambda p: any(c.islower() for c in p)),
        ("uppercase", "PasswordSettings", "Uppercase", lambda p: any(c.isupper() for c in p)),
        ("number", "PasswordSettings", "Number", lambda p: any(c.isdigit() for c in p)),
        ("symbol", "PasswordSettings", "Symbol", lambda p: any(c in PASSWORD_SYMBOLS for c in p)),
    ]
    failed = [
        name
        for name, section, key, ok in rules
        if setting_bool(app, section, key, False) and not ok(password)
    ]
    if len(password) > 72:
        raise AppError(400, "model.user.pre_save.password_too_long.app_error", "Password is too long.")
    if len(password) < minimum or failed:
        suffix = "".join("_" + name for name in failed)
        raise AppError(
            400,
            f"model.user.is_valid.pwd{suffix}.app_error",
            f"Your password must contain at least {minimum} characters"
            + (" and " + ", ".join(failed) if failed else "")
            + ".",
        )


@route("POST", "/users")
def create_user(req: Request) -> Response:
    data = req.json_object("user")
    first_user = store.count_users(req.db) == 0
    admin = req.is_system_admin()
    if not first_user and not admin:
        if not setting_bool(req.app, "TeamSettings", "EnableUserCreation", True):
            raise AppError(501, "api.user.create_user.disabled.app_error", "User creation is disabled.")
        if not setting_bool(req.app, "TeamSettings", "EnableOpenServer", False):
            raise AppError(
                403,
                "api.user.create_user.no_open_server",
                "This server does not allow open signups.  Please speak with your Administrator to "
                "receive an invitation.",
            )
    username = str(data.get("username") or "").strip().lower()
    email = str(data.get("email") or "").strip().lower()
    password = data.get("password")
    if not USERNAME_RE.match(username) or username in RESERVED_USERNAMES:
        # The real server's message; its check (model.IsValidUsername) allows 1 to 64 characters.
        raise AppError(
            400,
            "model.user.is_valid.username.app_error",
            "Username must begin with a letter, and contain between 3 to 22 lowercase characters made up "
            "of numbers, letters, and the symbols '.', '-', and '_'.",
            f"username={username}",
        )
    if len(email) > 128 or not EMAIL_RE.match(email):
        raise AppError(400, "model.user.is_valid.email.app_error", "Invalid email.", f"email={email}")
    if not isinstance(password, str):
        raise AppError(400, "model.user.is_valid.pwd.app_error", "Invalid password.")
    check_password_rules(req.app, password)
    profile = {key: str(data.get(key) or "")[:64] for key in ("nickname", "first_name", "last_name")}
    try:
        user = store.insert_user(
            req.db,
            username=username,
            email=email,
            password=password,
            roles="system_admin system_user" if first_user else "system_user",
            position=str(data.get("position") or "")[:128],
            locale=str(data.get("locale") or "en")[:5],
            **profile,
        )
    except store.Conflict as exc:
        if exc.field == "email":
            raise AppError(
                400, "app.user.save.email_exists.app_error", "An account with that email already exists."
            ) from exc
        raise AppError(
            400, "app.user.save.username_exists.app_error", "An account with that username already exists."
        ) from exc
    return json_response(user, 201)


def _cookie(name: str, value: str, max_age: int, http_only: bool, secure: bool) -> str:
    expires = email.utils.formatdate(time.time() + max_age, usegmt=True)
    parts = [f"{name}={value}", "Path=/", f"Expires={expires}", f"Max-Age={max_age}"]
    if http_only:
        parts.append("HttpOnly")
    if secure:
        parts.append("Secure")
    parts.append("SameSite=Lax")
    return "; ".join(parts)


@route("POST", "/users/login")
def login(req: Request) -> Response:
    data = req.json_object("login")
    login_id = str(data.get("login_id") or "")
    password = data.get("password")
    if not isinstance(password, str) or not password:
        raise AppError(400, "api.user.login.blank_pwd.app_error", "Password field must not be blank")
    if data.get("id"):
        found = store.find_user_for_login_by_id(req.db, str(data["id"]))
    else:
        found = store.find_user_for_login(req.db, login_id) if login_id else None
    if found is None or not store.check_password(password, found[1]):
        raise AppError(
            401,
            "api.user.login.invalid_credentials_email_username",
            "Enter a valid email or username and/or password.",
        )
    user = found[0]
    if user["delete_at"]:
        raise AppError(
            401,
            "api.user.login.inactive.app_error",
            "Login failed because your account has been deactivated.",
        )
    hours = setting_int(req.app, "ServiceSettings", "SessionLengthWebInHours", DEFAULT_SESSION_HOURS)
    session = store.create_session(
        req.db, user["id"], user["roles"], hours * 3600 * 1000, str(data.get("device_id") or "")
    )
    secure = str(setting(req.app, "ServiceSettings", "SiteURL", "")).startswith("https://")
    max_age = hours * 3600
    headers = [
        ("Token", session["token"]),
        ("Set-Cookie", _cookie("MMAUTHTOKEN", session["token"], max_age, True, secure)),
        ("Set-Cookie", _cookie("MMUSERID", user["id"], max_age, False, secure)),
        ("Set-Cookie", _cookie("MMCSRF", session["csrf_token"], max_age, False, secure)),
    ]
    return json_response(user, 200, headers)


@route("POST", "/users/logout")
def logout(req: Request) -> Response:
    session = req.session
    if session:
        store.delete_session(req.db, session["token"])
    headers = [
        ("Set-Cookie", f"{name}=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0")
        for name in ("MMAUTHTOKEN", "MMUSERID", "MMCSRF")
    ]
    return json_response({"status": "OK"}, 200, headers)


def _user_param(req: Request, user_id: str) -> str:
    if user_id == "me":
        return req.user_id
    return _require_id(user_id, "user_id")


@route("GET", "/users/websocket")
def users_websocket(req: Request) -> Response:
    return connect_websocket(req)


@route("GET", "/users/{user_id}")
def get_user(req: Request, user_id: str) -> Response:
    req.require_session()
    user = store.get_user(req.db, _user_param(req, user_id))
    if user is None:
        raise AppError(404, "app.user.missing_account.const", "Unable to find the user.")
    return json_response(sanitize_user(req, user))


# Teams -------------------------------------------------------------------------------------------------


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


@route("POST", "/teams")
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


@route("GET", "/teams/name/{team_name}")
def get_team_by_name(req: Request, team_name: str) -> Response:
    req.require_session()
    team = store.get_team_by_name(req.db, team_name)
    return json_response(_visible_team(req, team, "app.team.get_by_name.missing.app_error"))


@route("GET", "/teams/{team_id}")
def get_team(req: Request, team_id: str) -> Response:
    req.require_session()
    team = store.get_team(req.db, _require_id(team_id, "team_id"))
    return json_response(_visible_team(req, team, "app.team.get.find.app_error"))


@route("GET", "/users/{user_id}/teams")
def get_user_teams(req: Request, user_id: str) -> Response:
    req.require_session()
    user_id = _user_param(req, user_id)
    if user_id != req.user_id and not req.is_system_admin():
        raise forbidden()
    return json_response([sanitize_team(req, t) for t in store.teams_for_user(req.db, user_id)])


@route("POST", "/teams/{team_id}/members")
def add_team_member(req: Request, team_id: str) -> Response:
    req.require_session()
    team_id = _require_id(team_id, "team_id")
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


@route("GET", "/teams/{team_id}/members/{user_id}")
def get_team_member(req: Request, team_id: str, user_id: str) -> Response:
    req.require_session()
    team_id = _require_id(team_id, "team_id")
    user_id = _user_param(req, user_id)
    if not req.is_system_admin() and team_member(req, team_id) is None:
        raise forbidden()
    member = store.get_team_member(req.db, team_id, user_id)
    if member is None:
        raise AppError(
            404, "app.team.get_member.missing.app_error", "No team member found for that user ID and team ID."
        )
    return json_response(member)


# Channels ----------------------------------------------------------------------------------------------


def can_read_channel(req: Request, channel: dict[str, Any]) -> bool:
    if req.is_system_admin() or store.is_channel_member(req.db, channel["id"], req.user_id):
        return True
    return channel["type"] == "O" and team_member(req, channel["team_id"]) is not None


def _readable_channel(req: Request, channel_id: str) -> dict[str, Any]:
    channel = store.get_channel(req.db, _require_id(channel_id, "channel_id"))
    if channel is None:
        raise AppError(404, "app.channel.get.existing.app_error", "Unable to find the existing channel.")
    if not can_read_channel(req, channel):
        raise forbidden()
    return channel


@route("GET", "/teams/{team_id}/channels/name/{channel_name}")
def get_channel_by_name(req: Request, team_id: str, channel_name: str) -> Response:
    req.require_session()
    team_id = _require_id(team_id, "team_id")
    if not req.is_system_admin() and team_member(req, team_id) is None:
        raise forbidden()
    channel = store.get_channel_by_name(req.db, team_id, channel_name)
    if channel is None or (channel["type"] == "P" and not can_read_channel(req, channel)):
        raise AppError(404, "app.channel.get_by_name.missing.app_error", "Channel does not exist.")
    return json_response(channel)


@route("GET", "/channels/{channel_id}")
def get_channel(req: Request, channel_id: str) -> Response:
    req.require_session()
    return json_response(_readable_channel(req, channel_id))


# Posts -------------------------------------------------------------------------------------------------


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
    post = store.get_post(req.db, _require_id(post_id, "post_id"))
    if post is None:
        raise AppError(404, "app.post.get.app_error", "Unable to get the post.")
    channel = store.get_channel(req.db, post["channel_id"])
    if channel is None or not can_read_channel(req, channel):
        raise forbidden()
    return post


@route("POST", "/posts")
def create_post(req: Request) -> Response:
    req.require_session()
    data = req.json_object("post")
    channel_id = data.get("channel_id")
    if not store.is_valid_id(channel_id):
        raise bad_body_param("channel_id")
    channel = store.get_channel(req.db, channel_id)
    if channel is None or not (
        req.is_system_admin() or store.is_channel_member(req.db, channel_id, req.user_id)
    ):
        raise forbidden()
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


@route("GET", "/posts/{post_id}")
def get_post(req: Request, post_id: str) -> Response:
    req.require_session()
    return json_response(_readable_post(req, post_id))


@route("GET", "/posts/{post_id}/thread")
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


@route("GET", "/channels/{channel_id}/posts")
def get_channel_posts(req: Request, channel_id: str) -> Response:
    req.require_session()
    channel = _readable_channel(req, channel_id)
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


# Files -------------------------------------------------------------------------------------------------


class UploadedFile:
    def __init__(self, name: str, data: bytes) -> None:
        self.name = name
        self.data = data


def _header_params(header_name: str, value: str) -> email.message.Message:
    message = email.message.Message()
    message[header_name] = value
    return message


def _multipart_parts(body: bytes, boundary: str) -> list[tuple[bytes, bytes]]:
    """(raw headers, content) of each part, by exact byte offsets so binary content stays intact."""
    delimiter = b"--" + boundary.encode("latin-1")
    bad = AppError(400, "api.file.upload_file.read_request.app_error", "Unable to parse multipart request.")
    if body.startswith(delimiter):
        position = len(delimiter)
    else:
        start = body.find(b"\r\n" + delimiter)
        if start < 0:
            raise bad
        position = start + 2 + len(delimiter)
    parts = []
    while not body.startswith(b"--", position):
        line_end = body.find(b"\r\n", position)
        if line_end < 0:
            raise bad
        position = line_end + 2
        if body.startswith(b"\r\n", position):
            raw_headers, content_start = b"", position + 2
        else:
            headers_end = body.find(b"\r\n\r\n", position)
            if headers_end < 0:
                raise bad
            raw_headers, content_start = body[position:headers_end], headers_end + 4
        next_delimiter = body.find(b"\r\n" + delimiter, content_start)
        if next_delimiter < 0:
            raise bad
        parts.append((raw_headers, body[content_start:next_delimiter]))
        position = next_delimiter + 2 + len(delimiter)
    return parts


def parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, list[str]], list[UploadedFile]]:
    """Split a multipart/form-data body into text fields and file parts; file bytes stay untouched."""
    boundary = _header_params("Content-Type", content_type).get_boundary()
    if not boundary:
        raise AppError(400, "api.file.upload_file.read_request.app_error", "Missing multipart boundary.")
    fields: dict[str, list[str]] = {}
    files: list[UploadedFile] = []
    for raw_headers, content in _multipart_parts(body, boundary):
        disposition = ""
        for line in raw_headers.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-disposition":
                disposition = value.strip()
        params = _header_params("Content-Disposition", disposition)
        field = email.utils.collapse_rfc2231_value(params.get_param("name", "", "content-disposition"))
        filename = params.get_filename()
        if filename is not None:
            files.append(UploadedFile(filename, content))
        elif field:
            fields.setdefault(field, []).append(content.decode("utf-8", "replace"))
    return fields, files


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG, GIF, BMP or JPEG image, (0, 0) when it cannot be read."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data.startswith(b"BM") and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width), abs(height)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return 0, 0


def _jpeg_size(data: bytes) -> tuple[int, int]:
    start_of_frame = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return 0, 0
        marker = data[position + 1]
        if marker == 0xFF:
            position += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if marker in start_of_frame and position + 9 <= len(data):
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return width, height
        position += 2 + length
    return 0, 0


def clean_file_name(name: str) -> str:
    name = name.replace("\\", "/").rsplit("/", 1)[-1].replace("\x00", "").strip()
    if name in ("", ".", "..") or len(name.encode("utf-8")) > 255:
        raise AppError(
            400, "api.file.upload_file.bad_parse.app_error", "Unable to upload file. Invalid file name."
        )
    return name


def save_upload(req: Request, channel: dict[str, Any], upload: UploadedFile) -> dict[str, Any]:
    """Write the file where the real server would and record its FileInfo."""
    name = clean_file_name(upload.name)
    file_id, created = store.new_id(), store.now_ms()
    day = time.strftime("%Y%m%d", time.gmtime(created / 1000))
    team = channel["team_id"] or "noteam"
    relative = f"{day}/teams/{team}/channels/{channel['id']}/users/{req.user_id}/{file_id}/{name}"
    target = Path(req.app.data_dir) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(upload.data)
    extension = name.rsplit(".", 1)[1].lower() if "." in name else ""
    mime_type = _MIME_TYPES.guess_type("x." + extension)[0] if extension else None
    width, height = image_size(upload.data) if mime_type in MEDIA_TYPES_WITH_SIZE else (0, 0)
    return store.insert_file_info(
        req.db,
        file_id=file_id,
        user_id=req.user_id,
        channel_id=channel["id"],
        created=created,
        path=relative,
        name=name,
        extension=extension,
        size=len(upload.data),
        mime_type=mime_type or "",
        width=width,
        height=height,
    )


@route("POST", "/files")
def upload_files(req: Request) -> Response:
    req.require_session()
    if not setting_bool(req.app, "FileSettings", "EnableFileAttachments", True):
        raise AppError(
            501,
            "api.file.attachments.disabled.app_error",
            "File attachments have been disabled on this server.",
        )
    max_size = setting_int(req.app, "FileSettings", "MaxFileSize", DEFAULT_MAX_FILE_SIZE)
    if req.content_length > max_size:
        raise too_large(req.content_length, max_size)
    content_type = req.headers.get("Content-Type") or ""
    client_ids: list[str] = []
    if content_type.lower().startswith("multipart/form-data"):
        fields, uploads = parse_multipart(req.body(max_size), content_type)
        channel_id = (fields.get("channel_id") or [req.query.get("channel_id", "")])[0]
        client_ids = fields.get("client_ids", [])
    else:
        channel_id = req.query.get("channel_id", "")
        filename = req.query.get("filename", "")
        if not filename:
            raise bad_url_param("filename")
        uploads = [UploadedFile(filename, req.body(max_size))]
        if req.query.get("client_id"):
            client_ids = [req.query["client_id"]]
    if not store.is_valid_id(channel_id):
        raise bad_url_param("channel_id")
    channel = store.get_channel(req.db, channel_id)
    if channel is None or not (
        req.is_system_admin() or store.is_channel_member(req.db, channel_id, req.user_id)
    ):
        raise forbidden()
    if not uploads:
        raise AppError(
            400, "api.file.upload_file.incorrect_number_of_files.app_error", "No files in the request."
        )
    for upload in uploads:
        if len(upload.data) > max_size:
            raise too_large(len(upload.data), max_size)
    infos = [save_upload(req, channel, upload) for upload in uploads]
    return json_response({"file_infos": infos, "client_ids": client_ids}, 201)


def _readable_file(req: Request, file_id: str) -> dict[str, Any]:
    info = store.get_file_info(req.db, _require_id(file_id, "file_id"))
    if info is None:
        raise AppError(404, "app.file_info.get.app_error", "Unable to get the file info.")
    if info["user_id"] != req.user_id:
        channel = store.get_channel(req.db, info["channel_id"])
        if channel is None or not can_read_channel(req, channel):
            raise forbidden()
    return info


@route("GET", "/files/{file_id}")
def get_file(req: Request, file_id: str) -> Response:
    req.require_session()
    info = _readable_file(req, file_id)
    data_dir = Path(req.app.data_dir).resolve()
    relative = store.get_file_path(req.db, info["id"]) or ""
    path = (data_dir / relative).resolve()
    if data_dir not in path.parents or not path.is_file():
        raise AppError(404, "api.file.no_file.app_error", "Unable to find the file.")
    quoted = urllib.parse.quote(info["name"], safe="")
    ascii_name = info["name"].encode("ascii", "replace").decode("ascii").replace('"', "_")
    headers = [
        ("Content-Disposition", f"attachment;filename=\"{ascii_name}\"; filename*=UTF-8''{quoted}"),
        ("X-Content-Type-Options", "nosniff"),
        ("Cache-Control", "max-age=2592000, private"),
    ]
    return Response(
        200, content_type=info["mime_type"] or "application/octet-stream", headers=headers, file_path=path
    )


@route("GET", "/files/{file_id}/info")
def get_file_info(req: Request, file_id: str) -> Response:
    req.require_session()
    return json_response(_readable_file(req, file_id))


# Websocket ---------------------------------------------------------------------------------------------


@route("GET", "/websocket")
def connect_websocket(req: Request) -> Response:
    try:
        accept = websocket.check_handshake(req.headers)
    except websocket.HandshakeError as exc:
        raise AppError(
            400,
            "api.web_socket.connect.upgrade.app_error",
            "Failed to upgrade websocket connection.",
            str(exc),
            headers=[("Sec-WebSocket-Version", websocket.SUPPORTED_VERSION)],
        ) from exc
    if not websocket.origin_allowed(
        req.headers, str(setting(req.app, "ServiceSettings", "AllowCorsFrom", ""))
    ):
        raise AppError(
            403,
            "api.web_socket.connect.upgrade.app_error",
            "Failed to upgrade websocket connection.",
            "request origin not allowed",
        )
    session = req.session
    user_id = session["user_id"] if session else None
    server, handler = req.server, req.handler
    version = handler.version_header()

    def authenticate(token: str) -> str | None:
        found = store.get_session(server.app.db, token)
        return found["user_id"] if found else None

    def run() -> None:
        websocket.serve(
            handler.connection,
            handler.rfile,
            server_version=version,
            authenticate=authenticate,
            hub=server.hub,
            stopping=server.stopping,
            user_id=user_id,
            logger=server.logger,
        )

    headers = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept)]
    return Response(101, headers=headers, upgrade=run)


# HTTP server -------------------------------------------------------------------------------------------


class Handler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; every response has X-Version-Id, X-Request-Id and Content-Length."""

    protocol_version = "HTTP/1.1"
    # Idle keep-alive connections and stalled uploads give up after this many seconds.
    timeout = 300
    server: StandinServer

    def version_header(self) -> str:
        try:
            return str(self.server.app.version_header())
        except Exception:  # a header must never turn a request into a 500
            build = getattr(self.server.app, "build", None) or {}
            return f"{build.get('version', '')}.{build.get('build_number', '')}..false"

    def send_response(self, code: int, message: str | None = None) -> None:
        # The real server (Go net/http) sends no Server header.
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def log_message(self, format: str, *args: Any) -> None:
        self.server.logger.debug("%s - %s", self.address_string(), format % args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors (bad request line, header too long) as AppError JSON too."""
        self.close_connection = True
        request_id = store.new_id()
        error = AppError(code, "api.context.http_error.app_error", message or "Bad request.", explain or "")
        self._write(error.response(request_id), request_id)

    def _dispatch(self) -> None:
        request_id = store.new_id()
        req = None
        try:
            req = Request(self, request_id)
            response = dispatch(req)
        except AppError as error:
            response = error.response(request_id)
        except Exception as exc:
            self.server.logger.exception("request %s %s failed", self.command, self.path)
            error = AppError(
                500, "api.context.unexpected.app_error", "An unexpected error occurred.", type(exc).__name__
            )
            response = error.response(request_id)
        if response.upgrade is not None:
            self._write(response, request_id)
            self.close_connection = True
            try:
                response.upgrade()
            except Exception:
                self.server.logger.exception("websocket connection failed")
            return
        try:
            if req is not None and req.body_pending:
                # The body was not read (early error): the next request on this connection would be garbage.
                self.close_connection = True
        except AppError:
            self.close_connection = True
        self._write(response, request_id)

    def _write(self, response: Response, request_id: str) -> None:
        self.send_response(response.status)
        self.send_header("X-Request-Id", request_id)
        self.send_header("X-Version-Id", self.version_header())
        if response.status == 101:
            for name, value in response.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.flush()
            return
        self.send_header("Content-Type", response.content_type)
        for name, value in response.headers:
            self.send_header(name, value)
        length = response.file_path.stat().st_size if response.file_path else len(response.body)
        self.send_header("Content-Length", str(length))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        if response.file_path:
            with response.file_path.open("rb") as source:
                shutil.copyfileobj(source, self.wfile, 1024 * 1024)
        else:
            self.wfile.write(response.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _dispatch


class StandinServer(http.server.ThreadingHTTPServer):
    """The API server of one App; `stopping` tells open websockets to close when it shuts down."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: Any) -> None:
        self.app = app
        self.logger: logging.Logger = getattr(app, "logger", None) or logging.getLogger("mmstandin.api")
        self.hub = websocket.Hub()
        self.stopping = threading.Event()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (a DNS lookup); the stand-in never needs it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def shutdown(self) -> None:
        self.stopping.set()
        super().shutdown()

    def server_close(self) -> None:
        self.stopping.set()
        super().server_close()


def serve(app: Any, host: str, port: int) -> StandinServer:
    """A bound API server for the app; run serve_forever() in a thread, shutdown() to stop."""
    return StandinServer((host, port), app)
