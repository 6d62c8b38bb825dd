"""The stand-in release mirror serves files, GitHub-style release listings and the "latest" redirect."""

from __future__ import annotations

import ast
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

MIRROR = Path(__file__).resolve().parent / "standin" / "mirror.py"
# The mirror runs in containers on Python 3.9 to 3.13; point this at one of those to test it there.
PYTHON = os.environ.get("STANDIN_MIRROR_PYTHON", sys.executable)

# Version directories as the builder leaves them.
# 11.11.0 has only a Team tarball, 11.12.0-rc1 is a prerelease.
TREE = {
    "9.11.5": ["mattermost-9.11.5-linux-amd64.tar.gz"],
    "11.9.1": ["mattermost-11.9.1-linux-amd64.tar.gz", "mattermost-team-11.9.1-linux-amd64.tar.gz"],
    "11.10.0": ["mattermost-11.10.0-linux-amd64.tar.gz", "mattermost-11.10.0-linux-amd64.tar.gz.sig"],
    "11.11.0": ["mattermost-team-11.11.0-linux-amd64.tar.gz"],
    "11.12.0-rc1": ["mattermost-11.12.0-rc1-linux-amd64.tar.gz"],
}
NEWEST_FIRST = ["v11.12.0-rc1", "v11.11.0", "v11.10.0", "v11.9.1", "v9.11.5"]
TARBALL = "/11.10.0/mattermost-11.10.0-linux-amd64.tar.gz"


@dataclass
class Mirror:
    root: Path
    port: int
    process: subprocess.Popen[bytes]

    def request(
        self, path: str, method: str = "GET", headers: dict[str, str] | None = None
    ) -> tuple[http.client.HTTPResponse, bytes]:
        # http.client sends the path exactly as given, so traversal attempts reach the server unchanged.
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, headers=headers or {})
            response = conn.getresponse()
            return response, response.read()
        finally:
            conn.close()

    def get_json(self, path: str) -> tuple[http.client.HTTPResponse, object]:
        response, body = self.request(path)
        return response, json.loads(body)

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        _, stderr = self.process.communicate(timeout=10)
        return self.process.returncode, stderr.decode()


