"""The stand-in's API v4 subset against a real PostgreSQL: shapes, permissions, files, websocket, persistence.

Each test starts the real `api.serve()` on 127.0.0.1 with an App built like server.py builds it, and
talks to it with plain http.client / sockets, the way a smoke test talks to a real Mattermost.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import socket
import struct
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "standin"))

from mmstandin import api, store, websocket
from mmstandin.api.errors import AppError
from mmstandin.api.files import clean_file_name, image_size, parse_multipart
from mmstandin.db import Database
from mmstandin.server import App

from tests.conftest import MattermostDatabase

BUILD = {
    "version": "11.10.0",
    "build_number": "11.10.0",
    "build_date": "Tue Nov 25 10:00:00 UTC 2025",
    "build_hash": "0123456789abcdef0123456789abcdef01234567",
    "enterprise": True,
    "schema_version": 1110,
    "failure": None,
    "slow_start_seconds": 20,
}
PASSWORD = "Sup3r-secret-pw"  # noqa: S105 - a throwaway test account
APP_ERROR_KEYS = {"id", "message", "detailed_error", "request_id", "status_code"}
USER_KEYS = {
    "id", "create_at", "update_at", "delete_at", "username", "auth_data", "auth_service", "email",
    "email_verified", "nickname", "first_name", "last_name", "position", "roles", "locale", "notify_props",
    "last_password_update", "timezone",
}  # fmt: skip
TEAM_KEYS = {
    "id", "create_at", "update_at", "delete_at", "display_name", "name", "description", "email", "type",
    "company_name", "allowed_domains", "invite_id", "allow_open_invite", "scheme_id", "group_constrained",
    "policy_id",
}  # fmt: skip
CHANNEL_KEYS = {
    "id", "create_at", "update_at", "delete_at", "team_id", "type", "display_name", "name", "header",
    "purpose", "last_post_at", "total_msg_count", "extra_update_at", "creator_id",
}  # fmt: skip
POST_KEYS = {
    "id", "create_at", "update_at", "edit_at", "delete_at", "is_pinned", "user_id", "channel_id", "root_id",
    "original_id", "message", "type", "props", "hashtags", "pending_post_id", "reply_count", "last_reply_at",
    "participants", "metadata",
}  # fmt: skip
FILE_INFO_KEYS = {
    "id", "user_id", "post_id", "channel_id", "create_at", "update_at", "delete_at", "name", "extension",
    "size", "mime_type", "width", "height", "has_preview_image", "mini_preview",
}  # fmt: skip


def png_bytes(width: int, height: int) -> bytes:
    """A valid grayscale PNG of the given size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


# Test harness ------------------------------------------------------------------------------------------


class Reply:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = response.headers
        self.body = response.read()

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


class Client:
    """A keep-alive HTTP client, authenticated once `token` is set (Authorization: Bearer)."""

    def __init__(self, port: int, token: str = "") -> None:
        self.port = port
        self.token = token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if self.token and "Authorization" not in sent:
            sent["Authorization"] = f"Bearer {self.token}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        self.conn.request(method, path, body=data, headers=sent)
        reply = Reply(self.conn.getresponse())
        if reply.header("Connection") == "close":
            self.conn.close()
        return reply

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", "/api/v4" + path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Reply:
        return self.request("POST", "/api/v4" + path, body, **kwargs)

    def close(self) -> None:
        self.conn.close()


class StandIn:
    """The API of one App on 127.0.0.1, like server.py runs it."""

    def __init__(self, dsn: str, data_dir: Path, config: dict[str, Any] | None = None, healthy: bool = True):
        self.db = Database(dsn, timeout=5)
        self.app = App(dict(BUILD), config or {}, self.db, data_dir.parent, data_dir, healthy=healthy)
        self.server = api.serve(self.app, "127.0.0.1", 0)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.clients: list[Client] = []

    def client(self, token: str = "") -> Client:
        client = Client(self.port, token)
        self.clients.append(client)
        return client

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
        self.db.close()


@pytest.fixture
def start(mm_database: MattermostDatabase, tmp_path: Path) -> Iterator[Any]:
    """start(config=..., healthy=...) -> a running StandIn on the test database (tables created)."""
    running: list[StandIn] = []

    def _start(config: dict[str, Any] | None = None, healthy: bool = True, dsn: str = "") -> StandIn:
        if not dsn:
            setup = Database(mm_database.dsn)
            store.create_tables(setup)
            setup.close()
        stand_in = StandIn(dsn or mm_database.dsn, tmp_path / "data", config, healthy)
        running.append(stand_in)
        return stand_in

    yield _start
    for stand_in in running:
        stand_in.stop()


OPEN_SERVER = {"TeamSettings": {"EnableOpenServer": True}}


def assert_app_error(reply: Reply, status: int, error_id: str | None = None) -> dict[str, Any]:
    assert reply.status == status, reply.body
    body = reply.json
    assert set(body) == APP_ERROR_KEYS
    assert body["status_code"] == status
    assert body["request_id"] == reply.header("X-Request-Id")
    assert reply.header("X-Version-Id")
    if error_id:
        assert body["id"] == error_id
    return body


def sign_up(client: Client, username: str) -> dict[str, Any]:
    reply = client.post(
        "/users", {"email": f"{username}@example.com", "username": username, "password": PASSWORD}
    )
    assert reply.status == 201, reply.body
    return reply.json


