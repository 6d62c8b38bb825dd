"""Fixtures for mmupgrade's unit tests: stand-in releases, the release mirror, fake installations.

A fake installation is a real one in miniature: a stand-in release unpacked in a temporary directory
in either layout, a systemd unit file (read from a temporary unit directory, as on a host without
systemd), a config pointing at a real test database, and a ServiceController that runs the server as
a child process the way systemd would (working directory, environment from the unit).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mmupgrade.context import Options, Runtime
from mmupgrade.output import Reporter
from mmupgrade.unit import read_unit_files, unit_environment
from tests.pgserver import free_port
from tests.standin.build import Release, build_release

MIRROR = Path(__file__).resolve().parents[1] / "standin" / "mirror.py"


# --- releases and the mirror ----------------------------------------------------------------------


class ReleaseFactory:
    """Builds stand-in releases on demand, once each, below a session directory (one key per root)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._built: dict[tuple, Release] = {}

    def root(self, name: str = "good") -> Path:
        return self.base / name

    def get(self, version: str, root: str = "good", **options: object) -> Release:
        key = (version, root, tuple(sorted(options.items())))
        if key not in self._built:
            self._built[key] = build_release(version, self.root(root), **options)  # type: ignore[arg-type]
        return self._built[key]


@pytest.fixture(scope="session")
def releases(tmp_path_factory: pytest.TempPathFactory) -> ReleaseFactory:
    factory = ReleaseFactory(tmp_path_factory.mktemp("standin"))
    factory.get("11.9.1")
    factory.get("11.10.0")
    return factory


@dataclass
class Mirror:
    url: str
    process: subprocess.Popen[bytes]