def start_mirror(root: Path, port_file: Path, *extra: str, python: str = PYTHON) -> Mirror:
    process = subprocess.Popen(
        [
            python,
            str(MIRROR),
            "--root",
            str(root),
            "--port",
            "0",
            "--port-file",
            str(port_file),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 15
    while not port_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            _, stderr = process.communicate()
            pytest.fail(f"mirror did not start: {stderr.decode()}")
        time.sleep(0.05)
    port = int(port_file.read_text())
    assert process.stdout is not None
    assert (
        process.stdout.readline().decode().strip() == f"serving {root.resolve()} on http://127.0.0.1:{port}"
    )
    return Mirror(root, port, process)


@pytest.fixture(scope="module")
def releases_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("mirror")
    root = base / "releases"
    for index, (version, names) in enumerate(TREE.items()):
        (root / version).mkdir(parents=True)
        for name in names:
            (root / version / name).write_bytes(os.urandom(5000 + index) + name.encode())
    (root / "not-a-version").mkdir()
    (root / "11.10.0" / ".mattermost-11.10.0-linux-amd64.tar.gz.partial").write_bytes(b"half a build")
    (base / "secret.txt").write_text("outside the root")
    (root / "11.10.0" / "escape.txt").symlink_to(base / "secret.txt")
    # published_at comes from the directory mtime: make it known.
    os.utime(root / "11.10.0", (1_760_000_000, 1_760_000_000))
    return root


@pytest.fixture(scope="module")
def mirror(releases_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    port_file = tmp_path_factory.mktemp("mirror-port") / "port"
    running = start_mirror(releases_root, port_file)
    yield running
    returncode, stderr = running.stop()
    assert returncode == 0, stderr


# ---- files


def test_whole_file(mirror: Mirror, releases_root: Path) -> None:
    on_disk = (releases_root / TARBALL.lstrip("/")).read_bytes()
    response, body = mirror.request(TARBALL)
    assert response.status == 200
    assert body == on_disk
    assert response.getheader("Content-Length") == str(len(on_disk))
    assert response.getheader("Accept-Ranges") == "bytes"
    assert response.getheader("Content-Type") == "application/gzip"
    assert response.getheader("ETag")
    assert response.getheader("Last-Modified")


def test_signature_file(mirror: Mirror, releases_root: Path) -> None:
    response, body = mirror.request(TARBALL + ".sig")
    assert response.status == 200
    assert body == (releases_root / (TARBALL + ".sig").lstrip("/")).read_bytes()


def test_head(mirror: Mirror, releases_root: Path) -> None:
    size = (releases_root / TARBALL.lstrip("/")).stat().st_size
    response, body = mirror.request(TARBALL, method="HEAD")
    assert response.status == 200
    assert body == b""
    assert response.getheader("Content-Length") == str(size)


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=100-", 100, None),
        ("bytes=-50", -50, None),
        ("bytes=4990-999999", 4990, None),
        ("bytes=0-0", 0, 0),
    ],
)
def test_range(mirror: Mirror, releases_root: Path, header: str, first: int, last: int | None) -> None:
    on_disk = (releases_root / TARBALL.lstrip("/")).read_bytes()
    size = len(on_disk)
    expected = on_disk[first:] if last is None else on_disk[first : last + 1]
    start = first % size
    response, body = mirror.request(TARBALL, headers={"Range": header})
    assert response.status == 206
    assert body == expected
    assert response.getheader("Content-Length") == str(len(expected))
    assert response.getheader("Content-Range") == f"bytes {start}-{start + len(expected) - 1}/{size}"


def test_range_head(mirror: Mirror, releases_root: Path) -> None:
    size = (releases_root / TARBALL.lstrip("/")).stat().st_size
    response, body = mirror.request(TARBALL, method="HEAD", headers={"Range": "bytes=10-19"})
    assert response.status == 206
    assert body == b""
    assert response.getheader("Content-Range") == f"bytes 10-19/{size}"


@pytest.mark.parametrize("header", ["bytes=999999-", "bytes=-0", "bytes={size}-"])
def test_range_unsatisfiable(mirror: Mirror, releases_root: Path, header: str) -> None:
    size = (releases_root / TARBALL.lstrip("/")).stat().st_size
    response, _ = mirror.request(TARBALL, headers={"Range": header.format(size=size)})
    assert response.status == 416
    assert response.getheader("Content-Range") == f"bytes */{size}"


@pytest.mark.parametrize("header", ["bytes=0-1,5-9", "bytes=9-2", "items=0-9", "bytes=-", "bytes=a-b"])
def test_unusable_range_serves_whole_file(mirror: Mirror, releases_root: Path, header: str) -> None:
    on_disk = (releases_root / TARBALL.lstrip("/")).read_bytes()
    response, body = mirror.request(TARBALL, headers={"Range": header})
    assert response.status == 200
    assert body == on_disk


def test_if_range_mismatch_serves_whole_file(mirror: Mirror, releases_root: Path) -> None:
    on_disk = (releases_root / TARBALL.lstrip("/")).read_bytes()
    etag = mirror.request(TARBALL, method="HEAD")[0].getheader("ETag")
    response, body = mirror.request(TARBALL, headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert (response.status, body) == (200, on_disk)
    response, body = mirror.request(TARBALL, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert (response.status, body) == (206, on_disk[:10])


def test_if_none_match(mirror: Mirror) -> None:
    etag = mirror.request(TARBALL, method="HEAD")[0].getheader("ETag")
    response, body = mirror.request(TARBALL, headers={"If-None-Match": etag})
    assert (response.status, body) == (304, b"")


def test_keep_alive_connection_serves_several_requests(mirror: Mirror) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", mirror.port, timeout=10)
    try:
        for _ in range(3):
            conn.request("GET", TARBALL, headers={"Range": "bytes=0-3"})
            response = conn.getresponse()
            assert response.status == 206
            assert len(response.read()) == 4
    finally:
        conn.close()


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/11.10.0/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/11.10.0/..%2f..%2fsecret.txt",
        "/11.10.0/%2E%2E/%2E%2E/secret.txt",
        "/11.10.0/escape.txt",
        "/..%5csecret.txt",
        "/%252e%252e/secret.txt",
        "/11.10.0/%00",
    ],
)
def test_no_path_traversal(mirror: Mirror, path: str) -> None:
    response, body = mirror.request(path)
    assert response.status in (400, 404)
    assert b"outside the root" not in body


@pytest.mark.parametrize(
    "path", ["/", "/11.10.0", "/11.10.0/", "/11.10.0/.mattermost-11.10.0-linux-amd64.tar.gz.partial", "/nope"]
)
def test_no_listings_or_hidden_files(mirror: Mirror, path: str) -> None:
    response, body = mirror.request(path)
    assert response.status == 404
    assert b"mattermost-11.10.0" not in body


def test_only_get_and_head(mirror: Mirror) -> None:
    response, _ = mirror.request(TARBALL, method="POST")
    assert response.status == 501


# ---- GitHub-style release API


def test_releases_list_shape_and_order(mirror: Mirror) -> None:
    response, releases = mirror.get_json("/api/releases")
    assert response.status == 200
    assert response.getheader("Content-Type").startswith("application/json")
    assert isinstance(releases, list)
    assert [release["tag_name"] for release in releases] == NEWEST_FIRST
    for release in releases:
        assert {"url", "html_url", "id", "tag_name", "name", "draft", "prerelease", "created_at"} <= set(
            release
        )
        assert release["name"] == release["tag_name"]
        assert release["draft"] is False
        assert release["body"] == ""
        assert release["assets"] == []
        assert isinstance(release["id"], int)
        assert release["url"] == f"http://127.0.0.1:{mirror.port}/api/releases/{release['id']}"
        time.strptime(release["published_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert [r["tag_name"] for r in releases if r["prerelease"]] == ["v11.12.0-rc1"]
    assert len({r["id"] for r in releases}) == len(releases)


def test_published_at_comes_from_directory_mtime(mirror: Mirror) -> None:
    _, releases = mirror.get_json("/api/releases")
    by_tag = {release["tag_name"]: release for release in releases}
    assert by_tag["v11.10.0"]["published_at"] == "2025-10-09T08:53:20Z"


def test_releases_pagination(mirror: Mirror) -> None:
    response, first = mirror.get_json("/api/releases?per_page=2")
    assert [r["tag_name"] for r in first] == NEWEST_FIRST[:2]
    assert 'rel="next"' in response.getheader("Link")
    response, second = mirror.get_json("/api/releases?per_page=2&page=2")
    assert [r["tag_name"] for r in second] == NEWEST_FIRST[2:4]
    assert 'rel="prev"' in response.getheader("Link")
    response, third = mirror.get_json("/api/releases?per_page=2&page=3")
    assert [r["tag_name"] for r in third] == NEWEST_FIRST[4:]
    assert 'rel="next"' not in response.getheader("Link")
    _, beyond = mirror.get_json("/api/releases?per_page=2&page=9")
    assert beyond == []
    _, everything = mirror.get_json("/api/releases?per_page=bogus")
    assert len(everything) == len(NEWEST_FIRST)


def test_latest_is_highest_stable_semver(mirror: Mirror) -> None:
    response, latest = mirror.get_json("/api/releases/latest")
    assert response.status == 200
    assert latest["tag_name"] == "v11.11.0"
    assert latest["prerelease"] is False


def test_release_by_tag_and_id(mirror: Mirror) -> None:
    _, by_tag = mirror.get_json("/api/releases/tags/v11.9.1")
    assert by_tag["tag_name"] == "v11.9.1"
    _, by_id = mirror.get_json(f"/api/releases/{by_tag['id']}")
    assert by_id == by_tag
    response, missing = mirror.get_json("/api/releases/tags/v1.0.0")
    assert response.status == 404
    assert missing["message"] == "Not Found"


def test_enterprise_redirect_uses_host_header(mirror: Mirror) -> None:
    response, _ = mirror.request("/mattermost-enterprise-linux")
    assert response.status == 302
    # 11.11.0 has no Enterprise tarball and 11.12.0-rc1 is a prerelease.
    expected = f"http://127.0.0.1:{mirror.port}/11.10.0/mattermost-11.10.0-linux-amd64.tar.gz"
    assert response.getheader("Location") == expected


def test_enterprise_redirect_uses_base_url(releases_root: Path, tmp_path: Path) -> None:
    running = start_mirror(releases_root, tmp_path / "port", "--base-url", "http://releases.test:8080/")
    try:
        response, _ = running.request("/mattermost-enterprise-linux")
        _, releases = running.get_json("/api/releases")
    finally:
        returncode, _ = running.stop()
    assert response.status == 302
    assert (
        response.getheader("Location")
        == "http://releases.test:8080/11.10.0/mattermost-11.10.0-linux-amd64.tar.gz"
    )
    assert releases[0]["url"].startswith("http://releases.test:8080/api/releases/")
    assert returncode == 0


def test_enterprise_redirect_without_any_enterprise_tarball(tmp_path: Path) -> None:
    root = tmp_path / "releases"
    (root / "11.10.0").mkdir(parents=True)
    (root / "11.10.0" / "mattermost-team-11.10.0-linux-amd64.tar.gz").write_bytes(b"x")
    running = start_mirror(root, tmp_path / "port")
    try:
        response, _ = running.request("/mattermost-enterprise-linux")
        latest, _ = running.request("/api/releases/latest")
    finally:
        running.stop()
    assert response.status == 404
    assert latest.status == 200


def test_new_version_directories_show_up_without_restart(tmp_path: Path) -> None:
    root = tmp_path / "releases"
    root.mkdir()
    running = start_mirror(root, tmp_path / "port")
    try:
        _, before = running.get_json("/api/releases")
        latest_before, _ = running.request("/api/releases/latest")
        (root / "11.10.0").mkdir()
        _, after = running.get_json("/api/releases")
    finally:
        running.stop()
    assert before == []
    assert latest_before.status == 404
    assert [r["tag_name"] for r in after] == ["v11.10.0"]


# ---- process behaviour


def test_sigterm_stops_cleanly_and_logs_one_line_per_request(releases_root: Path, tmp_path: Path) -> None:
    running = start_mirror(releases_root, tmp_path / "port")
    running.request(TARBALL)
    running.request("/nope")
    running.request("/api/releases")
    returncode, stderr = running.stop()
    assert returncode == 0
    request_lines = [line for line in stderr.splitlines() if '"GET ' in line]
    assert len(request_lines) == 3
    assert all(line.startswith("127.0.0.1 ") for line in request_lines)
    assert "Traceback" not in stderr


def test_missing_root_is_an_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [PYTHON, str(MIRROR), "--root", str(tmp_path / "absent")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert "not a directory" in proc.stderr


def find_python(version: str) -> str | None:
    """An interpreter of that version: on PATH, or installed by pyenv (whose shims need it active)."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [shutil.which(f"python{version}")]
    candidates += [str(p) for p in sorted(pyenv_root.glob(f"versions/{version}.*/bin/python{version}"))]
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "-V"], capture_output=True, check=False).returncode == 0:
            return candidate
    return None


@pytest.mark.parametrize("version", ["3.9", "3.13"])
def test_mirror_runs_on_oldest_and_newest_python(version: str, releases_root: Path, tmp_path: Path) -> None:
    python = find_python(version)
    if python is None:
        pytest.skip(f"python{version} is not installed")
    running = start_mirror(releases_root, tmp_path / "port", python=python)
    try:
        ranged, body = running.request(TARBALL, headers={"Range": "bytes=-10"})
        _, releases = running.get_json("/api/releases")
        redirect, _ = running.request("/mattermost-enterprise-linux")
    finally:
        returncode, stderr = running.stop()
    assert (ranged.status, len(body)) == (206, 10)
    assert [r["tag_name"] for r in releases] == NEWEST_FIRST
    assert redirect.status == 302
    assert returncode == 0, stderr


def test_mirror_source_parses_as_python_3_9() -> None:
    # The mirror runs in test containers with older Pythons; reject newer syntax here.
    ast.parse(MIRROR.read_text(), feature_version=(3, 9))
