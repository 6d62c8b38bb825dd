"""RFC 6455 websocket for /api/v4/websocket: handshake checks, frames, and Mattermost's event protocol.

A client that sent its token with the upgrade request (Authorization header or MMAUTHTOKEN cookie) gets
the "hello" event at once; otherwise it must send an "authentication_challenge" action first, as the
real server's websocket router requires. The connection lives on the HTTP server thread that accepted it,
so the loop wakes up twice a second to notice a server stop instead of blocking in recv() forever.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from . import store

MAGIC_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUPPORTED_VERSION = "13"

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
POLL_SECONDS = 0.5
SEND_TIMEOUT_SECONDS = 10.0

log = logging.getLogger("mmstandin.websocket")


class HandshakeError(Exception):
    """The upgrade request is not a valid RFC 6455 opening handshake."""


class ConnectionClosed(Exception):
    """The peer went away, broke the protocol, or the server is stopping."""


def _tokens(value: str | None) -> list[str]:
    return [token.strip().lower() for token in (value or "").split(",") if token.strip()]


def check_handshake(headers: Mapping[str, str]) -> str:
    """Validate the opening handshake and return the Sec-WebSocket-Accept value for it."""
    if "websocket" not in _tokens(headers.get("Upgrade")):
        raise HandshakeError("'websocket' token not found in 'Upgrade' header")
    if "upgrade" not in _tokens(headers.get("Connection")):
        raise HandshakeError("'upgrade' token not found in 'Connection' header")
    if (headers.get("Sec-WebSocket-Version") or "").strip() != SUPPORTED_VERSION:
        raise HandshakeError("unsupported version: 13 not found in 'Sec-Websocket-Version' header")
    key = (headers.get("Sec-WebSocket-Key") or "").strip()
    try:
        valid_key = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid_key = False
    if not valid_key:
        raise HandshakeError("'Sec-WebSocket-Key' header must be Base64 encoded value of 16-byte in length")
    return accept_value(key)


def accept_value(key: str) -> str:
    digest = hashlib.sha1((key + MAGIC_GUID).encode("ascii")).digest()  # noqa: S324 - fixed by RFC 6455
    return base64.b64encode(digest).decode("ascii")


def origin_allowed(headers: Mapping[str, str], allow_cors_from: str = "") -> bool:
    """gorilla/websocket's same-origin default, which Mattermost keeps unless AllowCorsFrom is set."""
    origin = headers.get("Origin")
    if not origin or allow_cors_from.strip() == "*":
        return True
    origin_host = urlsplit(origin).netloc.lower()
    allowed = {h.strip().lower() for h in allow_cors_from.split() if h.strip()}
    if origin.lower() in allowed or origin_host in {urlsplit(a).netloc for a in allowed}:
        return True
    return origin_host == (headers.get("Host") or "").lower()


def encode_frame(opcode: int, payload: bytes = b"") -> bytes:
    """One unmasked, final server frame."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    return header + payload


def unmask(mask: bytes, data: bytes) -> bytes:
    """XOR the payload with the 4-byte client mask (as one big integer: fast for large messages)."""
    if not data:
        return data
    key = (mask * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(len(data), "big")


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode("utf-8")[:120]


class Hub:
    """The authenticated connections of one server, so API handlers can push events to users."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: set[Connection] = set()

    def register(self, connection: Connection) -> None:
        with self._lock:
            self._connections.add(connection)

    def unregister(self, connection: Connection) -> None:
        with self._lock:
            self._connections.discard(connection)

    def connections(self) -> list[Connection]:
        with self._lock:
            return list(self._connections)

    def publish(
        self, user_ids: Iterable[str], event: str, data: dict[str, Any], broadcast: dict[str, Any]
    ) -> int:
        """Send an event to every connection of the given users; returns how many got it."""
        wanted = set(user_ids)
        sent = 0
        for connection in self.connections():
            if connection.user_id in wanted:
                try:
                    connection.send_event(event, data, broadcast)
                    sent += 1
                except OSError:
                    self.unregister(connection)
        return sent