def log_in(stand_in: StandIn, login_id: str) -> tuple[Client, dict[str, Any]]:
    client = stand_in.client()
    reply = client.post("/users/login", {"login_id": login_id, "password": PASSWORD})
    assert reply.status == 200, reply.body
    client.token = reply.header("Token") or ""
    return client, reply.json


def admin_and_team(
    stand_in: StandIn, open_invite: bool = True
) -> tuple[Client, dict[str, Any], dict[str, Any]]:
    """The first user (system admin), logged in, and a team of theirs."""
    sign_up(stand_in.client(), "admin")
    admin, admin_user = log_in(stand_in, "admin")
    reply = admin.post(
        "/teams",
        {"name": "smoke", "display_name": "Smoke Test", "type": "O", "allow_open_invite": open_invite},
    )
    assert reply.status == 201, reply.body
    return admin, admin_user, reply.json


def multipart(fields: list[tuple[str, str]], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    boundary = "----mmstandin" + os.urandom(8).hex()
    out = b""
    for name, value in fields:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    for name, filename, data in files:
        out += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


# Websocket client --------------------------------------------------------------------------------------


class WebSocketClient:
    def __init__(self, port: int, headers: dict[str, str] | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            "GET /api/v4/websocket HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: keep-alive, Upgrade",
            f"Sec-WebSocket-Key: {self.key}",
            "Sec-WebSocket-Version: 13",
        ] + [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            assert chunk, "connection closed during handshake"
            self.buffer += chunk
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode().split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}

    def send(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        mask = os.urandom(4)
        length = len(payload)
        first = (0x80 if fin else 0) | opcode
        if length < 126:
            header = struct.pack("!BB", first, 0x80 | length)
        elif length < 65536:
            header = struct.pack("!BBH", first, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", first, 0x80 | 127, length)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def send_json(self, message: dict[str, Any]) -> None:
        self.send(websocket.OP_TEXT, json.dumps(message).encode())

    def _read(self, count: int) -> bytes:
        while len(self.buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def frame(self) -> tuple[int, bytes]:
        first, second = self._read(2)
        assert not second & 0x80, "server frames must not be masked"
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read(8))
        return first & 0x0F, self._read(length)

    def message(self) -> dict[str, Any]:
        opcode, payload = self.frame()
        assert opcode == websocket.OP_TEXT, (opcode, payload)
        return json.loads(payload)

    def close(self) -> None:
        self.sock.close()


# System ------------------------------------------------------------------------------------------------


def test_ping_answers_ok_with_the_real_fields(start: Any) -> None:
    stand_in = start()
    client = stand_in.client()
    reply = client.get("/system/ping")
    assert reply.status == 200
    assert reply.json == {
        "status": "OK",
        "ActiveSearchBackend": "database",
        "AndroidLatestVersion": "",
        "AndroidMinVersion": "",
        "IosLatestVersion": "",
        "IosMinVersion": "",
    }
    assert reply.header("X-Version-Id") == stand_in.app.version_header()
    assert reply.header("X-Version-Id").startswith("11.10.0.11.10.0.")
    assert len(reply.header("X-Request-Id")) == 26
    assert reply.header("Content-Type") == "application/json"

    status = client.get("/system/ping?get_server_status=true")
    assert status.status == 200
    assert status.json["database_status"] == "OK"
    assert status.json["filestore_status"] == "OK"
    assert status.json["status"] == "OK"


def test_ping_is_unhealthy_in_the_unhealthy_failure_mode(start: Any) -> None:
    reply = start(healthy=False).client().get("/system/ping")
    assert reply.status == 500
    assert reply.json["status"] == "UNHEALTHY"


def test_ping_reports_a_database_that_is_down(start: Any, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    stand_in = start(
        dsn=f"postgres://nobody:pw@127.0.0.1:{closed_port}/none?sslmode=disable&connect_timeout=2"
    )
    client = stand_in.client()
    reply = client.get("/system/ping?get_server_status=true")
    assert reply.status == 500
    assert reply.json["status"] == "UNHEALTHY"
    assert reply.json["database_status"] == "UNHEALTHY"
    assert reply.json["filestore_status"] == "OK"
    assert client.get("/system/ping").status == 500
    # Routes that need the database answer a 500 AppError, not a dropped connection.
    assert_app_error(client.post("/users/login", {"login_id": "x", "password": "y"}), 500)


def test_ping_reports_a_file_store_that_is_not_writable(start: Any, tmp_path: Path) -> None:
    stand_in = start()
    stand_in.app.data_dir = tmp_path / "a-file"
    stand_in.app.data_dir.write_text("not a directory")
    reply = stand_in.client().get("/system/ping?get_server_status=true")
    assert reply.status == 500
    assert reply.json["filestore_status"] == "UNHEALTHY"
    assert reply.json["database_status"] == "OK"


def test_client_config_old_format(start: Any) -> None:
    stand_in = start({"ServiceSettings": {"SiteURL": "https://chat.example.com"}})
    reply = stand_in.client().get("/config/client?format=old")
    assert reply.status == 200
    config = reply.json
    assert config["Version"] == "11.10.0"
    assert config["BuildNumber"] == "11.10.0"
    assert config["BuildDate"] == BUILD["build_date"]
    assert config["BuildHash"] == BUILD["build_hash"]
    assert config["BuildHashEnterprise"]
    assert config["BuildEnterpriseReady"] == "true"
    assert config["SiteURL"] == "https://chat.example.com"
    assert config["SiteName"] == "Mattermost"


def test_unknown_routes_and_methods_are_app_errors_with_the_version_header(start: Any) -> None:
    client = start().client()
    assert_app_error(client.get("/nothing/here"), 404, "api.context.404.app_error")
    assert_app_error(client.request("DELETE", "/api/v4/system/ping"), 405)
    assert_app_error(client.get("/users/not-an-id"), 401)
    page = client.request("GET", "/login")
    assert page.status == 200
    assert page.header("Content-Type").startswith("text/html")
    assert page.header("X-Version-Id")


def test_keep_alive_connection_serves_many_requests(start: Any) -> None:
    stand_in = start()
    client = stand_in.client()
    client.get("/system/ping")
    sock = client.conn.sock
    for _ in range(5):
        assert client.get("/system/ping").status == 200
        assert client.get("/users/me").status == 401
        assert client.post("/users/login", {"login_id": "nobody", "password": "x"}).status == 401
    assert client.conn.sock is sock, "the server closed a keep-alive connection"


def test_http_details_a_proxy_relies_on(start: Any) -> None:
    stand_in = start()
    admin, _, team = admin_and_team(stand_in)
    channel = admin.get(f"/teams/{team['id']}/channels/name/town-square").json

    # nginx may forward an upload chunked (proxy_request_buffering off); curl sends Expect: 100-continue.
    data = os.urandom(50_000)
    admin.conn.putrequest("POST", f"/api/v4/files?channel_id={channel['id']}&filename=chunked.bin")
    admin.conn.putheader("Authorization", f"Bearer {admin.token}")
    admin.conn.putheader("Transfer-Encoding", "chunked")
    admin.conn.endheaders()
    for start_at in range(0, len(data), 16_384):
        piece = data[start_at : start_at + 16_384]
        admin.conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
    admin.conn.send(b"0\r\n\r\n")
    chunked = Reply(admin.conn.getresponse())
    assert chunked.status == 201, chunked.body
    file_id = chunked.json["file_infos"][0]["id"]
    assert admin.get(f"/files/{file_id}").body == data

    expect = admin.post(
        f"/files?channel_id={channel['id']}&filename=expect.bin",
        raw=b"y" * 5000,
        headers={"Expect": "100-continue", "Content-Type": "application/octet-stream"},
    )
    assert expect.status == 201

    head = admin.request("HEAD", "/api/v4/system/ping")
    assert head.status == 200 and head.body == b""
    assert int(head.header("Content-Length")) > 0

    # HTTP/1.0 (nginx's default towards upstreams) gets its answer and a closed connection.
    with socket.create_connection(("127.0.0.1", stand_in.port), timeout=10) as raw:
        raw.sendall(b"GET /api/v4/system/ping HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200") and b'"status":"OK"' in answer

    # A request the HTTP layer refuses (header line too long) still gets an AppError and the version.
    with socket.create_connection(("127.0.0.1", stand_in.port), timeout=10) as raw:
        raw.sendall(b"GET /api/v4/system/ping HTTP/1.1\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n")
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    head_part, _, body = answer.partition(b"\r\n\r\n")
    assert head_part.startswith(b"HTTP/1.1 431")
    assert b"X-Version-Id: " + stand_in.app.version_header().encode() in head_part
    assert set(json.loads(body)) == APP_ERROR_KEYS


# Users and sessions ------------------------------------------------------------------------------------


def test_first_user_is_system_admin_and_later_signups_need_an_open_server(start: Any) -> None:
    stand_in = start()
    anonymous = stand_in.client()
    first = sign_up(anonymous, "admin")
    assert set(first) >= USER_KEYS
    assert "password" not in first
    assert first["roles"] == "system_admin system_user"
    assert store.is_valid_id(first["id"])
    assert first["email"] == "admin@example.com"
    assert first["auth_data"] == "" and first["auth_service"] == ""

    closed = anonymous.post("/users", {"email": "b@example.com", "username": "bob", "password": PASSWORD})
    assert_app_error(closed, 403, "api.user.create_user.no_open_server")

    admin, _ = log_in(stand_in, "admin")
    created = admin.post("/users", {"email": "b@example.com", "username": "bob", "password": PASSWORD})
    assert created.status == 201
    assert created.json["roles"] == "system_user"

    bob, _ = log_in(stand_in, "bob")
    by_user = bob.post("/users", {"email": "c@example.com", "username": "carol", "password": PASSWORD})
    assert_app_error(by_user, 403, "api.user.create_user.no_open_server")


def test_open_server_allows_signup_and_validates_input(start: Any) -> None:
    stand_in = start(OPEN_SERVER)
    anonymous = stand_in.client()
    sign_up(anonymous, "admin")
    second = sign_up(anonymous, "second.user")
    assert second["roles"] == "system_user"

    def create(username: str, email: str, password: str = PASSWORD) -> Reply:
        return anonymous.post("/users", {"username": username, "email": email, "password": password})

    assert_app_error(
        create("second.user", "other@example.com"), 400, "app.user.save.username_exists.app_error"
    )
    assert_app_error(create("Other", "SECOND.USER@example.com"), 400, "app.user.save.email_exists.app_error")
    assert_app_error(create("bad name", "x@example.com"), 400, "model.user.is_valid.username.app_error")
    assert_app_error(create("all", "x@example.com"), 400, "model.user.is_valid.username.app_error")
    assert_app_error(create("x" * 65, "x@example.com"), 400, "model.user.is_valid.username.app_error")
    assert_app_error(create("valid", "not-an-email"), 400, "model.user.is_valid.email.app_error")
    assert_app_error(create("valid", "x@example.com", "short"), 400, "model.user.is_valid.pwd.app_error")
    assert_app_error(anonymous.post("/users", raw=b"{not json", headers={}), 400)
    # Usernames and emails are stored in lower case, as the real server normalises them.
    assert create("MixedCase", "Mixed@Example.com").json["username"] == "mixedcase"


def test_password_is_stored_hashed(start: Any) -> None:
    stand_in = start()
    sign_up(stand_in.client(), "admin")
    (stored,) = stand_in.db.query("SELECT password FROM users WHERE username = $1", ["admin"])[0]
    assert PASSWORD not in stored
    assert stored.startswith("pbkdf2_sha256$")
    assert store.check_password(PASSWORD, stored)
    assert not store.check_password(PASSWORD + "x", stored)


def test_login_returns_token_header_and_cookies(start: Any) -> None:
    stand_in = start()
    user = sign_up(stand_in.client(), "admin")
    client = stand_in.client()
    reply = client.post("/users/login", {"login_id": "admin@example.com", "password": PASSWORD})
    assert reply.status == 200
    assert reply.json["id"] == user["id"]
    assert "password" not in reply.json
    token = reply.header("Token")
    assert store.is_valid_id(token)
    cookies = reply.headers.get_all("Set-Cookie")
    auth_cookie = next(c for c in cookies if c.startswith("MMAUTHTOKEN="))
    assert auth_cookie.startswith(f"MMAUTHTOKEN={token};") and "HttpOnly" in auth_cookie
    assert any(c.startswith(f"MMUSERID={user['id']};") for c in cookies)
    csrf = next(c for c in cookies if c.startswith("MMCSRF=")).split(";")[0].split("=", 1)[1]

    for headers in (
        {"Authorization": f"Bearer {token}"},
        {"Authorization": f"Token {token}"},
        {"Authorization": f"bearer {token}"},
        {"Cookie": f"MMUSERID={user['id']}; MMAUTHTOKEN={token}"},
    ):
        me = stand_in.client().get("/users/me", headers=headers)
        assert me.status == 200, headers
        assert me.json["id"] == user["id"]
        assert me.json["roles"] == "system_admin system_user"

    by_id = stand_in.client(token).get(f"/users/{user['id']}")
    assert by_id.status == 200 and by_id.json["username"] == "admin"

    # A cookie session writes only with the CSRF token (or the web app's X-Requested-With header).
    cookie = {"Cookie": f"MMAUTHTOKEN={token}"}
    team = {"name": "cookie-team", "display_name": "Cookie", "type": "O"}
    assert_app_error(stand_in.client().post("/teams", team, headers=cookie), 401)
    with_csrf = stand_in.client().post("/teams", team, headers={**cookie, "X-CSRF-Token": csrf})
    assert with_csrf.status == 201


def test_authentication_failures(start: Any) -> None:
    stand_in = start()
    user = sign_up(stand_in.client(), "admin")
    client = stand_in.client()
    bad = client.post("/users/login", {"login_id": "admin", "password": "wrong-password"})
    assert_app_error(bad, 401, "api.user.login.invalid_credentials_email_username")
    unknown = client.post("/users/login", {"login_id": "ghost", "password": PASSWORD})
    assert_app_error(unknown, 401, "api.user.login.invalid_credentials_email_username")
    assert_app_error(client.post("/users/login", {"login_id": "admin", "password": ""}), 400)

    assert_app_error(client.get("/users/me"), 401, "api.context.session_expired.app_error")
    assert_app_error(client.get("/users/me", headers={"Authorization": "Bearer " + "x" * 26}), 401)
    assert_app_error(client.get(f"/users/{user['id']}"), 401)

    session, _ = log_in(stand_in, "admin")
    assert_app_error(session.get("/users/" + "a" * 26), 404, "app.user.missing_account.const")
    assert_app_error(session.get("/users/short"), 400, "api.context.invalid_url_param.app_error")
    logout = session.post("/users/logout")
    assert logout.status == 200 and logout.json == {"status": "OK"}
    assert_app_error(session.get("/users/me"), 401)


# Teams, channels, posts, files -------------------------------------------------------------------------


def test_team_creation_makes_default_channels(start: Any) -> None:
    stand_in = start()
    admin, admin_user, team = admin_and_team(stand_in)
    assert set(team) >= TEAM_KEYS
    assert team["name"] == "smoke" and team["display_name"] == "Smoke Test"
    assert team["type"] == "O" and team["allow_open_invite"] is True
    assert store.is_valid_id(team["invite_id"])

    assert admin.get(f"/teams/{team['id']}").json == team
    assert admin.get("/teams/name/smoke").json == team
    assert [t["id"] for t in admin.get("/users/me/teams").json] == [team["id"]]

    member = admin.get(f"/teams/{team['id']}/members/{admin_user['id']}").json
    assert member["roles"] == "team_user team_admin"
    assert member["scheme_admin"] is True and member["scheme_user"] is True

    for name, display in (("town-square", "Town Square"), ("off-topic", "Off-Topic")):
        reply = admin.get(f"/teams/{team['id']}/channels/name/{name}")
        assert reply.status == 200
        channel = reply.json
        assert set(channel) >= CHANNEL_KEYS
        assert (channel["name"], channel["display_name"], channel["type"]) == (name, display, "O")
        assert channel["team_id"] == team["id"]
        assert admin.get(f"/channels/{channel['id']}").json == channel

    taken = admin.post("/teams", {"name": "smoke", "display_name": "Again", "type": "O"})
    assert_app_error(taken, 400, "app.team.save.existing.app_error")
    assert_app_error(admin.post("/teams", {"name": "Bad Name", "display_name": "x", "type": "O"}), 400)
    assert_app_error(admin.post("/teams", {"name": "fine", "display_name": "x", "type": "X"}), 400)
    assert_app_error(admin.get("/teams/name/nope"), 404, "app.team.get_by_name.missing.app_error")
    assert_app_error(admin.get(f"/teams/{team['id']}/channels/name/nope"), 404)


def test_joining_teams(start: Any) -> None:
    stand_in = start(OPEN_SERVER)
    admin, _, team = admin_and_team(stand_in)
    invite_only = admin.post("/teams", {"name": "closed", "display_name": "Closed", "type": "I"}).json
    user = sign_up(stand_in.client(), "member")
    member, _ = log_in(stand_in, "member")

    assert_app_error(member.get(f"/teams/{team['id']}/channels/name/town-square"), 403)
    assert_app_error(member.get(f"/teams/{invite_only['id']}"), 403, "api.context.permissions.app_error")
    # An open team is visible before joining, without its invite id.
    assert member.get(f"/teams/{team['id']}").json["invite_id"] == ""

    joined = member.post(f"/teams/{team['id']}/members", {"team_id": team["id"], "user_id": user["id"]})
    assert joined.status == 201
    assert joined.json == {
        **joined.json,
        "team_id": team["id"],
        "user_id": user["id"],
        "roles": "team_user",
        "delete_at": 0,
        "scheme_guest": False,
        "scheme_user": True,
        "scheme_admin": False,
    }
    town_square = member.get(f"/teams/{team['id']}/channels/name/town-square")
    assert town_square.status == 200
    off_topic = member.get(f"/teams/{team['id']}/channels/name/off-topic").json
    assert member.post("/posts", {"channel_id": off_topic["id"], "message": "joined"}).status == 201

    refused = member.post(
        f"/teams/{invite_only['id']}/members", {"team_id": invite_only["id"], "user_id": user["id"]}
    )
    assert_app_error(refused, 403, "api.context.permissions.app_error")
    added = admin.post(
        f"/teams/{invite_only['id']}/members", {"team_id": invite_only["id"], "user_id": user["id"]}
    )
    assert added.status == 201
    assert {t["name"] for t in member.get("/users/me/teams").json} == {"smoke", "closed"}


def test_posts_replies_files_and_threads(start: Any) -> None:
    stand_in = start(OPEN_SERVER)
    admin, admin_user, team = admin_and_team(stand_in)
    channel = admin.get(f"/teams/{team['id']}/channels/name/town-square").json

    root = admin.post(
        "/posts", {"channel_id": channel["id"], "message": "hello #smoke", "pending_post_id": "p1"}
    )
    assert root.status == 201
    root_post = root.json
    assert set(root_post) >= POST_KEYS
    assert "file_ids" not in root_post
    assert root_post["metadata"] == {} and root_post["props"] == {} and root_post["type"] == ""
    assert root_post["participants"] is None
    assert root_post["pending_post_id"] == "p1"
    assert root_post["hashtags"] == "#smoke"
    assert root_post["user_id"] == admin_user["id"] and root_post["root_id"] == ""

    reply = admin.post(
        "/posts", {"channel_id": channel["id"], "message": "a reply", "root_id": root_post["id"]}
    )
    assert reply.status == 201
    assert reply.json["root_id"] == root_post["id"]
    assert reply.json["reply_count"] == 1

    # Upload: multipart with two files (one binary with CRLFs and boundary-like bytes), then raw body.
    binary = os.urandom(3000) + b"\r\n--not-a-boundary\r\n" + bytes(range(256)) + b"\r\n"
    image = png_bytes(7, 5)
    body, content_type = multipart(
        [("channel_id", channel["id"]), ("client_ids", "c1"), ("client_ids", "c2")],
        [("files", "blob.bin", binary), ("files", "tiny.png", image)],
    )
    upload = admin.post("/files", raw=body, headers={"Content-Type": content_type})
    assert upload.status == 201, upload.body
    infos = upload.json["file_infos"]
    assert upload.json["client_ids"] == ["c1", "c2"]
    assert [set(info) >= FILE_INFO_KEYS for info in infos] == [True, True]
    blob_info, png_info = infos
    assert (blob_info["name"], blob_info["extension"], blob_info["size"]) == ("blob.bin", "bin", len(binary))
    assert blob_info["post_id"] == "" and blob_info["channel_id"] == channel["id"]
    assert blob_info["user_id"] == admin_user["id"]
    assert (png_info["mime_type"], png_info["width"], png_info["height"]) == ("image/png", 7, 5)
    assert png_info["has_preview_image"] is True

    raw = admin.post(
        f"/files?channel_id={channel['id']}&filename=notes.txt",
        raw=b"plain text\n",
        headers={"Content-Type": "text/plain"},
    )
    assert raw.status == 201
    text_info = raw.json["file_infos"][0]
    assert (text_info["name"], text_info["mime_type"], text_info["size"]) == ("notes.txt", "text/plain", 11)

    # The file sits where the real server puts it.
    day = time.strftime("%Y%m%d", time.gmtime(blob_info["create_at"] / 1000))
    stored = (
        stand_in.app.data_dir
        / day
        / "teams"
        / team["id"]
        / "channels"
        / channel["id"]
        / "users"
        / admin_user["id"]
        / blob_info["id"]
        / "blob.bin"
    )
    assert stored.read_bytes() == binary

    file_ids = [blob_info["id"], png_info["id"]]
    with_files = admin.post("/posts", {"channel_id": channel["id"], "message": "files", "file_ids": file_ids})
    assert with_files.status == 201
    files_post = with_files.json
    assert files_post["file_ids"] == file_ids
    assert [f["id"] for f in files_post["metadata"]["files"]] == file_ids
    assert all(f["post_id"] == files_post["id"] for f in files_post["metadata"]["files"])
    # Files already attached are not attached again.
    again = admin.post("/posts", {"channel_id": channel["id"], "message": "again", "file_ids": file_ids})
    assert "file_ids" not in again.json

    download = admin.get(f"/files/{blob_info['id']}")
    assert download.status == 200
    assert hashlib.sha256(download.body).hexdigest() == hashlib.sha256(binary).hexdigest()
    assert download.header("Content-Length") == str(len(binary))
    assert download.header("Content-Disposition").startswith('attachment;filename="blob.bin"')
    assert download.header("X-Version-Id")
    assert admin.get(f"/files/{png_info['id']}").header("Content-Type") == "image/png"
    info = admin.get(f"/files/{blob_info['id']}/info")
    assert info.status == 200 and info.json["post_id"] == files_post["id"]

    thread = admin.get(f"/posts/{reply.json['id']}/thread")
    assert thread.status == 200
    assert thread.json["order"] == [reply.json["id"], root_post["id"]]
    assert set(thread.json["posts"]) == {reply.json["id"], root_post["id"]}
    assert {"next_post_id", "prev_post_id", "has_next"} <= set(thread.json)
    assert thread.json["posts"][root_post["id"]]["reply_count"] == 1

    listing = admin.get(f"/channels/{channel['id']}/posts?page=0&per_page=60")
    assert listing.status == 200
    expected_order = [again.json["id"], files_post["id"], reply.json["id"], root_post["id"]]
    assert listing.json["order"] == expected_order
    assert listing.json["next_post_id"] == "" and listing.json["prev_post_id"] == ""
    assert listing.json["has_next"] is False
    listed = listing.json["posts"][files_post["id"]]
    assert listed["metadata"]["files"][1]["width"] == 7

    page = admin.get(f"/channels/{channel['id']}/posts?page=1&per_page=2").json
    assert page["order"] == expected_order[2:]
    assert page["next_post_id"] == expected_order[1]
    one = admin.get(f"/channels/{channel['id']}/posts?page=1&per_page=1").json
    # A reply brings its root along in "posts", outside "order".
    assert one["order"] == [files_post["id"]]
    two = admin.get(f"/channels/{channel['id']}/posts?page=2&per_page=1").json
    assert two["order"] == [reply.json["id"]] and root_post["id"] in two["posts"]

    assert admin.get(f"/posts/{root_post['id']}").json["id"] == root_post["id"]
    assert admin.get(f"/channels/{channel['id']}").json["total_msg_count"] == 4


def test_post_and_file_errors(start: Any) -> None:
    stand_in = start(OPEN_SERVER)
    admin, _, team = admin_and_team(stand_in, open_invite=False)
    channel = admin.get(f"/teams/{team['id']}/channels/name/town-square").json
    other_channel = admin.get(f"/teams/{team['id']}/channels/name/off-topic").json
    root = admin.post("/posts", {"channel_id": channel["id"], "message": "root"}).json
    body, content_type = multipart([("channel_id", channel["id"])], [("files", "secret.txt", b"secret")])
    secret = admin.post("/files", raw=body, headers={"Content-Type": content_type}).json["file_infos"][0]

    sign_up(stand_in.client(), "outsider")
    outsider, _ = log_in(stand_in, "outsider")
    assert_app_error(outsider.post("/posts", {"channel_id": channel["id"], "message": "x"}), 403)
    assert_app_error(outsider.get(f"/posts/{root['id']}"), 403)
    assert_app_error(outsider.get(f"/posts/{root['id']}/thread"), 403)
    assert_app_error(outsider.get(f"/channels/{channel['id']}/posts"), 403)
    assert_app_error(outsider.get(f"/channels/{channel['id']}"), 403)
    assert_app_error(outsider.get(f"/files/{secret['id']}"), 403)
    assert_app_error(outsider.get(f"/files/{secret['id']}/info"), 403)
    body, content_type = multipart([("channel_id", channel["id"])], [("files", "x.txt", b"x")])
    assert_app_error(outsider.post("/files", raw=body, headers={"Content-Type": content_type}), 403)
    # Someone else's upload cannot be attached: the id is dropped, as the real server does.
    own = outsider.post("/posts", {"channel_id": channel["id"], "message": "x", "file_ids": [secret["id"]]})
    assert own.status == 403

    bad_root = {"channel_id": channel["id"], "message": "x", "root_id": "a" * 26}
    assert_app_error(admin.post("/posts", bad_root), 400, "api.post.create_post.root_id.app_error")
    cross_channel = {"channel_id": other_channel["id"], "message": "x", "root_id": root["id"]}
    assert_app_error(admin.post("/posts", cross_channel), 400, "api.post.create_post.root_id.app_error")
    assert_app_error(
        admin.post("/posts", {"message": "no channel"}), 400, "api.context.invalid_body_param.app_error"
    )
    assert_app_error(admin.get("/posts/" + "b" * 26), 404, "app.post.get.app_error")
    assert_app_error(admin.get("/posts/nope"), 400, "api.context.invalid_url_param.app_error")
    assert_app_error(admin.get("/files/" + "c" * 26), 404)
    assert_app_error(admin.get(f"/channels/{channel['id']}/posts?page=-1"), 400)
    assert_app_error(admin.post("/files", raw=b"x", headers={"Content-Type": "text/plain"}), 400)


def test_uploads_over_max_file_size_are_refused(start: Any) -> None:
    stand_in = start({"FileSettings": {"MaxFileSize": 1000}})
    admin, _, team = admin_and_team(stand_in)
    channel = admin.get(f"/teams/{team['id']}/channels/name/town-square").json
    body, content_type = multipart([("channel_id", channel["id"])], [("files", "big.bin", b"x" * 2000)])
    refused = admin.post("/files", raw=body, headers={"Content-Type": content_type})
    assert_app_error(refused, 413, "api.file.upload_file.too_large_detailed.app_error")
    small, content_type = multipart([("channel_id", channel["id"])], [("files", "ok.bin", b"x" * 100)])
    assert (
        stand_in.client(admin.token).post("/files", raw=small, headers={"Content-Type": content_type}).status
        == 201
    )


def test_data_survives_a_new_server_on_the_same_database(start: Any, mm_database: MattermostDatabase) -> None:
    first = start()
    admin, _, team = admin_and_team(first)
    channel = admin.get(f"/teams/{team['id']}/channels/name/town-square").json
    body, content_type = multipart([("channel_id", channel["id"])], [("files", "keep.bin", b"kept bytes")])
    info = admin.post("/files", raw=body, headers={"Content-Type": content_type}).json["file_infos"][0]
    post = admin.post(
        "/posts", {"channel_id": channel["id"], "message": "kept", "file_ids": [info["id"]]}
    ).json
    first.stop()

    second = start()  # create_tables runs again on the existing tables
    client = second.client(admin.token)
    assert client.get("/users/me").json["username"] == "admin", "the session survives a restart"
    fresh, _ = log_in(second, "admin")
    assert fresh.get("/teams/name/smoke").json["id"] == team["id"]
    assert fresh.get(f"/posts/{post['id']}").json["file_ids"] == [info["id"]]
    assert fresh.get(f"/files/{info['id']}").body == b"kept bytes"
    assert fresh.get(f"/channels/{channel['id']}/posts").json["order"] == [post["id"]]
    created = second.client().post(
        "/users", {"username": "late", "email": "late@example.com", "password": PASSWORD}
    )
    assert_app_error(created, 403, "api.user.create_user.no_open_server")


# Websocket ---------------------------------------------------------------------------------------------


def test_websocket_with_header_authentication_gets_hello_and_posted_events(start: Any) -> None:
    stand_in = start()
    admin, admin_user, team = admin_and_team(stand_in)
    ws = WebSocketClient(stand_in.port, {"Authorization": f"Bearer {admin.token}"})
    try:
        assert ws.status == 101
        expected_accept = base64.b64encode(
            hashlib.sha1((ws.key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()  # noqa: S324
        ).decode()
        assert ws.headers["sec-websocket-accept"] == expected_accept
        assert ws.headers["upgrade"].lower() == "websocket"
        assert ws.headers["x-version-id"] == stand_in.app.version_header()
        hello = ws.message()
        assert hello["event"] == "hello" and hello["seq"] == 0
        assert store.is_valid_id(hello["data"]["connection_id"])
        assert hello["data"]["server_version"] == stand_in.app.version_header()
        assert hello["broadcast"] == {
            "omit_users": None,
            "user_id": admin_user["id"],
            "channel_id": "",
            "team_id": "",
            "connection_id": "",
            "omit_connection_id": "",
        }

        ws.send(websocket.OP_PING, b"are you there")
        assert ws.frame() == (websocket.OP_PONG, b"are you there")
        ws.send_json({"seq": 2, "action": "user_typing", "data": {"channel_id": "x"}})
        assert ws.message() == {"status": "OK", "seq_reply": 2}

        channel = admin.get(f"/teams/{team['id']}/channels/name/town-square").json
        post = admin.post("/posts", {"channel_id": channel["id"], "message": "live"}).json
        event = ws.message()
        assert event["event"] == "posted" and event["seq"] == 1
        assert json.loads(event["data"]["post"])["id"] == post["id"]
        assert event["data"]["channel_name"] == "town-square"
        assert event["data"]["sender_name"] == "@admin"
        assert event["broadcast"]["channel_id"] == channel["id"]

        ws.send(websocket.OP_CLOSE, struct.pack("!H", 1000))
        opcode, payload = ws.frame()
        assert opcode == websocket.OP_CLOSE and struct.unpack("!H", payload[:2])[0] == 1000
    finally:
        ws.close()


def test_websocket_with_cookie_authentication(start: Any) -> None:
    stand_in = start()
    admin, admin_user, _ = admin_and_team(stand_in)
    ws = WebSocketClient(stand_in.port, {"Cookie": f"MMAUTHTOKEN={admin.token}"})
    try:
        hello = ws.message()
        assert hello["event"] == "hello" and hello["broadcast"]["user_id"] == admin_user["id"]
    finally:
        ws.close()


def test_websocket_authentication_challenge(start: Any) -> None:
    stand_in = start()
    admin, admin_user, _ = admin_and_team(stand_in)
    ws = WebSocketClient(stand_in.port)
    try:
        assert ws.status == 101
        # Fragmented text message: the server must reassemble it.
        challenge = json.dumps(
            {"seq": 1, "action": "authentication_challenge", "data": {"token": admin.token}}
        )
        ws.send(websocket.OP_TEXT, challenge[:10].encode(), fin=False)
        ws.send(websocket.OP_CONTINUATION, challenge[10:].encode())
        assert ws.message() == {"status": "OK", "seq_reply": 1}
        hello = ws.message()
        assert hello["event"] == "hello"
        assert hello["broadcast"]["user_id"] == admin_user["id"]
        assert hello["data"]["server_version"] == stand_in.app.version_header()
    finally:
        ws.close()

    refused = WebSocketClient(stand_in.port)
    try:
        refused.send_json({"seq": 1, "action": "authentication_challenge", "data": {"token": "x" * 26}})
        opcode, payload = refused.frame()
        assert opcode == websocket.OP_CLOSE
        assert struct.unpack("!H", payload[:2])[0] == websocket.CLOSE_POLICY_VIOLATION
    finally:
        refused.close()


def test_websocket_bad_handshakes_are_400(start: Any) -> None:
    stand_in = start()
    client = stand_in.client()
    key = base64.b64encode(os.urandom(16)).decode()
    good = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": "13",
    }
    for broken in (
        {k: v for k, v in good.items() if k != "Upgrade"},
        {**good, "Connection": "keep-alive"},
        {**good, "Sec-WebSocket-Version": "8"},
        {**good, "Sec-WebSocket-Key": "too-short"},
        {k: v for k, v in good.items() if k != "Sec-WebSocket-Key"},
    ):
        reply = client.get("/websocket", headers=broken)
        assert_app_error(reply, 400, "api.web_socket.connect.upgrade.app_error")
    origin = stand_in.client().get("/websocket", headers={**good, "Origin": "https://evil.example.com"})
    assert_app_error(origin, 403)


def test_websocket_closes_when_the_server_stops(start: Any) -> None:
    stand_in = start()
    admin, _, _ = admin_and_team(stand_in)
    ws = WebSocketClient(stand_in.port, {"Authorization": f"Token {admin.token}"})
    try:
        assert ws.message()["event"] == "hello"
        began = time.monotonic()
        stand_in.server.shutdown()
        opcode, payload = ws.frame()
        assert opcode == websocket.OP_CLOSE
        assert struct.unpack("!H", payload[:2])[0] == websocket.CLOSE_GOING_AWAY
        assert time.monotonic() - began < 5
    finally:
        ws.close()


# Pieces without a server -------------------------------------------------------------------------------


def test_websocket_accept_matches_the_rfc_6455_example() -> None:
    # RFC 6455 section 1.3: this key must be answered with this accept value.
    assert websocket.accept_value("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_new_id_has_mattermost_shape() -> None:
    ids = {store.new_id() for _ in range(500)}
    assert len(ids) == 500
    assert all(len(i) == 26 and set(i) <= set(store.ID_ALPHABET) for i in ids)


def test_multipart_parser_keeps_bytes_and_reads_rfc2231_names() -> None:
    data = b"\r\n--b\r\n" + bytes(range(256)) * 4
    body = (
        b"preamble\r\n--XyZ\r\n"
        b'Content-Disposition: form-data; name="channel_id"\r\n\r\nabc\r\n'
        b"--XyZ\r\n"
        b"Content-Disposition: form-data; name=\"files\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf\r\n"
        b"Content-Type: application/pdf\r\n\r\n" + data + b"\r\n--XyZ--\r\nepilogue"
    )
    fields, files = parse_multipart(body, 'multipart/form-data; boundary="XyZ"')
    assert fields == {"channel_id": ["abc"]}
    assert [(f.name, f.data) for f in files] == [("résumé.pdf", data)]
    with pytest.raises(AppError):
        parse_multipart(b"--XyZ\r\nno end", "multipart/form-data; boundary=XyZ")


def test_image_sizes() -> None:
    assert image_size(png_bytes(12, 34)) == (12, 34)
    assert image_size(b"GIF89a" + struct.pack("<HH", 640, 480) + b"\x00" * 10) == (640, 480)
    jpeg = (
        b"\xff\xd8"
        + b"\xff\xe0"
        + struct.pack(">H", 4)
        + b"JF"
        + b"\xff\xc0"
        + struct.pack(">HBHH", 11, 8, 20, 30)
    )
    assert image_size(jpeg + b"\x00" * 8) == (30, 20)
    assert image_size(b"not an image") == (0, 0)
    assert clean_file_name("..\\..\\etc/passwd") == "passwd"
    with pytest.raises(AppError):
        clean_file_name("..")
