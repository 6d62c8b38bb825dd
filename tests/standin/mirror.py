#!/usr/bin/env python3
"""HTTP mirror of the Mattermost release stand-in (test infrastructure, standard library only).

    python3 mirror.py --root ROOT/releases [--bind 127.0.0.1] [--port 0] [--port-file F] [--base-url URL]

It serves what the real release endpoints serve, and nothing more:

    GET|HEAD /<V>/<file>              files below --root (releases.mattermost.com), with single-range
                                      Range requests (206 / 416), ETag, Last-Modified; no listings
    GET /api/releases[?per_page&page] GitHub's "list releases" shape, one release per version directory,
                                      newest semver first (api.github.com/repos/.../releases)
    GET /api/releases/latest          the highest semver release that is not a prerelease
    GET /api/releases/tags/vX.Y.Z     one release by tag; /api/releases/<id> by id
    GET /mattermost-enterprise-linux  302 to the newest Enterprise tarball (latest.mattermost.com)

It binds to 127.0.0.1 unless --bind names another address, prints "serving ROOT on URL", writes the
port to --port-file, logs one line per request to stderr and exits 0 on SIGTERM or SIGINT.
Runs on Python 3.9 to 3.13; it is copied into test containers, so it imports nothing else.
"""

from __future__ import annotations

import argparse
import email.utils
import http.server
import ipaddress
import json
import os
import re
import signal
import socket
import socketserver
import sys
import threading
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

_VERSION_DIR = re.compile(
    r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)
_RANGE = re.compile(r"bytes[ \t]*=[ \t]*([0-9]*)[ \t]*-[ \t]*([0-9]*)[ \t]*")
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]+)?|\[[0-9A-Fa-f:.]+\](:[0-9]+)?")
_CHUNK = 256 * 1024
_CONTENT_TYPES = {
    ".gz": "application/gzip",
    ".sig": "application/pgp-signature",
    ".json": "application/json",
    ".asc": "application/pgp-keys",
}
_DEFAULT_PER_PAGE, _MAX_PER_PAGE = 30, 100
_ENTERPRISE_REDIRECT = "/mattermost-enterprise-linux"


class Unsatisfiable(Exception):
    """The Range header names no byte of the file."""


# ---- releases: version directories below the root -------------------------------------------------


class Release:
    """A version directory, e.g. ROOT/11.10.0 or ROOT/11.0.0-rc1 (a prerelease)."""

    def __init__(self, path: Path, match: re.Match) -> None:
        self.path = path
        self.version = path.name
        self.prerelease = match.group(4) is not None
        self.mtime = path.stat().st_mtime
        self.tag = "v" + self.version
        self.id = zlib.crc32(self.tag.encode())
        core = (int(match.group(1)), int(match.group(2)), int(match.group(3)))
        # Semver precedence: a prerelease sorts below its release; numeric identifiers compare as
        # numbers and below alphanumeric ones; a longer identifier list wins when one is a prefix.
        identifiers = []
        for part in (match.group(4) or "").split(".") if self.prerelease else []:
            identifiers.append((0, int(part), "") if part.isdigit() else (1, 0, part))
        self.sort_key = (core, 0 if self.prerelease else 1, identifiers)

    def as_github(self, base_url: str) -> dict:
        published = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.mtime))
        return {
            "url": f"{base_url}/api/releases/{self.id}",
            "html_url": f"{base_url}/releases/tag/{self.tag}",
            "id": self.id,
            "tag_name": self.tag,
            "target_commitish": "master",
            "name": self.tag,
            "draft": False,
            "prerelease": self.prerelease,
            "created_at": published,
            "published_at": published,
            "body": "",
            "assets": [],
        }


