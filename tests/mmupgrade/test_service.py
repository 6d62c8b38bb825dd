"""systemctl as mmupgrade drives it (a stand-in systemctl on PATH), and the health check's rules."""

from __future__ import annotations

import http.server
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from mmupgrade.errors import StepFailed
from mmupgrade.health import ping_url, probe, version_matches, wait_healthy
from mmupgrade.service import ServiceError, SystemdService
from mmupgrade.settings import effective_settings
from mmupgrade.unit import read_unit
from mmupgrade.versions import Version

from .conftest import FakeService


@pytest.fixture
def systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A systemctl that logs its arguments and answers `show` from a file the test writes."""
    log = tmp_path / "systemctl.log"
    show = tmp_path / "show.txt"
    script = tmp_path / "bin" / "systemctl"
    script.parent.mkdir()
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        f'case "$1" in show) cat {show};; is-active) exit 3;; stop) [ -f {tmp_path}/fail-stop ] && '
        "{ echo 'Failed to stop mattermost.service: Access denied' >&2; exit 1; };; esac\n"
        "exit 0\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{script.parent}:{os.environ['PATH']}")
    return tmp_path


def test_systemd_service_commands(systemctl: Path) -> None:
    service = SystemdService("mattermost")
    service.stop()
    service.start()
    assert not service.is_active()
    (systemctl / "show.txt").write_text(
        "ActiveState=activating\nSubState=auto-restart\nResult=exit-code\nExecMainStatus=1\n"
    )
    assert service.failure() == (
        "mattermost.service exited with status 1 (exit-code); see: journalctl -u mattermost.service -n 50"
    )
    (systemctl / "show.txt").write_text("ActiveState=activating\nSubState=start\nResult=success\n")
    assert service.failure() is None
    calls = (systemctl / "systemctl.log").read_text().splitlines()
    assert calls[:4] == [
        "stop mattermost.service",
        "reset-failed mattermost.service",
        "start --no-block mattermost.service",
        "is-active --quiet mattermost.service",
    ]
    (systemctl / "fail-stop").touch()
    with pytest.raises(ServiceError, match="Access denied"):
        service.stop()
    (systemctl / "show.txt").write_text("LoadState=loaded\n")
    service.check()
    (systemctl / "show.txt").write_text("LoadState=not-found\n")
    with pytest.raises(ServiceError, match="pass --unit"):
        service.check()


def test_unit_from_systemctl_show(systemctl: Path) -> None:
    env_file = systemctl / "mattermost.env"
    env_file.write_text('MM_SQLSETTINGS_DATASOURCE="postgres://u:p@h/d"\n')
    (systemctl / "show.txt").write_text(
        "FragmentPath=/etc/systemd/system/mattermost.service\nDropInPaths=\nWorkingDirectory=/opt/mattermost/current\n"
        "ExecStart={ path=/opt/mattermost/current/bin/mattermost ; "
        "argv[]=/opt/mattermost/current/bin/mattermost ; ignore_errors=no }\n"
        "Environment=MM_X=1\n"
        f"EnvironmentFiles={env_file} (ignore_errors=no)\n"
    )
    unit = read_unit("mattermost", use_systemctl=True)
    assert unit.working_directory == Path("/opt/mattermost/current")
    assert unit.environment_files[0].path == env_file
    assert (
        "show -p FragmentPath,DropInPaths,WorkingDirectory,ExecStart,Environment,EnvironmentFiles -- "
        "mattermost.service" in (systemctl / "systemctl.log").read_text()
    )


@pytest.mark.parametrize(
    ("listen", "tls", "url"),
    [
        (":8065", "", "http://127.0.0.1:8065/api/v4/system/ping"),
        ("0.0.0.0:80", "", "http://127.0.0.1:80/api/v4/system/ping"),
        ("[::]:8065", "", "http://[::1]:8065/api/v4/system/ping"),
        ("10.0.0.5:8443", "TLS", "https://10.0.0.5:8443/api/v4/system/ping"),
    ],
)
def test_ping_url_from_the_listen_address(tmp_path: Path, listen: str, tls: str, url: str) -> None:
    env = {"MM_SERVICESETTINGS_LISTENADDRESS": listen, "MM_SERVICESETTINGS_CONNECTIONSECURITY": tls}
    assert ping_url(effective_settings(env, tmp_path, tmp_path)) == url


def test_version_header_rules() -> None:
    target = Version(11, 10, 0)
    assert version_matches("11.10.0.11.10.0.abc123.false", target)
    assert version_matches("11.10.0.8123.abc.true", target)
    assert not version_matches("11.9.1.11.9.1.abc.false", target)
    assert not version_matches("", target)
    assert version_matches("3.8.0.3.8.2.abc.true", Version(3, 8, 2))  # old dot releases


class PingHandler(http.server.BaseHTTPRequestHandler):
    answers: ClassVar[list[tuple[int, str, str]]] = []

    def do_GET(self) -> None:
        status, body_status, version = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        body = json.dumps({"status": body_status}).encode()
        self.send_response(status)
        self.send_header("X-Version-Id", version)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:
        return None


@pytest.fixture
def ping_server() -> Iterator[tuple[str, type[PingHandler]]]:
    handler = type("Handler", (PingHandler,), {"answers": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v4/system/ping", handler
    finally:
        server.shutdown()
        server.server_close()


def test_wait_until_the_new_version_answers(ping_server: tuple[str, type[PingHandler]]) -> None:
    url, handler = ping_server
    handler.answers = [
        (200, "OK", "11.9.1.x.y.false"),
        (500, "UNHEALTHY", "11.10.0.x.y.false"),
        (200, "OK", "11.10.0.x.y.false"),
    ]
    wait_healthy(url, Version(11, 10, 0), timeout=20, poll=0.05)
    assert probe(url, Version(11, 10, 0)).healthy


@pytest.mark.parametrize(
    ("answer", "cause"),
    [
        ((500, "UNHEALTHY", "11.10.0.x.y.false"), "ping answered 500 UNHEALTHY"),
        ((200, "OK", "11.9.1.x.y.false"), "ping answered OK but from version 11.9.1, not 11.10.0"),
    ],
)
def test_timeout_names_the_cause(
    ping_server: tuple[str, type[PingHandler]], answer: tuple[int, str, str], cause: str
) -> None:
    url, handler = ping_server
    handler.answers = [answer]
    with pytest.raises(StepFailed, match=re.escape(f"11.10.0 did not become healthy within 0.3 s: {cause}")):
        wait_healthy(url, Version(11, 10, 0), timeout=0.3, poll=0.05)


def test_a_crashed_service_fails_fast() -> None:
    service = FakeService()
    service.failure = lambda: "mattermost.service exited with status 1"  # type: ignore[method-assign]
    with pytest.raises(StepFailed, match=r"did not start: mattermost\.service exited with status 1"):
        wait_healthy(
            "http://127.0.0.1:9/api/v4/system/ping", Version(11, 10, 0), timeout=600, service=service
        )
