#!/usr/bin/env python3
"""Certified smoke test for a Mattermost server, through the public API v4 only.

    mmsmoke.py run       --url URL --fingerprint FILE [--ca-file F | --insecure] [--ws-url WS] [--prefix P]
    mmsmoke.py verify    --url URL --fingerprint FILE [--ca-file F | --insecure] [--ws-url WS]
    mmsmoke.py websocket --url URL --fingerprint FILE [--ca-file F | --insecure] [--ws-url WS]

`run` creates two users, a team, a thread of three posts (the last one with a PNG attached) and checks
that the websocket says hello; it records all of it in the fingerprint file. `verify` logs in again
with the recorded users and checks that the thread and the file survived unchanged (after an upgrade,
a restore, a migration ...). Exit codes: 0 success, 1 a check failed, 2 usage error, 130 interrupted.

Single file, standard library only, Python 3.9 to 3.13: it is copied into test containers and must also
work unchanged against a real Mattermost server. It never prints passwords or session tokens; the
fingerprint file holds the two users' passwords (verify needs them) and is written with mode 0600.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import hashlib
import http.client
import json
import os
import re
import secrets
import socket
import ssl
import struct
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

HTTP_TIMEOUT = 15.0
DEFAULT_WAIT = 60.0
PING_RETRY_INTERVAL = 2.0
WS_HELLO_TIMEOUT = 10.0
# Mattermost reads the token from the upgrade request; older servers (or a proxy that drops the header)
# wait for an authentication_challenge instead, so one is sent when no hello has come after this delay.
WS_CHALLENGE_AFTER = 2.0
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEADER_BYTES = 65536
PREFIX_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,10}$")  # usernames are at most 22 characters

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

Log = Callable[[str], None]


class SmokeError(Exception):
    """An expected failure: the server is unreachable, answers wrongly, or lost data."""


class _TLSVerificationError(SmokeError):
    """Certificate not trusted: retrying cannot help."""


def _quiet(_line: str) -> None:
    pass


# --------------------------------------------------------------------------------------------- HTTP


def make_ssl_context(ca_file: str | None = None, insecure: bool = False) -> ssl.SSLContext:
    """System trust by default, a specific CA with `ca_file`, or no verification at all with `insecure`."""
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise SmokeError(f"cannot load CA file {ca_file}: {exc}") from exc


class Response:
    def __init__(self, method: str, path: str, status: int, headers: http.client.HTTPMessage, body: bytes):
        self.method = method
        self.path = path
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            snippet = self.body[:120].decode("utf-8", "replace")
            raise SmokeError(f"{self.method} {self.path}: response is not JSON: {snippet!r}") from exc


class Server:
    """The Mattermost server at `url` (http or https, optionally with a subpath), spoken to over API v4."""

    def __init__(self, url: str, *, ca_file: str | None = None, insecure: bool = False, token: str = ""):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SmokeError(f"--url must be an http:// or https:// URL with a host, got {url!r}")
        try:
            port = parts.port
        except ValueError as exc:
            raise SmokeError(f"bad port in --url {url!r}") from exc
        self.url = url.rstrip("/")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = port or (443 if parts.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")
        self.ca_file = ca_file
        self.insecure = insecure
        self.ssl_context = make_ssl_context(ca_file, insecure) if parts.scheme == "https" else None
        self.token = token

    def as_user(self, token: str) -> Server:
        """The same server, with requests authenticated by a session token."""
        other = copy.copy(self)
        other.token = token
        return other

    def websocket_url(self) -> str:
        scheme = "wss" if self.scheme == "https" else "ws"
        return f"{scheme}://{_host_port(self.host, self.port, self.scheme)}{self.base_path}/api/v4/websocket"

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        payload: Any = None,
        body: bytes | None = None,
        content_type: str = "",
        expect: Sequence[int] = (200, 201),
    ) -> Response:
        """One API call; any status outside `expect` becomes a SmokeError naming `what` was attempted."""
        headers = {"Accept": "application/json", "User-Agent": "mmsmoke/1"}
        if payload is not None:
            body = json.dumps(payload).encode("utf-8")
            content_type = "application/json"
        if body is not None:
            headers["Content-Type"] = content_type
            headers["Content-Length"] = str(len(body))
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.scheme == "https":
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.host, self.port, timeout=HTTP_TIMEOUT, context=self.ssl_context
            )
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=HTTP_TIMEOUT)
        full_path = self.base_path + path
        try:
            connection.request(method, full_path, body=body, headers=headers)
            raw = connection.getresponse()
            response = Response(method, path, raw.status, raw.headers, raw.read())
        except ssl.SSLCertVerificationError as exc:
            raise _TLSVerificationError(
                f"{what}: TLS certificate of {self.host} not trusted ({exc.verify_message}); "
                "pass --ca-file with the CA that signed it, or --insecure"
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise SmokeError(f"{what}: {method} {self.url}{path} failed: {_describe_os_error(exc)}") from exc
        finally:
            connection.close()
        if response.status not in expect:
            raise SmokeError(
                f"{what}: {method} {path} -> HTTP {response.status}{_api_error_detail(response)}"
            )
        return response


def _host_port(host: str, port: int, scheme: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    default = 443 if scheme in ("https", "wss") else 80
    return shown if port == default else f"{shown}:{port}"


def _describe_os_error(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return f"timed out after {HTTP_TIMEOUT:g}s"
    return str(exc) or type(exc).__name__


def _api_error_detail(response: Response) -> str:
    """Mattermost errors are JSON {id, message, ...}; redirects name where they point."""
    location = response.headers.get("Location")
    if location and 300 <= response.status < 400:
        return f" (redirect to {location}; pass that URL as --url)"
    try:
        data = json.loads(response.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        snippet = response.body[:120].decode("utf-8", "replace").strip()
        return f": {snippet!r}" if snippet else ""
    if isinstance(data, dict) and (data.get("message") or data.get("id")):
        return f": {data.get('message', '')} ({data.get('id', '')})"
    return f": {json.dumps(data)[:200]}"


def server_version(version_header: str | None) -> str:
    """X-Version-Id is `<version>.<build number>.<config hash>.<licensed>`: the version is 3 parts."""
    parts = (version_header or "").split(".")
    if len(parts) < 3 or not parts[0].isdigit() or not all(parts[:3]):
        raise SmokeError(f"ping response has no usable X-Version-Id header (got {version_header!r})")
    return ".".join(parts[:3])


def wait_for_ping(server: Server, wait: float, log: Log) -> str:
    """Wait until /api/v4/system/ping answers {"status": "OK"}; return the server version."""
    deadline = time.monotonic() + max(wait, 0.0)
    attempts = 0
    while True:
        attempts += 1
        try:
            response = server.request("GET", "/api/v4/system/ping", what="ping", expect=(200,))
            data = response.json()
        except _TLSVerificationError:
            raise
        except SmokeError as exc:
            reason = str(exc)
        else:
            status = data.get("status") if isinstance(data, dict) else None
            if status == "OK":
                version = server_version(response.headers.get("X-Version-Id"))
                log(
                    f"ping: OK, server version {version}"
                    + (f" (after {attempts} tries)" if attempts > 1 else "")
                )
                return version
            reason = f"ping: status is {status!r}, not 'OK'"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SmokeError(f"server not ready after {wait:g}s: {reason}")
        time.sleep(min(PING_RETRY_INTERVAL, remaining))


# ---------------------------------------------------------------------------------------- API steps


def new_password() -> str:
    """Long and random, with every character class a strict password policy could ask for."""
    return f"Sm0ke!{secrets.token_urlsafe(24)}"


def create_user(server: Server, username: str, password: str, what: str) -> dict[str, Any]:
    payload = {"username": username, "email": f"{username}@example.com", "password": password}
    user = server.request("POST", "/api/v4/users", what=what, payload=payload, expect=(201,)).json()
    if not isinstance(user, dict) or not user.get("id"):
        raise SmokeError(f"{what}: POST /api/v4/users returned no user id")
    return user


def login(server: Server, username: str, password: str, what: str) -> tuple[Server, dict[str, Any]]:
    """Log in; return the server as seen by that user (Bearer token) and the user object."""
    payload = {"login_id": username, "password": password}
    response = server.request("POST", "/api/v4/users/login", what=what, payload=payload, expect=(200,))
    token = response.headers.get("Token")
    if not token:
        raise SmokeError(f"{what}: login answered {response.status} but without a Token header")
    user = response.json()
    if not isinstance(user, dict) or not user.get("id"):
        raise SmokeError(f"{what}: login returned no user id")
    return server.as_user(token), user


def create_post(server: Server, what: str, channel_id: str, message: str, **extra: Any) -> dict[str, Any]:
    payload = {"channel_id": channel_id, "message": message, **extra}
    post = server.request("POST", "/api/v4/posts", what=what, payload=payload, expect=(201,)).json()
    if not isinstance(post, dict) or not post.get("id"):
        raise SmokeError(f"{what}: POST /api/v4/posts returned no post id")
    return post


def _path_id(value: str) -> str:
    return quote(value, safe="")


# ----------------------------------------------------------------------------------- PNG, multipart


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def make_png(width: int = 16, height: int = 16, noise: bytes | None = None) -> bytes:
    """An RGB PNG: red and green gradients, blue from random bytes so every run uploads a different file."""
    if noise is None:
        noise = secrets.token_bytes(width * height)
    if not noise:
        raise ValueError("noise must not be empty")
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type None
        for x in range(width):
            rows += bytes(((x * 255) // max(width - 1, 1), (y * 255) // max(height - 1, 1)))
            rows.append(noise[(y * width + x) % len(noise)])
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit truecolour, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + _png_chunk(b"IEND", b"")
    )


def encode_multipart(
    fields: Sequence[tuple[str, str]], files: Sequence[tuple[str, str, str, bytes]]
) -> tuple[bytes, str]:
    """multipart/form-data body: plain fields first (Mattermost reads channel_id before the files)."""
    boundary = f"mmsmoke-{secrets.token_hex(16)}"
    parts = []
    for name, value in fields:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    for name, filename, content_type, data in files:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


# ---------------------------------------------------------------------------------------- WebSocket


def websocket_accept(key: str) -> str:
    """The Sec-WebSocket-Accept value a server must answer to `key` (RFC 6455 section 4.2.2)."""
    digest = hashlib.sha1((key + WS_GUID).encode("ascii")).digest()  # noqa: S324 - mandated by RFC 6455
    return base64.b64encode(digest).decode("ascii")


def encode_frame(
    opcode: int, payload: bytes, *, mask: bool = True, fin: bool = True, mask_key: bytes | None = None
) -> bytes:
    """One frame; clients must mask every frame they send."""
    head = bytearray([(0x80 if fin else 0) | opcode])
    mask_bit = 0x80 if mask else 0
    length = len(payload)
    if length < 126:
        head.append(mask_bit | length)
    elif length < 65536:
        head.append(mask_bit | 126)
        head += struct.pack(">H", length)
    else:
        head.append(mask_bit | 127)
        head += struct.pack(">Q", length)
    if not mask:
        return bytes(head) + payload
    key = mask_key if mask_key is not None else secrets.token_bytes(4)
    return bytes(head) + key + _apply_mask(payload, key)


def _apply_mask(data: bytes, key: bytes) -> bytes:
    if not data:
        return b""
    repeated = (key * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(data), "big")


Frame = tuple[bool, int, bytes]  # (fin, opcode, payload)


def parse_frame(data: bytes) -> tuple[Frame, int] | None:
    """Decode the first frame of `data`: ((fin, opcode, payload), bytes used), or None if incomplete.

    Works on a buffer rather than on the socket so that a read timeout never leaves half a frame consumed.
    """
    if len(data) < 2:
        return None
    fin = bool(data[0] & 0x80)
    opcode = data[0] & 0x0F
    masked = bool(data[1] & 0x80)
    length = data[1] & 0x7F
    offset = 2
    if length == 126:
        if len(data) < offset + 2:
            return None
        (length,) = struct.unpack(">H", data[offset : offset + 2])
        offset += 2
    elif length == 127:
        if len(data) < offset + 8:
            return None
        (length,) = struct.unpack(">Q", data[offset : offset + 8])
        offset += 8
    key = b""
    if masked:
        if len(data) < offset + 4:
            return None
        key = data[offset : offset + 4]
        offset += 4
    if len(data) < offset + length:
        return None
    payload = bytes(data[offset : offset + length])
    if masked:
        payload = _apply_mask(payload, key)
    return (fin, opcode, payload), offset + length


class WebSocket:
    """A minimal RFC 6455 client: enough to authenticate and wait for Mattermost's hello event."""

    def __init__(self, sock: socket.socket, buffered: bytes = b""):
        self.sock = sock
        self._buffer = bytearray(buffered)
        self._fragments: list[bytes] = []
        self._fragment_opcode = OP_TEXT
        self.closed = False

    @classmethod
    def connect(cls, url: str, headers: dict[str, str], ssl_context: ssl.SSLContext | None) -> WebSocket:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise SmokeError(f"websocket URL must be ws:// or wss:// with a host, got {url!r}")
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            sock = socket.create_connection((host, port), timeout=HTTP_TIMEOUT)
        except OSError as exc:
            raise SmokeError(f"websocket: cannot connect to {url}: {_describe_os_error(exc)}") from exc
        try:
            if parts.scheme == "wss":
                context = ssl_context or ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=host)
            key = base64.b64encode(secrets.token_bytes(16)).decode("ascii")
            lines = [
                f"GET {path} HTTP/1.1",
                f"Host: {_host_port(host, port, parts.scheme)}",
                "Upgrade: websocket",
                "Connection: Upgrade",
                f"Sec-WebSocket-Key: {key}",
                "Sec-WebSocket-Version: 13",
                "User-Agent: mmsmoke/1",
            ]
            lines += [f"{name}: {value}" for name, value in headers.items()]
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            status_line, response_headers, rest = _read_http_head(sock)
            _check_upgrade(url, status_line, response_headers, key)
        except ssl.SSLCertVerificationError as exc:
            sock.close()
            raise _TLSVerificationError(
                f"websocket: TLS certificate of {host} not trusted ({exc.verify_message}); "
                "pass --ca-file with the CA that signed it, or --insecure"
            ) from exc
        except (OSError, SmokeError) as exc:
            sock.close()
            if isinstance(exc, SmokeError):
                raise
            raise SmokeError(f"websocket: handshake with {url} failed: {_describe_os_error(exc)}") from exc
        return cls(sock, rest)

    def send(self, opcode: int, payload: bytes) -> None:
        self.sock.sendall(encode_frame(opcode, payload, mask=True))

    def send_text(self, text: str) -> None:
        self.send(OP_TEXT, text.encode("utf-8"))

    def _next_frame(self) -> Frame:
        while True:
            parsed = parse_frame(bytes(self._buffer))
            if parsed is not None:
                frame, used = parsed
                del self._buffer[:used]
                return frame
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SmokeError("websocket: connection closed by the server without a close frame")
            self._buffer += chunk

    def receive(self) -> tuple[int, bytes]:
        """The next data message (opcode, payload); answers pings, reassembles fragments.

        Raises socket.timeout when nothing complete arrives within the socket timeout; calling again
        resumes where it stopped.
        """
        while True:
            fin, opcode, payload = self._next_frame()
            if opcode == OP_PING:
                self.send(OP_PONG, payload)
            elif opcode == OP_PONG:
                continue
            elif opcode == OP_CLOSE:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
                reason = payload[2:].decode("utf-8", "replace")
                if not self.closed:
                    self.closed = True
                    with contextlib.suppress(OSError):
                        self.send(OP_CLOSE, payload[:2])
                raise SmokeError(f"websocket: server closed the connection (code {code}, reason {reason!r})")
            elif opcode == OP_CONTINUATION:
                self._fragments.append(payload)
                if fin:
                    message = b"".join(self._fragments)
                    self._fragments = []
                    return self._fragment_opcode, message
            elif opcode in (OP_TEXT, OP_BINARY):
                if fin:
                    return opcode, payload
                self._fragment_opcode = opcode
                self._fragments = [payload]
            else:
                raise SmokeError(f"websocket: unexpected frame opcode {opcode:#x}")

    def close(self) -> None:
        """Send a close frame (1000, normal closure), wait briefly for the server's reply, then hang up."""
        try:
            if not self.closed:
                self.closed = True
                self.send(OP_CLOSE, struct.pack(">H", 1000))
                self.sock.settimeout(1.0)
                deadline = time.monotonic() + 1.0
                while time.monotonic() < deadline:
                    _fin, opcode, _payload = self._next_frame()
                    if opcode == OP_CLOSE:
                        break
        except (OSError, SmokeError):
            pass
        finally:
            self.sock.close()


