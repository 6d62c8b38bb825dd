"""The Certified smoke test (tests/smoke/mmsmoke.py): its pieces alone, then end to end on the stand-in."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import http.server
import json
import os
import secrets
import socket
import ssl
import stat
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MattermostDatabase
from tests.pgserver import PostgresServer, free_port, quote_literal
from tests.smoke import mmsmoke

REPO = Path(__file__).resolve().parent.parent
MMSMOKE = REPO / "tests" / "smoke" / "mmsmoke.py"
STANDIN_PATH = REPO / "tests" / "standin"


# ----------------------------------------------------------------------------------------------- PNG


def decode_png(data: bytes) -> tuple[dict[str, int], bytes]:
    """Check signature, chunk CRCs and IEND; return the IHDR fields and the decompressed image data."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks = 8, []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        offset += 12 + length
    assert offset == len(data)
    assert chunks[0][0] == b"IHDR"
    assert chunks[-1] == (b"IEND", b"")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    header = {"width": width, "height": height, "depth": depth, "colour": colour}
    assert (compression, filtering, interlace) == (0, 0, 0)
    pixels = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    return header, pixels


def test_png_is_valid_16x16_truecolour() -> None:
    header, pixels = decode_png(mmsmoke.make_png())
    assert header == {"width": 16, "height": 16, "depth": 8, "colour": 2}
    row_length = 1 + 16 * 3
    assert len(pixels) == 16 * row_length
    assert all(pixels[row * row_length] == 0 for row in range(16)), "every row uses filter type 0"


def test_png_differs_between_runs_but_not_for_the_same_noise() -> None:
    assert mmsmoke.make_png() != mmsmoke.make_png()
    assert mmsmoke.make_png(noise=b"\x01\x02") == mmsmoke.make_png(noise=b"\x01\x02")
    _, pixels = decode_png(mmsmoke.make_png(width=2, height=1, noise=b"\xab\xcd"))
    assert pixels == bytes([0, 0, 0, 0xAB, 255, 0, 0xCD])


# -------------------------------------------------------------------------------- WebSocket framing


def test_accept_key_matches_rfc6455_example() -> None:
    assert mmsmoke.websocket_accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
@pytest.mark.parametrize("mask", [True, False])
def test_frame_round_trip(size: int, mask: bool) -> None:
    payload = os.urandom(size)
    frame = mmsmoke.encode_frame(mmsmoke.OP_BINARY, payload, mask=mask)
    assert bool(frame[1] & 0x80) is mask
    parsed = mmsmoke.parse_frame(frame + b"next")
    assert parsed == ((True, mmsmoke.OP_BINARY, payload), len(frame))
    # Every strict prefix is incomplete, never a wrong frame.
    for cut in sorted({0, 1, 2, 3, 5, 9, len(frame) - 1}):
        if 0 <= cut < len(frame):
            assert mmsmoke.parse_frame(frame[:cut]) is None


def test_frame_masking_follows_rfc6455_example() -> None:
    # RFC 6455 section 5.7: a masked "Hello" with key 37 fa 21 3d.
    frame = mmsmoke.encode_frame(mmsmoke.OP_TEXT, b"Hello", mask_key=bytes.fromhex("37fa213d"))
    assert frame == bytes.fromhex("818537fa213d7f9f4d5158")
    assert mmsmoke.parse_frame(frame) == ((True, mmsmoke.OP_TEXT, b"Hello"), len(frame))


def test_unfinished_fragment_keeps_its_fin_bit() -> None:
    frame = mmsmoke.encode_frame(mmsmoke.OP_TEXT, b"Hel", mask=False, fin=False)
    assert frame == bytes.fromhex("010348656c")
    assert mmsmoke.parse_frame(frame) == ((False, mmsmoke.OP_TEXT, b"Hel"), 5)


# ------------------------------------------------------------------------------ a fake websocket peer