def start_mirror(root: Path, port_file: Path) -> Mirror:
    process = subprocess.Popen(
        [
            sys.executable,
            str(MIRROR),
            "--root",
            str(root),
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--port-file",
            str(port_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while not port_file.exists() or not port_file.read_text().strip():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("the release mirror did not start")
        time.sleep(0.05)
    return Mirror(f"http://127.0.0.1:{int(port_file.read_text())}", process)


def stop_mirror(mirror: Mirror) -> None:
    mirror.process.send_signal(signal.SIGTERM)
    try:
        mirror.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        mirror.process.kill()


@pytest.fixture(scope="session")
def mirror(releases: ReleaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    """The mirror serving the "good" releases (11.9.1, 11.10.0) at /<V>/<tarball> and /api/releases."""
    running = start_mirror(releases.root("good") / "releases", tmp_path_factory.mktemp("mirror") / "port")
    yield running
    stop_mirror(running)


# --- fake installations ---------------------------------------------------------------------------


@dataclass
class Host:
    """A fake host below `base`: unit directory, install tree, state, backups, mmupgrade state."""

    base: Path
    layout: str
    root: Path
    port: int
    unit_dir: Path
    config_file: Path
    data_dir: Path
    env_file: Path | None = None
    notes: dict = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        return self.base / "var" / "lib" / "mmupgrade"

    @property
    def backup_dir(self) -> Path:
        return self.base / "var" / "backups" / "mattermost"

    @property
    def ping_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v4/system/ping"

    def options(self, **overrides: object) -> Options:
        values: dict[str, object] = {
            "install_dir": None,
            "state_dir": self.state_dir,
            "backup_dir": self.backup_dir,
            "yes": True,
            "health_timeout": 30.0,
        }
        values.update(overrides)
        return Options(**values)  # type: ignore[arg-type]

    def cli_args(self) -> list[str]:
        return ["--state-dir", str(self.state_dir), "--backup-dir", str(self.backup_dir), "--yes"]


def _unpack(tarball: Path, dest: Path) -> Path:
    """Unpack as the install guide does (tar -xzf), independently of mmupgrade's own extraction."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-xzf", str(tarball), "-C", str(dest), "--no-same-owner"], check=True)
    return dest / "mattermost"


def make_host(
    base: Path,
    release: Release,
    layout: str,
    dsn: str,
    *,
    config_in_env: bool = True,
    config_in_database: bool = False,
) -> Host:
    """Lay out an installation of `release` like the tarball guide (official) or the role (versioned).

    Versioned: the data source is in the env file (config_in_env) or in config.json; with
    config_in_database, MM_CONFIG is the database itself and the server keeps its config there.
    """
    port = free_port()
    unit_dir = base / "etc" / "systemd" / "system"
    unit_dir.mkdir(parents=True)
    if layout == "official":
        root = base / "opt" / "mattermost"
        tree = _unpack(release.tarball, base / "opt")
        assert tree == root
        config_file = root / "config" / "config.json"
        config = json.loads(config_file.read_text())
        config["SqlSettings"]["DataSource"] = dsn
        config["ServiceSettings"]["ListenAddress"] = f"127.0.0.1:{port}"
        config_file.write_text(json.dumps(config, indent=4) + "\n")
        for directory in ("data", "plugins", "client/plugins", "certs"):
            (root / directory).mkdir(parents=True, exist_ok=True)
        (root / "data" / "attachment.bin").write_bytes(b"a file users uploaded")
        (root / "certs" / "tls.key").write_text("a custom file the release does not ship")
        unit = (
            "[Unit]\nDescription=Mattermost\n\n[Service]\nType=notify\n"
            f"ExecStart={root}/bin/mattermost\nWorkingDirectory={root}\n"
            "Environment=MM_STANDIN_DB_WAIT_SECONDS=5\n"
        )
        (unit_dir / "mattermost.service").write_text(unit)
        return Host(base, layout, root, port, unit_dir, config_file, root / "data")

    root = base / "opt" / "mattermost"
    name = f"{release.version}-{release.edition}"
    tree = _unpack(release.tarball, root / "releases" / f".{name}")
    tree.rename(root / "releases" / name)
    (root / "releases" / f".{name}").rmdir()
    (root / "current").symlink_to(f"releases/{name}")
    state = base / "var" / "opt" / "mattermost"
    config_file = state / "config" / "config.json"
    config_file.parent.mkdir(parents=True)
    shipped = json.loads((root / "current" / "config" / "config.json").read_text())
    if not config_in_env:
        shipped["SqlSettings"]["DataSource"] = dsn
    config_file.write_text(json.dumps(shipped, indent=4) + "\n")
    for directory in ("data", "plugins", "client/plugins", "logs"):
        (state / directory).mkdir(parents=True, exist_ok=True)
    (state / "data" / "attachment.bin").write_bytes(b"a file users uploaded")
    env_file = base / "etc" / "mattermost" / "mattermost.env"
    env_file.parent.mkdir(parents=True)
    if config_in_database:
        config_file.unlink()
    lines = [
        "# Settings owned by the installer.",
        f'MM_CONFIG="{dsn if config_in_database else config_file}"',
        'MM_SQLSETTINGS_DRIVERNAME="postgres"',
        f'MM_SERVICESETTINGS_LISTENADDRESS="127.0.0.1:{port}"',
        f'MM_FILESETTINGS_DIRECTORY="{state}/data/"',
        f'MM_PLUGINSETTINGS_DIRECTORY="{state}/plugins"',
        f'MM_PLUGINSETTINGS_CLIENTDIRECTORY="{state}/client/plugins"',
        f'MM_LOGSETTINGS_FILELOCATION="{state}/logs"',
        "MM_STANDIN_DB_WAIT_SECONDS=5",
    ]
    if config_in_env:
        lines.append(f'MM_SQLSETTINGS_DATASOURCE="{dsn}"')
    env_file.write_text("\n".join(lines) + "\n")
    unit = (
        "[Unit]\nDescription=Mattermost\n\n[Service]\nType=notify\n"
        f"ExecStart={root}/current/bin/mattermost\nWorkingDirectory={root}/current\n"
        f"EnvironmentFile={env_file}\n"
    )
    (unit_dir / "mattermost.service").write_text(unit)
    return Host(base, layout, root, port, unit_dir, config_file, state / "data", env_file)


class ProcessService:
    """A ServiceController that runs the unit's ExecStart as a child process, like systemd would."""

    def __init__(self, unit_dir: Path, log_file: Path) -> None:
        self.name = "mattermost.service"
        self.unit_dir = unit_dir
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.stops = 0

    def check(self) -> None:
        return None

    def start(self) -> None:
        if self.is_active():
            return
        unit = read_unit_files(self.name, [self.unit_dir])
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", **unit_environment(unit)}
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                unit.exec_start,
                cwd=str(unit.working_directory),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1

    def stop(self) -> None:
        self.stops += 1
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def is_active(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def failure(self) -> str | None:
        if self.process is not None and self.process.poll() is not None:
            return f"{self.name} exited with status {self.process.returncode}"
        return None


class FakeService:
    """A ServiceController that only records calls (for steps that never need a running server)."""

    def __init__(self) -> None:
        self.name = "mattermost.service"
        self.calls: list[str] = []
        self.active = True

    def check(self) -> None:
        return None

    def start(self) -> None:
        self.calls.append("start")
        self.active = True

    def stop(self) -> None:
        self.calls.append("stop")
        self.active = False

    def is_active(self) -> bool:
        return self.active

    def failure(self) -> str | None:
        return None


def runtime_for(host: Host, service: object, reporter: Reporter | None = None) -> Runtime:
    return Runtime(
        reporter=reporter or Reporter(),
        service=service,  # type: ignore[arg-type]
        unit_dirs=[host.unit_dir],
        use_systemctl=False,
    )


def wait_for_ping(url: str, timeout: float = 30.0) -> str:
    """Wait until ping answers 200; returns X-Version-Id."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback test server
                if response.status == 200:
                    return response.headers.get("X-Version-Id", "")
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer within {timeout} s")
        time.sleep(0.3)