def _read_http_head(sock: socket.socket) -> tuple[str, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEADER_BYTES:
            raise SmokeError("websocket: handshake response headers too large")
        chunk = sock.recv(4096)
        if not chunk:
            raise SmokeError("websocket: connection closed during the handshake")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers, rest


def _check_upgrade(url: str, status_line: str, headers: dict[str, str], key: str) -> None:
    fields = status_line.split(" ", 2)
    if len(fields) < 2 or fields[1] != "101":
        raise SmokeError(f"websocket: {url} answered {status_line!r} instead of 101 Switching Protocols")
    if headers.get("upgrade", "").lower() != "websocket":
        raise SmokeError(f"websocket: 101 response has Upgrade {headers.get('upgrade')!r}, not 'websocket'")
    if "upgrade" not in headers.get("connection", "").lower():
        raise SmokeError(f"websocket: 101 response has Connection {headers.get('connection')!r}")
    expected = websocket_accept(key)
    if headers.get("sec-websocket-accept") != expected:
        raise SmokeError(
            f"websocket: Sec-WebSocket-Accept is {headers.get('sec-websocket-accept')!r}, "
            f"expected {expected!r}"
        )


def websocket_hello(
    ws_url: str,
    token: str,
    ssl_context: ssl.SSLContext | None,
    *,
    timeout: float = WS_HELLO_TIMEOUT,
    challenge_after: float = WS_CHALLENGE_AFTER,
) -> dict[str, Any]:
    """Connect, authenticate, wait for the `hello` event.

    Returns {"data": <hello data>, "challenged": <an authentication_challenge was needed>, "seconds": ...}.
    """
    started = time.monotonic()
    ws = WebSocket.connect(ws_url, {"Authorization": f"Bearer {token}"}, ssl_context)
    challenged = False
    try:
        deadline = started + timeout
        challenge_at = started + challenge_after
        while True:
            now = time.monotonic()
            if now >= deadline:
                how = "after an authentication_challenge" if challenged else ""
                raise SmokeError(f"websocket: no hello event within {timeout:g}s {how}".rstrip())
            wake = deadline if challenged else min(deadline, challenge_at)
            ws.sock.settimeout(max(wake - now, 0.05))
            try:
                opcode, payload = ws.receive()
            except socket.timeout:
                if not challenged and time.monotonic() >= challenge_at:
                    challenge = {"seq": 1, "action": "authentication_challenge", "data": {"token": token}}
                    ws.send_text(json.dumps(challenge))
                    challenged = True
                continue
            except OSError as exc:
                raise SmokeError(f"websocket: {_describe_os_error(exc)}") from exc
            if opcode != OP_TEXT:
                continue
            try:
                event = json.loads(payload.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                continue
            if not isinstance(event, dict):
                continue
            if event.get("event") == "hello":
                data = event.get("data") if isinstance(event.get("data"), dict) else {}
                return {"data": data, "challenged": challenged, "seconds": time.monotonic() - started}
            if event.get("seq_reply") == 1 and event.get("status") not in (None, "OK"):
                raise SmokeError(f"websocket: authentication_challenge refused: {json.dumps(event)[:200]}")
    finally:
        ws.close()


# -------------------------------------------------------------------------------------- fingerprint


def write_fingerprint(path: str | os.PathLike[str], fingerprint: dict[str, Any]) -> None:
    """Write atomically, mode 0600 from the start: the file holds two passwords."""
    target = Path(path)
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=str(target.parent))
    except OSError as exc:
        raise SmokeError(f"cannot write fingerprint file {target}: {exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            json.dump(fingerprint, stream, indent=2)
            stream.write("\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, target)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise SmokeError(f"cannot write fingerprint file {target}: {exc}") from exc


def read_fingerprint(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        fingerprint = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SmokeError(f"cannot read fingerprint file {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise SmokeError(f"fingerprint file {path} is not JSON: {exc}") from exc
    try:
        for who in ("a", "b"):
            for key in ("id", "username", "password"):
                _require_str(fingerprint["users"][who][key])
        for post in fingerprint["posts"]:
            for key in ("id", "user_id", "root_id", "message"):
                _require_str(post[key])
        for key in ("file_id", "post_id", "sha256"):
            _require_str(fingerprint["image"][key])
        int(fingerprint["image"]["size"])
        _require_str(fingerprint["url"])
        _require_str(fingerprint["server_version"])
        if not fingerprint["posts"]:
            raise ValueError("no posts")
    except (KeyError, TypeError, ValueError) as exc:
        raise SmokeError(f"fingerprint file {path} is incomplete or malformed ({exc!r})") from exc
    return fingerprint


def _require_str(value: Any) -> None:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")


# ---------------------------------------------------------------------------------------- commands


def run(
    url: str,
    fingerprint_path: str | os.PathLike[str],
    *,
    ca_file: str | None = None,
    insecure: bool = False,
    ws_url: str | None = None,
    prefix: str = "smoke",
    wait: float = DEFAULT_WAIT,
    log: Log | None = None,
) -> dict[str, Any]:
    """Exercise the server end to end and record what was created; return the fingerprint."""
    log = log or _quiet
    if not PREFIX_PATTERN.match(prefix):
        raise SmokeError(f"--prefix must be a lowercase letter then up to 10 of [a-z0-9-], got {prefix!r}")
    server = Server(url, ca_file=ca_file, insecure=insecure)
    version = wait_for_ping(server, wait, log)
    suffix = secrets.token_hex(4)

    name_a, password_a = f"{prefix}-a-{suffix}", new_password()
    user_a = create_user(server, name_a, password_a, "create user A")
    as_a, _ = login(server, name_a, password_a, "log in as user A")
    admin_note = "system admin" if "system_admin" in str(user_a.get("roles", "")) else "not system admin"
    log(f"user A: created {name_a} ({admin_note}) and logged in")

    name_b, password_b = f"{prefix}-b-{suffix}", new_password()
    user_b = create_user(as_a, name_b, password_b, "create user B (as user A)")
    as_b, _ = login(server, name_b, password_b, "log in as user B")
    log(f"user B: created {name_b} by user A and logged in")

    team_payload = {
        "name": f"{prefix}-{suffix}",
        "display_name": f"Smoke test {suffix}",
        "type": "O",
        "allow_open_invite": True,
    }
    team = as_a.request(
        "POST", "/api/v4/teams", what="create team", payload=team_payload, expect=(201,)
    ).json()
    if not isinstance(team, dict) or not team.get("id"):
        raise SmokeError("create team: POST /api/v4/teams returned no team id")
    channel = as_a.request(
        "GET",
        f"/api/v4/teams/{_path_id(team['id'])}/channels/name/town-square",
        what="find Town Square",
        expect=(200,),
    ).json()
    if not isinstance(channel, dict) or not channel.get("id"):
        raise SmokeError("find Town Square: no channel id in the answer")
    channel_id = channel["id"]
    log(f"team: created open team {team_payload['name']}, Town Square is {channel_id}")

    as_b.request(
        "POST",
        f"/api/v4/teams/{_path_id(team['id'])}/members",
        what="user B joins the team",
        payload={"team_id": team["id"], "user_id": user_b["id"]},
        expect=(201,),
    )
    log("team: user B joined it")

    root = create_post(as_a, "user A posts", channel_id, f"Smoke test {suffix}: hello from {name_a}")
    reply = create_post(
        as_b, "user B replies", channel_id, f"Smoke test {suffix}: reply from {name_b}", root_id=root["id"]
    )
    log("posts: user A posted in Town Square, user B replied in the thread")

    image = make_png()
    body, content_type = encode_multipart(
        [("channel_id", channel_id)], [("files", "smoke.png", "image/png", image)]
    )
    uploaded = as_a.request(
        "POST", "/api/v4/files", what="upload image", body=body, content_type=content_type, expect=(201,)
    ).json()
    try:
        file_id = uploaded["file_infos"][0]["id"]
    except (KeyError, IndexError, TypeError) as exc:
        raise SmokeError("upload image: POST /api/v4/files returned no file_infos[0].id") from exc
    image_post = create_post(
        as_a,
        "user A replies with the image",
        channel_id,
        f"Smoke test {suffix}: image from {name_a}",
        root_id=root["id"],
        file_ids=[file_id],
    )
    if file_id not in (image_post.get("file_ids") or []):
        raise SmokeError(
            f"user A replies with the image: post {image_post['id']} does not list file {file_id}"
        )
    image_sha256 = hashlib.sha256(image).hexdigest()
    _check_file(as_a, file_id, image_sha256, len(image), "download the image just uploaded")
    log(f"image: uploaded smoke.png ({len(image)} bytes) in a reply, downloaded it back intact")

    ws_target = ws_url or server.websocket_url()
    hello = websocket_hello(ws_target, as_a.token, _ws_ssl_context(ws_target, server))
    log(_hello_summary(hello))

    fingerprint: dict[str, Any] = {
        "url": server.url,
        "server_version": version,
        "team": {"id": team["id"], "name": team_payload["name"]},
        "channel_id": channel_id,
        "users": {
            "a": {"id": user_a["id"], "username": name_a, "password": password_a},
            "b": {"id": user_b["id"], "username": name_b, "password": password_b},
        },
        "posts": [
            {
                "id": post["id"],
                "user_id": post.get("user_id", ""),
                "root_id": post.get("root_id", ""),
                "message": post.get("message", ""),
            }
            for post in (root, reply, image_post)
        ],
        "image": {
            "file_id": file_id,
            "post_id": image_post["id"],
            "sha256": image_sha256,
            "size": len(image),
        },
    }
    _check_recorded_posts(fingerprint, user_a["id"], user_b["id"])
    write_fingerprint(fingerprint_path, fingerprint)
    log(f"fingerprint: written to {fingerprint_path} (mode 0600)")
    return fingerprint


def _check_recorded_posts(fingerprint: dict[str, Any], id_a: str, id_b: str) -> None:
    """The server must echo what was posted; a post recorded wrongly would make every verify fail."""
    root_id = fingerprint["posts"][0]["id"]
    expected = [(id_a, ""), (id_b, root_id), (id_a, root_id)]
    for number, (post, (user_id, post_root)) in enumerate(zip(fingerprint["posts"], expected), start=1):
        if post["user_id"] != user_id or post["root_id"] != post_root:
            raise SmokeError(
                f"post {number} ({post['id']}) was created with user_id {post['user_id']!r} and root_id "
                f"{post['root_id']!r}, expected {user_id!r} and {post_root!r}"
            )


def _ws_ssl_context(ws_url: str, server: Server) -> ssl.SSLContext | None:
    if not ws_url.startswith("wss://"):
        return None
    return server.ssl_context or make_ssl_context(server.ca_file, server.insecure)


def _hello_summary(hello: dict[str, Any]) -> str:
    how = "after an authentication_challenge" if hello["challenged"] else "with the upgrade request's token"
    version = hello["data"].get("server_version")
    shown = f", server_version {version}" if version else ""
    return f"websocket: hello received in {hello['seconds']:.1f}s {how}{shown}"


def _check_file(server: Server, file_id: str, sha256: str, size: int, what: str) -> None:
    response = server.request("GET", f"/api/v4/files/{_path_id(file_id)}", what=what, expect=(200,))
    got_sha256 = hashlib.sha256(response.body).hexdigest()
    if got_sha256 != sha256 or len(response.body) != size:
        raise SmokeError(
            f"{what}: file {file_id} changed: expected sha256 {sha256} ({size} bytes), "
            f"got sha256 {got_sha256} ({len(response.body)} bytes)"
        )


def _thread_mismatches(fingerprint: dict[str, Any], thread: Any) -> list[str]:
    """Every difference between the recorded posts and the thread the server returns now."""
    if not isinstance(thread, dict) or not isinstance(thread.get("posts"), dict):
        return ["thread answer has no 'posts' object"]
    posts = thread["posts"]
    problems = []
    recorded_ids = set()
    for number, recorded in enumerate(fingerprint["posts"], start=1):
        recorded_ids.add(recorded["id"])
        got = posts.get(recorded["id"])
        label = f"post {number} ({recorded['id']})"
        if not isinstance(got, dict):
            problems.append(f"{label} is missing from the thread")
            continue
        if got.get("delete_at"):
            problems.append(f"{label} is deleted (delete_at {got['delete_at']})")
        for key in ("message", "user_id", "root_id"):
            if got.get(key, "") != recorded[key]:
                problems.append(f"{label}: {key} expected {recorded[key]!r}, got {got.get(key)!r}")
    image = fingerprint["image"]
    image_post = posts.get(image["post_id"])
    if isinstance(image_post, dict) and image["file_id"] not in (image_post.get("file_ids") or []):
        problems.append(
            f"post {image['post_id']}: file_ids expected to contain {image['file_id']!r}, "
            f"got {image_post.get('file_ids')!r}"
        )
    extra = sorted(set(posts) - recorded_ids)
    if extra:
        problems.append(f"thread has posts that were not recorded: {', '.join(extra)}")
    return problems


def _login_recorded(server: Server, fingerprint: dict[str, Any], who: str) -> Server:
    user = fingerprint["users"][who]
    label = f"user {who.upper()}"
    what = f"log in as {label} ({user['username']})"
    session, got = login(server, user["username"], user["password"], what)
    if got["id"] != user["id"]:
        raise SmokeError(f"log in as {label}: user id expected {user['id']!r}, got {got['id']!r}")
    return session


def verify(
    url: str | None,
    fingerprint_path: str | os.PathLike[str],
    *,
    ca_file: str | None = None,
    insecure: bool = False,
    ws_url: str | None = None,
    wait: float = DEFAULT_WAIT,
    log: Log | None = None,
) -> dict[str, Any]:
    """Check that what `run` recorded is still there, unchanged.

    Returns the recorded fingerprint with "server_version" set to the version the server runs now and
    "recorded_server_version" set to the one recorded by `run`, so a test can compare them across an upgrade.
    """
    log = log or _quiet
    fingerprint = read_fingerprint(fingerprint_path)
    server = Server(url or fingerprint["url"], ca_file=ca_file, insecure=insecure)
    version = wait_for_ping(server, wait, log)

    as_a = _login_recorded(server, fingerprint, "a")
    _login_recorded(server, fingerprint, "b")
    names = [fingerprint["users"][who]["username"] for who in ("a", "b")]
    log(f"users: {names[0]} and {names[1]} logged in")

    root_id = fingerprint["posts"][0]["id"]
    thread = as_a.request(
        "GET", f"/api/v4/posts/{_path_id(root_id)}/thread", what=f"read thread {root_id}", expect=(200,)
    ).json()
    problems = _thread_mismatches(fingerprint, thread)
    if problems:
        count = f"{len(problems)} mismatch" + ("es" if len(problems) > 1 else "")
        raise SmokeError(f"thread {root_id}: {count}: " + "; ".join(problems))
    log(f"posts: the thread holds the {len(fingerprint['posts'])} recorded posts, unchanged")

    image = fingerprint["image"]
    _check_file(as_a, image["file_id"], image["sha256"], int(image["size"]), "download the image")
    log(f"image: file {image['file_id']} is intact (sha256 {image['sha256'][:12]}...)")

    ws_target = ws_url or server.websocket_url()
    hello = websocket_hello(ws_target, as_a.token, _ws_ssl_context(ws_target, server))
    log(_hello_summary(hello))

    log(f"server version: {version} now, {fingerprint['server_version']} when the fingerprint was recorded")
    result = dict(fingerprint)
    result["recorded_server_version"] = fingerprint["server_version"]
    result["server_version"] = version
    return result


def websocket_check(
    url: str | None,
    fingerprint_path: str | os.PathLike[str],
    *,
    ca_file: str | None = None,
    insecure: bool = False,
    ws_url: str | None = None,
    wait: float = DEFAULT_WAIT,
    log: Log | None = None,
) -> dict[str, Any]:
    """Only the websocket hello check, logged in as the recorded user A; return the hello event's data."""
    log = log or _quiet
    fingerprint = read_fingerprint(fingerprint_path)
    server = Server(url or fingerprint["url"], ca_file=ca_file, insecure=insecure)
    wait_for_ping(server, wait, log)
    as_a = _login_recorded(server, fingerprint, "a")
    ws_target = ws_url or server.websocket_url()
    hello = websocket_hello(ws_target, as_a.token, _ws_ssl_context(ws_target, server))
    log(_hello_summary(hello))
    return hello["data"]


# ------------------------------------------------------------------------------------------------ CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmsmoke", description="Certified smoke test for a Mattermost server (API v4 only)."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    helps = {
        "run": "create users, a team, a thread with an image; check the websocket; record a fingerprint",
        "verify": "check that everything recorded in the fingerprint is still there, unchanged",
        "websocket": "only the websocket hello check, as the recorded user A",
    }
    for name, text in helps.items():
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument(
            "--url",
            required=name == "run",
            help="server URL, e.g. https://chat.example.com"
            + ("" if name == "run" else " (default: the recorded one)"),
        )
        trust = command.add_mutually_exclusive_group()
        trust.add_argument("--ca-file", help="trust this CA bundle (PEM) instead of the system trust store")
        trust.add_argument("--insecure", action="store_true", help="do not verify the TLS certificate")
        command.add_argument("--ws-url", help="websocket URL (default: derived from --url)")
        command.add_argument("--fingerprint", required=True, help="fingerprint JSON file (mode 0600)")
        command.add_argument(
            "--wait",
            type=float,
            default=DEFAULT_WAIT,
            help=f"seconds to wait for the first successful ping (default {DEFAULT_WAIT:g})",
        )
        if name == "run":
            command.add_argument(
                "--prefix", default="smoke", help="user and team name prefix (default smoke)"
            )
    return parser


def _print_line(line: str) -> None:
    print(line, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = {
        "ca_file": args.ca_file,
        "insecure": args.insecure,
        "ws_url": args.ws_url,
        "wait": args.wait,
        "log": _print_line,
    }
    try:
        if args.command == "run":
            run(args.url, args.fingerprint, prefix=args.prefix, **options)
            _print_line("smoke run: OK")
        elif args.command == "verify":
            verify(args.url, args.fingerprint, **options)
            _print_line("smoke verify: OK")
        else:
            websocket_check(args.url, args.fingerprint, **options)
            _print_line("smoke websocket: OK")
    except SmokeError as exc:
        message = " ".join(str(exc).split())
        print(f"mmsmoke: error: {message}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("mmsmoke: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