@dataclass
class FakeWebSocketServer:
    """Plays Mattermost's /api/v4/websocket for one client, in a thread.

    mode "header": accepts the Authorization header, then sends a ping and a fragmented hello.
    mode "challenge": ignores the header and says hello only after an authentication_challenge.
    mode "bad-accept": answers the handshake with a wrong Sec-WebSocket-Accept.
    mode "silent": never says hello.
    """

    mode: str
    token: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    request_head: str = ""
    client_frames: list[tuple[int, bytes, bool]] = field(default_factory=list)
    tls: ssl.SSLContext | None = None
    listener: socket.socket = field(default_factory=socket.socket)

    def __post_init__(self) -> None:
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        scheme = "wss" if self.tls else "ws"
        return f"{scheme}://127.0.0.1:{self.listener.getsockname()[1]}/api/v4/websocket"

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        if self.tls:
            try:
                connection = self.tls.wrap_socket(connection, server_side=True)
            except (ssl.SSLError, OSError):
                connection.close()
                return
        connection.settimeout(15)
        with connection:
            data = b""
            while b"\r\n\r\n" not in data:
                data += connection.recv(4096)
            head, buffer = data.split(b"\r\n\r\n", 1)
            self.request_head = head.decode("latin-1")
            key = next(
                line.split(":", 1)[1].strip()
                for line in self.request_head.split("\r\n")
                if line.lower().startswith("sec-websocket-key:")
            )
            accept = "wrong" if self.mode == "bad-accept" else mmsmoke.websocket_accept(key)
            connection.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
            )
            if self.mode == "bad-accept":
                return
            hello = json.dumps({"event": "hello", "data": {"server_version": "11.10.0"}, "seq": 0}).encode()
            if self.mode == "header":
                connection.sendall(
                    mmsmoke.encode_frame(mmsmoke.OP_PING, b"are you there", mask=False)
                    + mmsmoke.encode_frame(mmsmoke.OP_TEXT, hello[:10], mask=False, fin=False)
                    + mmsmoke.encode_frame(mmsmoke.OP_CONTINUATION, hello[10:], mask=False)
                )
            while True:
                parsed = mmsmoke.parse_frame(buffer)
                if parsed is None:
                    chunk = connection.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                    continue
                (_fin, opcode, payload), used = parsed
                self.client_frames.append((opcode, payload, bool(buffer[1] & 0x80)))
                buffer = buffer[used:]
                if opcode == mmsmoke.OP_CLOSE:
                    connection.sendall(mmsmoke.encode_frame(mmsmoke.OP_CLOSE, payload[:2], mask=False))
                    return
                if opcode == mmsmoke.OP_TEXT and self.mode == "challenge":
                    message = json.loads(payload)
                    assert message["action"] == "authentication_challenge"
                    assert message["data"]["token"] == self.token
                    reply = json.dumps({"status": "OK", "seq_reply": message["seq"]}).encode()
                    connection.sendall(
                        mmsmoke.encode_frame(mmsmoke.OP_TEXT, reply, mask=False)
                        + mmsmoke.encode_frame(mmsmoke.OP_TEXT, hello, mask=False)
                    )

    def join(self) -> None:
        self.thread.join(timeout=15)
        self.listener.close()


def test_websocket_hello_with_token_in_upgrade_request() -> None:
    peer = FakeWebSocketServer("header")
    hello = mmsmoke.websocket_hello(peer.url, peer.token, None, challenge_after=5)
    peer.join()
    assert hello["data"] == {"server_version": "11.10.0"}
    assert hello["challenged"] is False
    assert f"Authorization: Bearer {peer.token}" in peer.request_head
    assert "Sec-WebSocket-Version: 13" in peer.request_head
    opcodes = [opcode for opcode, _payload, _masked in peer.client_frames]
    assert opcodes == [mmsmoke.OP_PONG, mmsmoke.OP_CLOSE]
    assert peer.client_frames[0][1] == b"are you there"
    assert peer.client_frames[1][1] == struct.pack(">H", 1000)
    assert all(masked for _opcode, _payload, masked in peer.client_frames)


def test_websocket_hello_after_authentication_challenge() -> None:
    peer = FakeWebSocketServer("challenge")
    hello = mmsmoke.websocket_hello(peer.url, peer.token, None, challenge_after=0.2)
    peer.join()
    assert hello["challenged"] is True
    assert hello["data"]["server_version"] == "11.10.0"
    challenge = json.loads(peer.client_frames[0][1])
    assert challenge == {"seq": 1, "action": "authentication_challenge", "data": {"token": peer.token}}
    assert all(masked for _opcode, _payload, masked in peer.client_frames)


def test_websocket_wrong_accept_key_is_refused() -> None:
    peer = FakeWebSocketServer("bad-accept")
    with pytest.raises(mmsmoke.SmokeError, match="Sec-WebSocket-Accept is 'wrong'"):
        mmsmoke.websocket_hello(peer.url, peer.token, None)
    peer.join()