def scan_releases(root: Path) -> list[Release]:
    """Version directories below root, newest semver first (rescanned per request: builds add more)."""
    releases = []
    for entry in root.iterdir():
        match = _VERSION_DIR.fullmatch(entry.name)
        if match and entry.is_dir():
            releases.append(Release(entry, match))
    releases.sort(key=lambda release: release.sort_key, reverse=True)
    return releases


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single-range request; None means serve the whole file (RFC 9110 14.2)."""
    match = _RANGE.fullmatch(header.strip())
    if not match or match.group(1) == match.group(2) == "":
        return None  # unsupported (multiple ranges, other units) or malformed: ignore the header
    first, last = match.groups()
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - suffix), size - 1
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise Unsatisfiable
    return start, (min(int(last), size - 1) if last else size - 1)


# ---- HTTP --------------------------------------------------------------------------------------------


class MirrorServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], root: Path, base_url: str | None) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.root = root
        self.base_url = base_url.rstrip("/") if base_url else None
        super().__init__(address, MirrorHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, a DNS query nothing here needs.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[0], self.server_address[1]

    def url(self) -> str:
        host = self.server_name
        return f"http://[{host}]:{self.server_port}" if ":" in host else f"http://{host}:{self.server_port}"


class MirrorHandler(http.server.BaseHTTPRequestHandler):
    server: MirrorServer
    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections must not pin threads forever

    def version_string(self) -> str:
        return "StandinMirror/1"

    # ---- dispatch

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path = url.path
        try:
            if path == "/api/releases":
                self._list_releases(parse_qs(url.query))
            elif path.startswith("/api/releases/"):
                self._one_release(path[len("/api/releases/") :])
            elif path == _ENTERPRISE_REDIRECT:
                self._latest_enterprise()
            else:
                self._file(path)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-response; nothing to tell it

    # ---- GitHub-style release API

    def _list_releases(self, query: dict) -> None:
        per_page = _int_param(query, "per_page", _DEFAULT_PER_PAGE, 1, _MAX_PER_PAGE)
        page = _int_param(query, "page", 1, 1, 1 << 31)
        releases = scan_releases(self.server.root)
        base = self._base_url()
        chunk = releases[(page - 1) * per_page : page * per_page]
        last_page = max(1, -(-len(releases) // per_page))
        links = []
        for rel, number in (("prev", page - 1), ("next", page + 1), ("first", 1), ("last", last_page)):
            if (rel in ("prev", "first") and page > 1) or (rel in ("next", "last") and page < last_page):
                links.append(f'<{base}/api/releases?per_page={per_page}&page={number}>; rel="{rel}"')
        headers = {"Link": ", ".join(links)} if links else {}
        self._send_json(200, [release.as_github(base) for release in chunk], headers)

    def _one_release(self, which: str) -> None:
        releases = scan_releases(self.server.root)
        if which == "latest":
            found = next((r for r in releases if not r.prerelease), None)
        elif which.startswith("tags/"):
            found = next((r for r in releases if r.tag == which[len("tags/") :]), None)
        else:
            found = next((r for r in releases if str(r.id) == which), None)
        if found is None:
            self._send_json(404, {"message": "Not Found", "status": "404"})
        else:
            self._send_json(200, found.as_github(self._base_url()))

    def _latest_enterprise(self) -> None:
        for release in scan_releases(self.server.root):
            name = f"mattermost-{release.version}-linux-amd64.tar.gz"
            if not release.prerelease and (release.path / name).is_file():
                location = f"{self._base_url()}/{release.version}/{name}"
                self._send_bytes(302, b"", "text/plain", {"Location": location})
                return
        self._send_bytes(404, b"no enterprise release found\n", "text/plain")

    def _base_url(self) -> str:
        if self.server.base_url:
            return self.server.base_url
        host = self.headers.get("Host", "")
        return f"http://{host}" if _HOST.fullmatch(host) else self.server.url()

    # ---- files

    def _file(self, raw_path: str) -> None:
        decoded = unquote(raw_path)
        parts = [part for part in decoded.split("/") if part]
        if "\\" in decoded or "\x00" in decoded or any(part in (".", "..") for part in parts):
            self._send_bytes(400, b"bad path\n", "text/plain")
            return
        root = self.server.root
        # Dot files stay hidden: the builder writes its half-done tarballs under such names.
        candidate = root.joinpath(*parts).resolve() if parts else root
        if (
            not parts
            or any(part.startswith(".") for part in parts)
            or root not in candidate.parents
            or not candidate.is_file()
        ):
            self._send_bytes(404, b"not found\n", "text/plain")
            return
        try:
            handle = candidate.open("rb")
        except OSError:
            self._send_bytes(404, b"not found\n", "text/plain")
            return
        with handle:
            self._send_file(candidate, handle)

    def _send_file(self, path: Path, handle) -> None:
        stat = os.fstat(handle.fileno())
        size = stat.st_size
        etag = f'"{size:x}-{stat.st_mtime_ns:x}"'
        last_modified = email.utils.formatdate(stat.st_mtime, usegmt=True)
        headers = {"ETag": etag, "Last-Modified": last_modified, "Accept-Ranges": "bytes"}
        content_type = _CONTENT_TYPES.get(path.suffix, "application/octet-stream")
        if etag in [tag.strip() for tag in self.headers.get("If-None-Match", "").split(",")]:
            self._send_bytes(304, b"", content_type, headers, send_length=False)
            return
        byte_range = None
        range_header = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if range_header and (if_range is None or if_range.strip() in (etag, last_modified)):
            try:
                byte_range = parse_range(range_header, size)
            except Unsatisfiable:
                headers["Content-Range"] = f"bytes */{size}"
                self._send_bytes(416, b"", content_type, headers)
                return
        status, start, length = 200, 0, size
        if byte_range is not None:
            start, end = byte_range
            status, length = 206, end - start + 1
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self._start_response(status, content_type, length, headers)
        if self.command == "HEAD":
            return
        handle.seek(start)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(_CHUNK, remaining))
            if not chunk:
                self.close_connection = True  # file shrank underneath us; the length is now a lie
                return
            self.wfile.write(chunk)
            remaining -= len(chunk)

    # ---- response helpers

    def _start_response(self, status: int, content_type: str, length: int, headers: dict) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _send_bytes(
        self, status: int, body: bytes, content_type: str, headers: dict | None = None, send_length=True
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if send_length:
            self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _send_json(self, status: int, value: object, headers: dict | None = None) -> None:
        body = (json.dumps(value, indent=2) + "\n").encode()
        self._send_bytes(status, body, "application/json; charset=utf-8", headers)

    # ---- logging: exactly one line per request

    def log_error(self, fmt: str, *args: object) -> None:
        pass  # send_error also logs the request line through log_request

    def log_message(self, fmt: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} [{self.log_date_time_string()}] {fmt % args}\n")


def _int_param(query: dict, name: str, default: int, low: int, high: int) -> int:
    # GitHub ignores values it cannot use rather than failing the request.
    try:
        value = int(query.get(name, [""])[0])
    except ValueError:
        return default
    return min(max(value, low), high)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def _write_port_file(path: str, port: int) -> None:
    # Written then renamed, so a test polling for the file never reads it half-written.
    partial = f"{path}.partial"
    with open(partial, "w") as handle:
        handle.write(f"{port}\n")
    os.replace(partial, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve stand-in Mattermost releases over HTTP.")
    parser.add_argument("--root", required=True, type=Path, help="directory holding <X.Y.Z>/ folders")
    parser.add_argument("--bind", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default 0: any free port)")
    parser.add_argument("--port-file", help="write the port chosen to this file")
    parser.add_argument("--base-url", help="base of redirect Locations (default: from the Host header)")
    args = parser.parse_args(argv)

    root = args.root.resolve()
    if not root.is_dir():
        print(f"error: --root {args.root} is not a directory", file=sys.stderr)
        return 2
    bind = args.bind if args.bind is not None else "127.0.0.1"
    if not _is_loopback(bind):
        # Only an explicit --bind gets here: a mirror other containers of a test bed must reach.
        print(f"warning: listening on non-loopback address {bind}", file=sys.stderr)
    try:
        server = MirrorServer((bind, args.port), root, args.base_url)
    except OSError as exc:
        print(f"error: cannot listen on {bind}:{args.port}: {exc}", file=sys.stderr)
        return 1

    def stop(signum: int, frame: object) -> None:
        # shutdown() waits for serve_forever() to return, so it cannot run on serve_forever's thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.port_file:
        _write_port_file(args.port_file, server.server_port)
    print(f"serving {root} on {server.url()}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    print("stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