def empty_broadcast(**fields: Any) -> dict[str, Any]:
    broadcast: dict[str, Any] = {
        "omit_users": None,
        "user_id": "",
        "channel_id": "",
        "team_id": "",
        "connection_id": "",
        "omit_connection_id": "",
    }
    broadcast.update(fields)
    return broadcast


class Connection:
    """One upgraded connection: reads client frames, answers actions, sends events."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        server_version: str,
        authenticate: Callable[[str], str | None],
        hub: Hub,
        stopping: threading.Event,
        user_id: str | None = None,
        buffered: bytes = b"",
        logger: logging.Logger | None = None,
    ) -> None:
        self.sock = sock
        self.server_version = server_version
        self.authenticate = authenticate
        self.hub = hub
        self.stopping = stopping
        self.user_id = user_id
        self.connection_id = store.new_id()
        self.log = logger or log
        self._inbox = bytearray(buffered)
        # A selector rather than select.select(): it works for any file descriptor number.
        self._selector = selectors.DefaultSelector()
        self._selector.register(sock, selectors.EVENT_READ)
        self._send_lock = threading.Lock()
        self._seq = 0
        self._closed = False

    # Sending -------------------------------------------------------------------------------------------

    def _send(self, opcode: int, payload: bytes) -> None:
        with self._send_lock:
            if self._closed:
                raise OSError("websocket already closed")
            self.sock.sendall(encode_frame(opcode, payload))

    def send_json(self, message: dict[str, Any]) -> None:
        self._send(OP_TEXT, json.dumps(message, separators=(",", ":")).encode("utf-8"))

    def send_event(self, event: str, data: dict[str, Any], broadcast: dict[str, Any]) -> None:
        with self._send_lock:
            seq = self._seq
            self._seq += 1
        self.send_json({"event": event, "data": data, "broadcast": broadcast, "seq": seq})

    def close(self, code: int, reason: str = "") -> None:
        """Send a close frame (once) and stop sending."""
        with self._send_lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(OSError):
                self.sock.sendall(encode_frame(OP_CLOSE, close_payload(code, reason)))

    def _hello(self) -> None:
        self.hub.register(self)
        self.send_event(
            "hello",
            {"connection_id": self.connection_id, "server_version": self.server_version},
            empty_broadcast(user_id=self.user_id or ""),
        )

    # Receiving -----------------------------------------------------------------------------------------

    def _read_exactly(self, count: int) -> bytes:
        while len(self._inbox) < count:
            if self.stopping.is_set():
                self.close(CLOSE_GOING_AWAY, "server stopping")
                raise ConnectionClosed("server stopping")
            if not self._selector.select(POLL_SECONDS):
                continue
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, BlockingIOError, InterruptedError):
                continue
            if not chunk:
                raise ConnectionClosed("peer closed the connection")
            self._inbox.extend(chunk)
        data = bytes(self._inbox[:count])
        del self._inbox[:count]
        return data

    def _read_frame(self) -> tuple[bool, int, bytes]:
        first, second = self._read_exactly(2)
        fin, opcode, masked, length = bool(first & 0x80), first & 0x0F, bool(second & 0x80), second & 0x7F
        if first & 0x70:
            self._fail(CLOSE_PROTOCOL_ERROR, "reserved bits set")
        if not masked:
            self._fail(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
        if opcode >= OP_CLOSE and (length > 125 or not fin):
            self._fail(CLOSE_PROTOCOL_ERROR, "bad control frame")
        if length == 126:
            (length,) = struct.unpack("!H", self._read_exactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read_exactly(8))
        if length > MAX_MESSAGE_BYTES:
            self._fail(CLOSE_TOO_BIG, "message too big")
        mask = self._read_exactly(4)
        return fin, opcode, unmask(mask, self._read_exactly(length))

    def _fail(self, code: int, reason: str) -> None:
        self.close(code, reason)
        raise ConnectionClosed(reason)

    def _next_message(self) -> tuple[int, bytes] | None:
        """The next complete data message; control frames are answered on the way. None = closed."""
        message_opcode, parts = None, []
        while True:
            fin, opcode, payload = self._read_frame()
            if opcode == OP_PING:
                self._send(OP_PONG, payload)
            elif opcode == OP_PONG:
                continue
            elif opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else CLOSE_NORMAL
                self.close(code if 1000 <= code < 5000 else CLOSE_NORMAL)
                return None
            elif opcode in (OP_TEXT, OP_BINARY) and message_opcode is None:
                message_opcode, parts = opcode, [payload]
            elif opcode == OP_CONTINUATION and message_opcode is not None:
                parts.append(payload)
            else:
                self._fail(CLOSE_PROTOCOL_ERROR, "unexpected opcode")
            if message_opcode is not None and fin and opcode in (OP_TEXT, OP_BINARY, OP_CONTINUATION):
                data = b"".join(parts)
                if len(data) > MAX_MESSAGE_BYTES:
                    self._fail(CLOSE_TOO_BIG, "message too big")
                return message_opcode, data

    # Mattermost protocol -------------------------------------------------------------------------------

    def _reply(self, seq: Any, status: str = "OK", **extra: Any) -> None:
        self.send_json({"status": status, "seq_reply": seq, **extra})

    def _handle_action(self, request: dict[str, Any]) -> bool:
        """Answer one client action; False when the connection must end."""
        action, seq = request.get("action"), request.get("seq")
        data = request.get("data") if isinstance(request.get("data"), dict) else {}
        if action == "authentication_challenge":
            if self.user_id:
                return True
            token = data.get("token")
            user_id = self.authenticate(token) if isinstance(token, str) and token else None
            if not user_id:
                self.close(CLOSE_POLICY_VIOLATION, "authentication failed")
                return False
            self.user_id = user_id
            self._reply(seq)
            self._hello()
            return True
        if not self.user_id:
            error = {
                "id": "api.web_socket_router.not_authenticated.app_error",
                "message": "The websocket connection is not authenticated. Please log in and try again.",
                "detailed_error": "",
                "status_code": 401,
            }
            self._reply(seq, "FAIL", error=error)
            return True
        if action == "ping":
            pong = {"text": "pong", "version": self.server_version, "server_time": int(time.time() * 1000)}
            self._reply(seq, data={**pong, "node_id": ""})
        else:
            self._reply(seq)
        return True

    def run(self) -> None:
        """Serve the connection until the client closes it, breaks the protocol, or the server stops."""
        try:
            if self.user_id:
                self._hello()
            while True:
                message = self._next_message()
                if message is None:
                    return
                opcode, payload = message
                if opcode != OP_TEXT:
                    continue
                try:
                    request = json.loads(payload.decode("utf-8"))
                except UnicodeDecodeError:
                    self._fail(CLOSE_INVALID_DATA, "text frame is not UTF-8")
                except ValueError:
                    continue
                if isinstance(request, dict) and not self._handle_action(request):
                    return
        except ConnectionClosed as reason:
            self.log.debug("websocket %s closed: %s", self.connection_id, reason)
        except OSError as exc:
            self.log.debug("websocket %s failed: %s", self.connection_id, exc)
        finally:
            self.hub.unregister(self)
            self._selector.close()
            with self._send_lock:
                self._closed = True


def drain_buffered(reader: Any, sock: socket.socket) -> bytes:
    """Bytes the HTTP request reader already pulled off the socket beyond the upgrade request.

    With the socket briefly non-blocking, read1() hands back whatever sits in the buffer (or in the
    kernel) without waiting, and without marking the socket file as timed out.
    """
    previous = sock.gettimeout()
    sock.setblocking(False)
    chunks = []
    try:
        while True:
            try:
                chunk = reader.read1(65536)
            except (BlockingIOError, InterruptedError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        sock.settimeout(previous)
    return b"".join(chunks)


def serve(
    sock: socket.socket,
    reader: Any,
    *,
    server_version: str,
    authenticate: Callable[[str], str | None],
    hub: Hub,
    stopping: threading.Event,
    user_id: str | None,
    logger: logging.Logger | None = None,
) -> None:
    """Run an upgraded connection on the current thread (after the 101 response was sent)."""
    buffered = drain_buffered(reader, sock)
    sock.settimeout(SEND_TIMEOUT_SECONDS)
    Connection(
        sock,
        server_version=server_version,
        authenticate=authenticate,
        hub=hub,
        stopping=stopping,
        user_id=user_id,
        buffered=buffered,
        logger=logger,
    ).run()