def test_websocket_without_hello_times_out() -> None:
    peer = FakeWebSocketServer("silent")
    with pytest.raises(
        mmsmoke.SmokeError, match=r"no hello event within 0\.6s after an authentication_challenge"
    ):
        mmsmoke.websocket_hello(peer.url, peer.token, None, timeout=0.6, challenge_after=0.1)
    peer.join()


def test_token_not_in_the_error_of_a_failing_handshake() -> None:
    peer = FakeWebSocketServer("bad-accept")
    secret = base64.b64encode(os.urandom(12)).decode()
    with pytest.raises(mmsmoke.SmokeError) as failure:
        mmsmoke.websocket_hello(peer.url, secret, None)
    peer.join()
    assert secret not in str(failure.value)


# ------------------------------------------------------------------------------------------------ TLS


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1: its own CA, as in the molecule scenarios."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    options = "-x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1"
    san = "subjectAltName=IP:127.0.0.1"
    subprocess.run(
        ["openssl", "req", *options.split(), "-addext", san, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return Certificate(cert, key)


class PingHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"status": "OK"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Version-Id", "11.10.0.11.10.0.abc.true")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def https_ping(certificate: Certificate) -> Iterator[str]:
    """An HTTPS server that only answers like /api/v4/system/ping."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), PingHandler)
    server.socket = certificate.server_context().wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_https_with_ca_file_or_insecure(https_ping: str, certificate: Certificate) -> None:
    trusted = mmsmoke.Server(https_ping, ca_file=str(certificate.cert))
    assert mmsmoke.wait_for_ping(trusted, 0, print) == "11.10.0"
    assert mmsmoke.wait_for_ping(mmsmoke.Server(https_ping, insecure=True), 0, print) == "11.10.0"


def test_untrusted_certificate_fails_at_once_with_a_hint(https_ping: str) -> None:
    started = time.monotonic()
    with pytest.raises(mmsmoke.SmokeError, match=r"not trusted .*pass --ca-file"):
        mmsmoke.wait_for_ping(mmsmoke.Server(https_ping), 30, print)
    assert time.monotonic() - started < 5, "a certificate problem is not retried"


def test_wss_hello_trusts_the_ca_file(certificate: Certificate) -> None:
    peer = FakeWebSocketServer("header", tls=certificate.server_context())
    context = mmsmoke.make_ssl_context(str(certificate.cert))
    assert peer.url.startswith("wss://")
    hello = mmsmoke.websocket_hello(peer.url, peer.token, context, challenge_after=5)
    peer.join()
    assert hello["data"]["server_version"] == "11.10.0"


def test_wss_with_an_untrusted_certificate_fails(certificate: Certificate) -> None:
    peer = FakeWebSocketServer("header", tls=certificate.server_context())
    with pytest.raises(mmsmoke.SmokeError, match=r"websocket: TLS certificate of 127\.0\.0\.1 not trusted"):
        mmsmoke.websocket_hello(peer.url, peer.token, mmsmoke.make_ssl_context())
    peer.join()


# ------------------------------------------------------------------------------------ other pieces


def test_multipart_puts_channel_id_before_the_file() -> None:
    body, content_type = mmsmoke.encode_multipart(
        [("channel_id", "chan1")], [("files", "smoke.png", "image/png", b"\x89PNG\r\n--data")]
    )
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    parts = list(message.iter_parts())
    assert [part.get_param("name", header="content-disposition") for part in parts] == ["channel_id", "files"]
    assert parts[0].get_content() == "chan1"
    assert parts[1].get_filename() == "smoke.png"
    assert parts[1].get_content_type() == "image/png"
    assert parts[1].get_payload(decode=True) == b"\x89PNG\r\n--data"


@pytest.mark.parametrize(
    ("header", "version"),
    [
        ("11.10.0.11.10.0.0a1b2c.true", "11.10.0"),
        ("3.8.0.3.8.2.abc.false", "3.8.0"),
        ("9.11.5.dev.x.y", "9.11.5"),
        ("0.0.0-dev.dev.29a66e83.false", "0.0.0-dev"),  # a build without build info
    ],
)
def test_server_version_is_first_three_components(header: str, version: str) -> None:
    assert mmsmoke.server_version(header) == version


@pytest.mark.parametrize("header", [None, "", "11.10", "v11.10.0.x", "11..0.x"])
def test_server_version_without_a_usable_header_is_an_error(header: str | None) -> None:
    with pytest.raises(mmsmoke.SmokeError, match="X-Version-Id"):
        mmsmoke.server_version(header)


def test_websocket_url_follows_the_server_url() -> None:
    assert (
        mmsmoke.Server("https://chat.example.com/").websocket_url()
        == "wss://chat.example.com/api/v4/websocket"
    )
    assert (
        mmsmoke.Server("http://127.0.0.1:8065/mm").websocket_url()
        == "ws://127.0.0.1:8065/mm/api/v4/websocket"
    )
    assert mmsmoke.Server("http://[::1]:80").websocket_url() == "ws://[::1]/api/v4/websocket"


def test_password_is_strong_and_random() -> None:
    first, second = mmsmoke.new_password(), mmsmoke.new_password()
    assert first != second
    assert len(first) >= 30
    assert any(c.isupper() for c in first) and any(c.islower() for c in first)
    assert any(c.isdigit() for c in first) and any(not c.isalnum() for c in first)


def test_fingerprint_file_is_private_and_round_trips(tmp_path: Path) -> None:
    target = tmp_path / "fp.json"
    target.write_text("old")
    target.chmod(0o644)
    fingerprint = sample_fingerprint()
    mmsmoke.write_fingerprint(target, fingerprint)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert mmsmoke.read_fingerprint(target) == fingerprint
    assert [p.name for p in tmp_path.iterdir()] == ["fp.json"], "no temporary file left behind"


def test_malformed_fingerprint_is_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "fp.json"
    broken = sample_fingerprint()
    del broken["image"]["sha256"]
    target.write_text(json.dumps(broken))
    with pytest.raises(mmsmoke.SmokeError, match=r"incomplete or malformed.*sha256"):
        mmsmoke.read_fingerprint(target)
    with pytest.raises(mmsmoke.SmokeError, match="cannot read fingerprint file"):
        mmsmoke.read_fingerprint(tmp_path / "missing.json")


def sample_fingerprint() -> dict[str, Any]:
    posts = [
        {"id": "p1", "user_id": "ua", "root_id": "", "message": "hello"},
        {"id": "p2", "user_id": "ub", "root_id": "p1", "message": "reply"},
        {"id": "p3", "user_id": "ua", "root_id": "p1", "message": "image"},
    ]
    return {
        "url": "http://127.0.0.1:1",
        "server_version": "11.10.0",
        "team": {"id": "t1", "name": "smoke-1"},
        "channel_id": "c1",
        "users": {
            "a": {"id": "ua", "username": "smoke-a-1", "password": "pa"},
            "b": {"id": "ub", "username": "smoke-b-1", "password": "pb"},
        },
        "posts": posts,
        "image": {"file_id": "f1", "post_id": "p3", "sha256": "00" * 32, "size": 10},
    }


def test_thread_mismatches_name_the_post_and_both_values() -> None:
    fingerprint = sample_fingerprint()
    posts = {post["id"]: dict(post) for post in fingerprint["posts"]}
    posts["p3"]["file_ids"] = ["f1"]
    assert mmsmoke._thread_mismatches(fingerprint, {"order": list(posts), "posts": posts}) == []

    posts["p2"]["message"] = "tampered"
    posts["p3"]["user_id"] = "ub"
    del posts["p1"]
    posts["p9"] = {"id": "p9"}
    problems = mmsmoke._thread_mismatches(fingerprint, {"posts": posts})
    assert problems == [
        "post 1 (p1) is missing from the thread",
        "post 2 (p2): message expected 'reply', got 'tampered'",
        "post 3 (p3): user_id expected 'ua', got 'ub'",
        "thread has posts that were not recorded: p9",
    ]


def test_main_reports_an_unreachable_server_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    code = mmsmoke.main(
        ["run", "--url", f"http://127.0.0.1:{port}", "--fingerprint", str(tmp_path / "fp"), "--wait", "0"]
    )
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert err.startswith("mmsmoke: error: server not ready after 0s: ping: GET http://127.0.0.1:")
    assert err.count("\n") == 1
    assert not (tmp_path / "fp").exists()


def test_main_rejects_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert mmsmoke.main(["run", "--url", "ftp://x", "--fingerprint", str(tmp_path / "fp")]) == 1
    assert "must be an http:// or https:// URL" in capsys.readouterr().err
    assert mmsmoke.main(["run", "--url", "http://x", "--fingerprint", "f", "--prefix", "Bad_Prefix"]) == 1
    assert "--prefix must be" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        mmsmoke.main(["run", "--url", "http://x", "--fingerprint", "f", "--insecure", "--ca-file", "ca.pem"])
    assert usage.value.code == 2


# ----------------------------------------------------------------- end to end against the stand-in


@dataclass
class StandinServer:
    url: str
    install_dir: Path
    data_dir: Path
    database: MattermostDatabase
    postgres: PostgresServer

    def sql(self, statement: str) -> str:
        return self.postgres.psql(statement, db=self.database.name)


@pytest.fixture
def standin(
    tmp_path: Path, postgres: PostgresServer, mm_database: MattermostDatabase
) -> Iterator[StandinServer]:
    """The stand-in Mattermost server on a fresh database, listening on 127.0.0.1."""
    install_dir = tmp_path / "mattermost"
    data_dir = install_dir / "data"
    (install_dir / "config").mkdir(parents=True)
    data_dir.mkdir()
    port = free_port()
    config = {
        "ServiceSettings": {"ListenAddress": f"127.0.0.1:{port}", "SiteURL": f"http://127.0.0.1:{port}"},
        "SqlSettings": {"DriverName": "postgres", "DataSource": mm_database.dsn},
        "FileSettings": {"DriverName": "local", "Directory": f"{data_dir}/"},
        "LogSettings": {"EnableConsole": True, "ConsoleLevel": "INFO", "EnableFile": False},
    }
    (install_dir / "config" / "config.json").write_text(json.dumps(config, indent=2))
    env = {**os.environ, "PYTHONPATH": str(STANDIN_PATH), "MM_STANDIN_INSTALL_DIR": str(install_dir)}
    log_path = tmp_path / "standin.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mmstandin"],
            cwd=install_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_ping(url, process, log_path)
        yield StandinServer(url, install_dir, data_dir, mm_database, postgres)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_ping(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 30) -> None:
    server = mmsmoke.Server(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"stand-in exited with {process.returncode}:\n{log_path.read_text(errors='replace')}")
        try:
            server.request("GET", "/api/v4/system/ping", what="ping", expect=(200,))
            return
        except mmsmoke.SmokeError:
            time.sleep(0.2)
    pytest.fail(f"stand-in did not answer ping within {timeout}s:\n{log_path.read_text(errors='replace')}")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """mmsmoke.py as a program, the way molecule runs it inside a container."""
    return subprocess.run(
        [sys.executable, str(MMSMOKE), *args], capture_output=True, text=True, timeout=120, check=False
    )


def secrets_in(fingerprint: dict[str, Any]) -> list[str]:
    return [user["password"] for user in fingerprint["users"].values()]


@pytest.mark.slow
def test_run_then_verify_through_the_cli(standin: StandinServer, tmp_path: Path) -> None:
    fingerprint_path = tmp_path / "fingerprint.json"
    ran = run_cli("run", "--url", standin.url, "--fingerprint", str(fingerprint_path))
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr == ""
    assert stat.S_IMODE(fingerprint_path.stat().st_mode) == 0o600
    fingerprint = json.loads(fingerprint_path.read_text())
    for step in (
        "ping: OK",
        "user A:",
        "user B:",
        "team:",
        "posts:",
        "image:",
        "websocket: hello",
        "fingerprint:",
    ):
        assert step in ran.stdout

    assert fingerprint["url"] == standin.url
    assert fingerprint["server_version"].count(".") == 2
    users = fingerprint["users"]
    assert users["a"]["username"].startswith("smoke-a-") and users["b"]["username"].startswith("smoke-b-")
    posts = fingerprint["posts"]
    assert [post["user_id"] for post in posts] == [users["a"]["id"], users["b"]["id"], users["a"]["id"]]
    assert [post["root_id"] for post in posts] == ["", posts[0]["id"], posts[0]["id"]]
    assert fingerprint["image"]["post_id"] == posts[2]["id"]
    stored = stored_image(standin, fingerprint)
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == fingerprint["image"]["sha256"]

    verified = run_cli("verify", "--url", standin.url, "--fingerprint", str(fingerprint_path))
    assert verified.returncode == 0, verified.stderr
    assert "smoke verify: OK" in verified.stdout
    assert f"server version: {fingerprint['server_version']} now" in verified.stdout

    websocket = run_cli("websocket", "--url", standin.url, "--fingerprint", str(fingerprint_path))
    assert websocket.returncode == 0, websocket.stderr
    assert "websocket: hello received" in websocket.stdout

    token_rows = standin.sql("SELECT token FROM sessions") if has_table(standin, "sessions") else ""
    for result in (ran, verified, websocket):
        for secret in secrets_in(fingerprint) + token_rows.split():
            assert secret not in result.stdout + result.stderr


@pytest.mark.slow
def test_verify_detects_a_tampered_post(standin: StandinServer, tmp_path: Path) -> None:
    fingerprint_path = tmp_path / "fingerprint.json"
    fingerprint = mmsmoke.run(standin.url, fingerprint_path)
    reply = fingerprint["posts"][1]
    reply_id = quote_literal(reply["id"])
    standin.sql(f"UPDATE posts SET message = 'tampered' WHERE id = {reply_id}")  # noqa: S608

    result = run_cli("verify", "--url", standin.url, "--fingerprint", str(fingerprint_path))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert f"post 2 ({reply['id']}): message expected {reply['message']!r}, got 'tampered'" in result.stderr
    with pytest.raises(mmsmoke.SmokeError, match="1 mismatch: post 2"):
        mmsmoke.verify(standin.url, fingerprint_path)


@pytest.mark.slow
def test_verify_detects_a_changed_file(standin: StandinServer, tmp_path: Path) -> None:
    fingerprint_path = tmp_path / "fingerprint.json"
    fingerprint = mmsmoke.run(standin.url, fingerprint_path, wait=5)
    stored = stored_image(standin, fingerprint)
    content = bytearray(stored.read_bytes())
    content[-20] ^= 0xFF
    stored.write_bytes(bytes(content))

    result = run_cli("verify", "--url", standin.url, "--fingerprint", str(fingerprint_path))
    assert result.returncode == 1
    image = fingerprint["image"]
    assert f"file {image['file_id']} changed: expected sha256 {image['sha256']}" in result.stderr
    assert hashlib.sha256(bytes(content)).hexdigest() in result.stderr


@pytest.mark.slow
def test_verify_returns_the_version_now_and_then(standin: StandinServer, tmp_path: Path) -> None:
    fingerprint_path = tmp_path / "fingerprint.json"
    lines: list[str] = []
    recorded = mmsmoke.run(standin.url, fingerprint_path, prefix="check", log=lines.append)
    assert recorded["users"]["a"]["username"].startswith("check-a-")
    verified = mmsmoke.verify(None, fingerprint_path, log=lines.append)
    assert verified["server_version"] == verified["recorded_server_version"] == recorded["server_version"]
    assert verified["posts"] == recorded["posts"]
    assert not any(secret in line for line in lines for secret in secrets_in(recorded))


@pytest.mark.slow
def test_verify_fails_for_a_wrong_password(standin: StandinServer, tmp_path: Path) -> None:
    fingerprint_path = tmp_path / "fingerprint.json"
    fingerprint = mmsmoke.run(standin.url, fingerprint_path)
    wrong_password = mmsmoke.new_password()
    fingerprint["users"]["b"]["password"] = wrong_password
    mmsmoke.write_fingerprint(fingerprint_path, fingerprint)
    result = run_cli("verify", "--url", standin.url, "--fingerprint", str(fingerprint_path))
    assert result.returncode == 1
    assert f"log in as user B ({fingerprint['users']['b']['username']})" in result.stderr
    assert wrong_password not in result.stderr


def stored_image(standin: StandinServer, fingerprint: dict[str, Any]) -> Path:
    """The uploaded PNG under the data directory, found by content so the storage layout does not matter."""
    wanted = fingerprint["image"]["sha256"]
    matches = [
        path
        for path in standin.data_dir.rglob("*")
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == wanted
    ]
    assert len(matches) == 1, f"expected the image once under {standin.data_dir}, found {matches}"
    return matches[0]


def has_table(standin: StandinServer, name: str) -> bool:
    return standin.sql(f"SELECT to_regclass({quote_literal(name)}) IS NOT NULL").strip() == "t"
