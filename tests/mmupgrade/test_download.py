"""Streamed download: whole, resumed with Range, retried after a dropped connection, constant memory."""

from __future__ import annotations

import http.server
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from mmupgrade import download as download_module
from mmupgrade.download import DownloadError, download, remote_size
from mmupgrade.net import open_url

from .conftest import Mirror, ReleaseFactory, start_mirror, stop_mirror

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


def _no_sleep(_seconds: float) -> None:
    return None


def test_whole_file_from_the_mirror(mirror: Mirror, releases: ReleaseFactory, tmp_path: Path) -> None:
    release = releases.get("11.10.0")
    dest = tmp_path / release.name
    size = download(f"{mirror.url}/{release.url_path}", dest)
    assert size == release.tarball.stat().st_size
    assert dest.read_bytes() == release.tarball.read_bytes()
    assert not dest.with_name(dest.name + ".part").exists()
    assert remote_size(f"{mirror.url}/{release.url_path}") == size


def test_resume_after_a_truncated_partial_file(
    mirror: Mirror, releases: ReleaseFactory, tmp_path: Path
) -> None:
    release = releases.get("11.10.0")
    dest = tmp_path / release.name
    whole = release.tarball.read_bytes()
    dest.with_name(dest.name + ".part").write_bytes(whole[:30000])
    seen: list[dict[str, str]] = []

    def opener(url: str, **kwargs: Any) -> Any:
        seen.append(kwargs.get("headers") or {})
        return open_url(url, **kwargs)

    download(f"{mirror.url}/{release.url_path}", dest, opener=opener)
    assert seen == [{"Range": "bytes=30000-"}]
    assert dest.read_bytes() == whole


def test_partial_file_that_is_already_complete(
    mirror: Mirror, releases: ReleaseFactory, tmp_path: Path
) -> None:
    release = releases.get("11.10.0")
    dest = tmp_path / release.name
    dest.with_name(dest.name + ".part").write_bytes(release.tarball.read_bytes())
    download(f"{mirror.url}/{release.url_path}", dest)  # the server answers 416: nothing is missing
    assert dest.read_bytes() == release.tarball.read_bytes()


def test_missing_file_is_not_retried(mirror: Mirror, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"does not exist \(HTTP 404\)"):
        download(f"{mirror.url}/11.10.0/nope.tar.gz", tmp_path / "nope.tar.gz", sleep=_no_sleep)
    with pytest.raises(DownloadError, match="does not exist"):
        remote_size(f"{mirror.url}/11.10.0/nope.tar.gz")


class FlakyHandler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD; the first `drops` responses announce the whole length but stop halfway."""

    protocol_version = "HTTP/1.1"
    drops = 1
    requests: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        range_header = self.headers.get("Range")
        type(self).requests.append(range_header)
        start = 0
        if range_header:
            match = re.fullmatch(r"bytes=(\d+)-", range_header)
            assert match
            start = int(match.group(1))
        body = PAYLOAD[start:]
        if start:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if type(self).drops > 0:
            type(self).drops -= 1
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:
        return None


@pytest.fixture
def flaky_server() -> Iterator[tuple[str, type[FlakyHandler]]]:
    handler = type("Handler", (FlakyHandler,), {"drops": 1, "requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/release.tar.gz", handler
    finally:
        server.shutdown()
        server.server_close()


def test_retry_resumes_after_the_connection_drops(
    flaky_server: tuple[str, type[FlakyHandler]], tmp_path: Path
) -> None:
    url, handler = flaky_server
    dest = tmp_path / "release.tar.gz"
    download(url, dest, sleep=_no_sleep)
    assert dest.read_bytes() == PAYLOAD
    assert handler.requests == [None, f"bytes={len(PAYLOAD) // 2}-"]


def test_truncated_download_is_detected(flaky_server: tuple[str, type[FlakyHandler]], tmp_path: Path) -> None:
    """A server that always stops early: the download fails and no complete-looking file appears."""
    url, handler = flaky_server
    handler.drops = 1000
    dest = tmp_path / "release.tar.gz"
    with pytest.raises(DownloadError, match="closed the connection after"):
        download(url, dest, sleep=_no_sleep, retries=2)
    assert not dest.exists()


def test_reads_in_fixed_chunks(
    mirror: Mirror, releases: ReleaseFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Constant memory: the body is only ever read chunk_size bytes at a time, never all at once."""
    release = releases.get("11.10.0")
    reads: list[int | None] = []

    class Recording:
        def __init__(self, response: Any) -> None:
            self._response = response
            self.status = response.status
            self.headers = response.headers

        def read(self, amount: int | None = None) -> bytes:
            reads.append(amount)
            return self._response.read(amount)

        def getcode(self) -> int:
            return self.status

        def __enter__(self) -> Recording:
            return self

        def __exit__(self, *exc: object) -> None:
            self._response.close()

    def opener(url: str, **kwargs: Any) -> Any:
        return Recording(open_url(url, **kwargs))

    monkeypatch.setattr(download_module, "CHUNK_SIZE", 4096)
    download(f"{mirror.url}/{release.url_path}", tmp_path / release.name, opener=opener, chunk_size=4096)
    size = release.tarball.stat().st_size
    assert reads and all(amount == 4096 for amount in reads)
    assert len(reads) == -(-size // 4096) + 1  # every chunk, then the empty read at the end


@pytest.fixture
def scratch_mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A mirror over a throwaway root, so a test can change a file on the server."""
    root = tmp_path / "served" / "releases"
    (root / "1.0.0").mkdir(parents=True)
    served = root / "1.0.0" / "release.tar.gz"
    served.write_bytes(PAYLOAD)
    running = start_mirror(root, tmp_path / "port")
    try:
        yield f"{running.url}/1.0.0/release.tar.gz", served
    finally:
        stop_mirror(running)


def _replace_on_server(served: Path, data: bytes) -> None:
    served.write_bytes(data)
    stamp = served.stat().st_mtime + 10  # a new Last-Modified and ETag even within the same second
    os.utime(served, (stamp, stamp))


def test_a_complete_download_is_reused_only_while_unchanged(
    scratch_mirror: tuple[str, Path], tmp_path: Path
) -> None:
    url, served = scratch_mirror
    dest = tmp_path / "release.tar.gz"
    download(url, dest)
    requests: list[dict[str, str]] = []

    def opener(url: str, **kwargs: Any) -> Any:
        requests.append(kwargs.get("headers") or {})
        return open_url(url, **kwargs)

    download(url, dest, opener=opener)
    assert len(requests) == 1 and "If-None-Match" in requests[0]  # answered 304: nothing downloaded
    assert dest.read_bytes() == PAYLOAD

    _replace_on_server(served, PAYLOAD[::-1])
    download(url, dest, opener=opener)
    assert dest.read_bytes() == PAYLOAD[::-1]


def test_a_partial_download_of_an_older_file_is_not_resumed(
    scratch_mirror: tuple[str, Path], tmp_path: Path
) -> None:
    url, served = scratch_mirror
    dest = tmp_path / "release.tar.gz"
    download(url, dest)
    validator = dest.with_name(dest.name + ".validator")
    # As a killed run leaves it: half the file as .part, and the validator of that file.
    dest.with_name(dest.name + ".part").write_bytes(PAYLOAD[: len(PAYLOAD) // 2])
    dest.unlink()
    assert validator.exists()
    _replace_on_server(served, b"X" * len(PAYLOAD))
    download(url, dest)  # If-Range does not match: the server sends the whole new file
    assert dest.read_bytes() == b"X" * len(PAYLOAD)
