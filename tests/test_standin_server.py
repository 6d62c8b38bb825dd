"""The stand-in `bin/mattermost` as installers and upgraders see it: a process started in an install dir.

Each test lays out an install dir like an unpacked release (bin/mattermost is the zipapp the release
builder makes, with its build.json), points it at a real PostgreSQL database and runs it as a
subprocess, the way systemd does: working directory = install dir, a $NOTIFY_SOCKET for READY=1,
SIGTERM to stop.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import MattermostDatabase
from tests.pgserver import free_port
from tests.standin.build import build_info, mattermost_zipapp
from tests.standin.layout import plugin_tarball
from tests.standin.mmstandin import config as mm_config
from tests.standin.mmstandin import notify, server

STANDIN_DIR = Path(__file__).resolve().parent / "standin"
# The interpreter that runs bin/mattermost; set STANDIN_PYTHON=python3.9 to check the oldest supported one.
STANDIN_PYTHON = os.environ.get("STANDIN_PYTHON", sys.executable)
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
PLUGIN_ID = "com.example.standin-demo"


# Install dir, processes, notifications ------------------------------------------------------------------


@dataclass
class Install:
    root: Path
    build: dict

    @property
    def binary(self) -> Path:
        return self.root / "bin" / "mattermost"

    @property
    def config_file(self) -> Path:
        return self.root / "config" / "config.json"

    @property
    def log_file(self) -> Path:
        return self.root / "logs" / "mattermost.log"

    def write_config(self, document: dict, mode: int = 0o600) -> None:
        self.config_file.write_text(json.dumps(document, indent=2))
        self.config_file.chmod(mode)


def make_install(base: Path, version: str = "11.10.0", **build_options: object) -> Install:
    """An unpacked release: bin/mattermost, config/config.json (0600), logs/, prepackaged_plugins/."""
    build = build_info(version, **build_options)  # type: ignore[arg-type]
    root = base / f"mattermost-{version}"
    (root / "bin").mkdir(parents=True)
    (root / "logs").mkdir()
    (root / "config").mkdir()
    (root / "prepackaged_plugins").mkdir()
    install = Install(root, build)
    install.binary.write_bytes(mattermost_zipapp(build))
    install.binary.chmod(0o755)
    defaults = mm_config.default_config()
    install.write_config(defaults)
    bundle = plugin_tarball(PLUGIN_ID, "Stand-in Demo", "1.2.0", 1767225600)
    (root / "prepackaged_plugins" / f"{PLUGIN_ID}-1.2.0-linux-amd64.tar.gz").write_bytes(bundle)
    return install


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without MM_* settings or a notify socket, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MM_") and k != "NOTIFY_SOCKET"}
    env.update(settings)
    return env


def run_cli(install: Install, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [STANDIN_PYTHON, str(install.binary), *args],
        cwd=install.root,
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class NotifyListener:
    """The systemd side of sd_notify: a unix datagram socket that collects state lines."""

    def __init__(self, abstract: bool = False) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="mmnotify-"))  # short: AF_UNIX paths max out at 107 bytes
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"mmstandin-test-{os.getpid()}-{time.monotonic_ns()}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.sock.bind(str(self._dir / "notify"))
            self.address = str(self._dir / "notify")
        self.received: list[str] = []

    def wait_for(self, state: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while state not in self.received:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                self.received.extend(self.sock.recv(4096).decode().split("\n"))
            except socket.timeout:
                return False
        return True

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)


class ServerProcess:
    """`bin/mattermost` started like systemd does, with output captured to a file."""

    def __init__(self, install: Install, env: dict[str, str], *args: str) -> None:
        self.install = install
        self.output_file = install.root.parent / f"{install.root.name}.out"
        with self.output_file.open("wb") as output:
            self.proc = subprocess.Popen(
                [STANDIN_PYTHON, str(install.binary), *args],
                cwd=install.root,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    @property
    def output(self) -> str:
        return self.output_file.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def notify_listener() -> Iterator[NotifyListener]:
    listener = NotifyListener()
    yield listener
    listener.close()


@pytest.fixture
def processes() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for process in started:
        process.kill()


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def http_get(url: str) -> tuple[int, dict, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback URL built here
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


@dataclass
class Started:
    process: ServerProcess
    port: int
    listener: NotifyListener

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_server(
    install: Install,
    listener: NotifyListener,
    processes: list[ServerProcess],
    data_source: str | None,
    wait_ready: bool = True,
    **extra_env: str,
) -> Started:
    settings = {
        "MM_SERVICESETTINGS_LISTENADDRESS": f"127.0.0.1:{free_port()}",
        "NOTIFY_SOCKET": listener.address,
    }
    settings.update(extra_env)
    port = int(settings["MM_SERVICESETTINGS_LISTENADDRESS"].rpartition(":")[2])
    env = clean_env(**settings)
    if data_source is not None:
        env["MM_SQLSETTINGS_DATASOURCE"] = data_source
    process = ServerProcess(install, env)
    processes.append(process)
    started = Started(process, port, listener)
    if wait_ready:
        ready = listener.wait_for(notify.READY, START_TIMEOUT)
        assert ready, f"no READY=1 within {START_TIMEOUT}s; output:\n{process.output}"
    return started


# `mattermost version` -----------------------------------------------------------------------------------


def test_version_prints_exactly_five_lines(tmp_path: Path) -> None:
    install = make_install(tmp_path, "11.10.0")
    # No configuration and an unusable database: `version` must not care (facts section 4).
    install.config_file.unlink()
    result = run_cli(
        install, "version", env=clean_env(MM_SQLSETTINGS_DATASOURCE="postgres://x:y@127.0.0.1:1/z")
    )
    assert result.returncode == 0, result.stderr
    build = install.build
    assert result.stdout.splitlines() == [
        "Version: 11.10.0",
        "Build Number: 11.10.0",
        f"Build Date: {build['build_date']}",
        f"Build Hash: {build['build_hash']}",
        "Build Enterprise Ready: true",
    ]
    assert not install.config_file.exists()


def test_version_of_team_edition_runs_through_the_shebang(tmp_path: Path) -> None:
    install = make_install(tmp_path, "10.11.23", edition="team")
    result = subprocess.run(
        [str(install.binary), "version"], cwd="/", capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "Version: 10.11.23"
    assert result.stdout.splitlines()[4] == "Build Enterprise Ready: false"


def test_version_from_the_source_tree_is_a_dev_build(tmp_path: Path) -> None:
    env = clean_env(PYTHONPATH=str(STANDIN_DIR), MM_STANDIN_INSTALL_DIR=str(tmp_path))
    result = subprocess.run(
        [STANDIN_PYTHON, "-m", "mmstandin", "version"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Version: 0.0.0-dev",
        "Build Number: dev",
        "Build Date: n/a",
        "Build Hash: dev",
        "Build Enterprise Ready: false",
    ]


# `mattermost db version` / `db migrate` -----------------------------------------------------------------


def test_db_version_and_migrate(tmp_path: Path, mm_database: MattermostDatabase) -> None:
    install = make_install(tmp_path, "11.10.0")
    env = clean_env(MM_SQLSETTINGS_DATASOURCE=mm_database.dsn)

    empty = run_cli(install, "db", "version", env=env)
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout == "Current database schema version is: 0\n"

    migrated = run_cli(install, "db", "migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout == "Database successfully migrated\n"

    current = run_cli(install, "db", "version", env=env)
    assert current.stdout == "Current database schema version is: 1110\n"
    listing = run_cli(install, "db", "version", "--all", env=env)
    assert listing.stdout.splitlines() == [
        "Varsion: 1, Name: create_base_tables",
        "Varsion: 1110, Name: standin_schema_1110",
    ]


def test_db_version_uses_the_config_file_data_source(tmp_path: Path, mm_database: MattermostDatabase) -> None:
    install = make_install(tmp_path)
    settings = mm_config.default_config()
    settings["SqlSettings"]["DataSource"] = mm_database.dsn
    custom = tmp_path / "elsewhere.json"
    custom.write_text(json.dumps(settings))

    via_flag = run_cli(install, "db", "version", "--config", str(custom))
    assert via_flag.returncode == 0, via_flag.stderr
    via_short_flag_first = run_cli(install, "-c", str(custom), "db", "version")
    assert via_short_flag_first.returncode == 0, via_short_flag_first.stderr
    via_env = run_cli(install, "db", "version", env=clean_env(MM_CONFIG=str(custom)))
    assert via_env.returncode == 0, via_env.stderr

    install.write_config(settings)
    via_default = run_cli(install, "db", "version")
    assert via_default.returncode == 0, via_default.stderr
    # The environment wins over the file.
    broken = run_cli(
        install, "db", "version", env=clean_env(MM_SQLSETTINGS_DATASOURCE="postgres://u:p@127.0.0.1:1/x")
    )
    assert broken.returncode == 1


def test_db_version_with_config_in_database(tmp_path: Path, mm_database: MattermostDatabase) -> None:
    install = make_install(tmp_path)
    result = run_cli(install, "db", "version", env=clean_env(MM_CONFIG=mm_database.dsn))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Current database schema version is: 0\n"


def test_db_version_failure_is_clear_and_hides_the_password(tmp_path: Path) -> None:
    install = make_install(tmp_path)
    dsn = f"postgres://mmuser:Sup3rSecretPw@127.0.0.1:{free_port()}/mattermost?connect_timeout=2"
    result = run_cli(install, "db", "version", env=clean_env(MM_SQLSETTINGS_DATASOURCE=dsn))
    assert result.returncode == 1
    assert result.stderr.startswith(
        "Error: failed to connect to the database at postgres://mmuser:****@127.0.0.1"
    )
    assert "Sup3rSecretPw" not in result.stderr + result.stdout


def test_db_migrate_refuses_a_newer_schema(tmp_path: Path, mm_database: MattermostDatabase) -> None:
    newer = make_install(tmp_path, "11.10.0")
    older = make_install(tmp_path, "11.7.9")
    env = clean_env(MM_SQLSETTINGS_DATASOURCE=mm_database.dsn)
    assert run_cli(newer, "db", "migrate", env=env).returncode == 0
    refused = run_cli(older, "db", "migrate", env=env)
    assert refused.returncode == 1
    assert "database schema version 1110 is newer than this server supports (1107)" in refused.stderr


# The server: start, READY=1, ping, stop -----------------------------------------------------------------


def test_server_lifecycle(
    tmp_path: Path,
    mm_database: MattermostDatabase,
    notify_listener: NotifyListener,
    processes: list[ServerProcess],
) -> None:
    install = make_install(tmp_path, "11.10.0")
    # A config from an older release: some settings missing, one unknown key, group-readable.
    partial = mm_config.default_config()
    del partial["PluginSettings"]["AutomaticPrepackagedPlugins"]
    del partial["ExportSettings"]
    partial["TeamSettings"]["SiteName"] = "Our Chat"
    partial["LegacySection"] = {"Kept": True}
    install.write_config(partial, mode=0o640)
    existing_plugin = install.root / "plugins" / "com.example.standin-notes"
    existing_plugin.mkdir(parents=True)
    (existing_plugin / "plugin.json").write_text('{"id": "com.example.standin-notes", "version": "9.0.0"}')
    (install.root / "prepackaged_plugins" / "notes.tar.gz").write_bytes(
        plugin_tarball("com.example.standin-notes", "Stand-in Notes", "0.4.1", 1767225600)
    )

    started = start_server(install, notify_listener, processes, mm_database.dsn)

    status, body, headers = http_get(f"{started.base_url}/api/v4/system/ping")
    assert status == 200
    assert body["status"] == "OK"
    version_id = {k.lower(): v for k, v in headers.items()}["x-version-id"]
    assert re.fullmatch(r"11\.10\.0\.11\.10\.0\.[0-9a-f]{32}\.false", version_id)

    # Runtime directories appear relative to the working directory, as with the real server.
    for directory in ("data", "plugins", "client/plugins"):
        assert (install.root / directory).is_dir()
    assert (install.root / "plugins" / PLUGIN_ID / "plugin.json").is_file()
    assert json.loads((existing_plugin / "plugin.json").read_text())["version"] == "9.0.0"

    written = json.loads(install.config_file.read_text())
    assert written["PluginSettings"]["AutomaticPrepackagedPlugins"] is True
    assert written["ExportSettings"] == mm_config.default_config()["ExportSettings"]
    assert written["TeamSettings"]["SiteName"] == "Our Chat"
    assert written["LegacySection"] == {"Kept": True}
    # The listen address and data source came from the environment and stay out of the file.
    assert written["ServiceSettings"]["ListenAddress"] == ":8065"
    assert written["SqlSettings"]["DataSource"] == mm_config.DEFAULT_DATA_SOURCE
    assert stat.S_IMODE(install.config_file.stat().st_mode) == 0o640

    started_at = time.monotonic()
    assert started.process.terminate() == 0
    assert time.monotonic() - started_at < STOP_TIMEOUT
    assert notify_listener.wait_for(notify.STOPPING, 1)

    output = started.process.output
    log_text = install.log_file.read_text()
    for text in (output, log_text):
        assert mm_database.password not in text
    messages = [line["msg"] for line in json_lines(log_text)]
    assert "Server is initializing..." in messages
    assert f"Server is listening on 127.0.0.1:{started.port}" in messages
    assert "Server stopped" in messages
    pinging = next(line for line in json_lines(log_text) if line["msg"] == "Pinging SQL")
    assert ":****@" in pinging["dataSource"]
    assert {"timestamp", "level", "msg"} <= set(json_lines(output)[0])

    after = run_cli(install, "db", "version", env=clean_env(MM_SQLSETTINGS_DATASOURCE=mm_database.dsn))
    assert after.stdout == "Current database schema version is: 1110\n"


def test_ready_through_an_abstract_socket_and_sigint(
    tmp_path: Path, mm_database: MattermostDatabase, processes: list[ServerProcess]
) -> None:
    listener = NotifyListener(abstract=True)
    try:
        install = make_install(tmp_path)
        started = start_server(install, listener, processes, mm_database.dsn)
        started.process.proc.send_signal(signal.SIGINT)
        assert started.process.wait(STOP_TIMEOUT) == 0
    finally:
        listener.close()


def test_log_settings_from_environment(
    tmp_path: Path,
    mm_database: MattermostDatabase,
    notify_listener: NotifyListener,
    processes: list[ServerProcess],
) -> None:
    install = make_install(tmp_path)
    log_dir = tmp_path / "var-log"
    data_dir = tmp_path / "var-data"
    started = start_server(
        install,
        notify_listener,
        processes,
        mm_database.dsn,
        MM_LOGSETTINGS_FILELOCATION=str(log_dir),
        MM_LOGSETTINGS_ENABLECONSOLE="false",
        MM_FILESETTINGS_DIRECTORY=str(data_dir),
        MM_PLUGINSETTINGS_DIRECTORY=str(tmp_path / "var-plugins"),
        MM_PLUGINSETTINGS_CLIENTDIRECTORY=str(tmp_path / "var-client-plugins"),
    )
    assert started.process.terminate() == 0
    assert json_lines((log_dir / "mattermost.log").read_text())
    assert json_lines(started.process.output) == []
    assert data_dir.is_dir()
    assert (tmp_path / "var-plugins" / PLUGIN_ID).is_dir()
    assert (tmp_path / "var-client-plugins").is_dir()
    assert not (install.root / "data").exists()
    assert not install.log_file.exists()


def test_config_stored_in_database(
    tmp_path: Path,
    mm_database: MattermostDatabase,
    notify_listener: NotifyListener,
    processes: list[ServerProcess],
) -> None:
    install = make_install(tmp_path)
    install.config_file.unlink()
    started = start_server(install, notify_listener, processes, None, MM_CONFIG=mm_database.dsn)
    assert started.process.terminate() == 0
    assert not install.config_file.exists()
    version = run_cli(install, "db", "version", env=clean_env(MM_CONFIG=mm_database.dsn))
    assert version.stdout == "Current database schema version is: 1110\n"
    assert mm_database.password not in started.process.output


# Refusing to start --------------------------------------------------------------------------------------


def test_newer_schema_refuses_to_start(
    tmp_path: Path,
    mm_database: MattermostDatabase,
    notify_listener: NotifyListener,
    processes: list[ServerProcess],
) -> None:
    newer = make_install(tmp_path, "11.10.0")
    older = make_install(tmp_path, "11.7.9")
    env = clean_env(MM_SQLSETTINGS_DATASOURCE=mm_database.dsn)
    assert run_cli(newer, "db", "migrate", env=env).returncode == 0
    started = start_server(older, notify_listener, processes, mm_database.dsn, wait_ready=False)
    assert started.process.wait(START_TIMEOUT) == 1
    assert "database schema version 1110 is newer than this server supports (1107)" in started.process.output
    assert notify.READY not in notify_listener.received


def test_archived_channels_setting_refused_by_v11(
    tmp_path: Path,
    mm_database: MattermostDatabase,
    notify_listener: NotifyListener,
    processes: list[ServerProcess],
) -> None:
    install = make_install(tmp_path, "11.0.1")
    settings = mm_config.default_config()
    settings["TeamSettings"]["ExperimentalViewArchivedChannels"] = False
    install.write_config(settings)
    started = start_server(install, notify_listener, processes, mm_database.dsn, wait_ready=False)
    assert started.process.wait(START_TIMEOUT) == 1
    assert "ExperimentalViewArchivedChannels" in started.process.output


def test_broken_config_file_is_reported(
    tmp_path: Path, notify_listener: NotifyListener, processes: list[ServerProcess]
) -> None:
    install = make_install(tmp_path)
    install.config_file.write_text('{"SqlSettings": ')
    started = start_server(install, notify_listener, processes, None, wait_ready=False)
    assert started.process.wait(START_TIMEOUT) == 1
    assert "Error: failed to load configuration: config file" in started.process.output
    assert "not valid JSON" in started.process.output


def test_unreachable_database_gives_up(
    tmp_path: Path, notify_listener: NotifyListener, processes: list[ServerProcess]
) -> None:
    install = make_install(tmp_path)
    dsn = f"postgres://mmuser:Sup3rSecretPw@127.0.0.1:{free_port()}/mattermost?connect_timeout=2"
    started = start_server(
        install, notify_listener, processes, dsn, wait_ready=False, MM_STANDIN_DB_WAIT_SECONDS="2"
    )
    assert started.process.wait(START_TIMEOUT) == 1
    output = started.process.output
    assert "failed to connect to the database" in output
    assert "Sup3rSecretPw" not in output + install.log_file.read_text()


def test_port_in_use_is_an_error(
    tmp_path: Path,
    mm_database: MattermostDatabase,
    notify_listener: NotifyListener,
    processes: list[ServerProcess],
) -> None:
    install = make_install(tmp_path)
    with socket.socket() as occupied:
        occupied.bind(("127.0.0.1", 0))
        occupied.listen()
        port = occupied.getsockname()[1]
        started = start_server(
            install,
            notify_listener,
            processes,
            mm_database.dsn,
            wait_ready=False,
            MM_SERVICESETTINGS_LISTENADDRESS=f"127.0.0.1:{port}",
        )
        assert started.process.wait(START_TIMEOUT) == 1
    assert "bind" in started.process.output


# Failure modes baked into build.json --------------------------------------------------------------------


def test_failure_exit_on_start(
    tmp_path: Path,
    mm_database: MattermostDatabase,
    notify_listener: NotifyListener,
    processes: list[ServerProcess],
) -> None:
    install = make_install(tmp_path, failure="exit-on-start")
    started = start_server(install, notify_listener, processes, mm_database.dsn, wait_ready=False)
    assert started.process.wait(START_TIMEOUT) == 1
    errors = [line for line in json_lines(install.log_file.read_text()) if line["level"] == "error"]
    assert errors
    assert "exit-on-start" in errors[-1]["msg"]
    assert notify.READY not in notify_listener.received
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", started.port)) != 0


def test_failure_unhealthy(
    tmp_path: Path,
    mm_database: MattermostDatabase,
    notify_listener: NotifyListener,
    processes: list[ServerProcess],
) -> None:
    install = make_install(tmp_path, failure="unhealthy")
    started = start_server(install, notify_listener, processes, mm_database.dsn)
    status, body, _headers = http_get(f"{started.base_url}/api/v4/system/ping")
    assert status == 500
    assert body["status"] == "UNHEALTHY"
    assert started.process.terminate() == 0


def test_failure_slow_start(
    tmp_path: Path,
    mm_database: MattermostDatabase,
    notify_listener: NotifyListener,
    processes: list[ServerProcess],
) -> None:
    install = make_install(tmp_path, failure="slow-start", slow_start_seconds=3)
    launched = time.monotonic()
    started = start_server(install, notify_listener, processes, mm_database.dsn)
    assert time.monotonic() - launched >= 3
    status, _body, _headers = http_get(f"{started.base_url}/api/v4/system/ping")
    assert status == 200
    assert started.process.terminate() == 0


def test_sigterm_during_slow_start_exits_cleanly(
    tmp_path: Path,
    mm_database: MattermostDatabase,
    notify_listener: NotifyListener,
    processes: list[ServerProcess],
) -> None:
    install = make_install(tmp_path, failure="slow-start", slow_start_seconds=60)
    started = start_server(install, notify_listener, processes, mm_database.dsn, wait_ready=False)
    deadline = time.monotonic() + START_TIMEOUT
    while "slow-start" not in started.process.output and time.monotonic() < deadline:
        time.sleep(0.1)
    assert started.process.terminate() == 0
    assert notify.READY not in notify_listener.received


# Pure functions of the server module --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (":8065", ("", 8065)),
        ("127.0.0.1:8065", ("127.0.0.1", 8065)),
        ("[::1]:8065", ("::1", 8065)),
        ("localhost:80", ("localhost", 80)),
    ],
)
def test_parse_listen_address(address: str, expected: tuple[str, int]) -> None:
    assert server.parse_listen_address(address) == expected


@pytest.mark.parametrize("address", ["8065", "host:", "host:http", ":99999"])
def test_parse_listen_address_rejects(address: str) -> None:
    with pytest.raises(server.StartupError):
        server.parse_listen_address(address)


def test_configuration_problem_only_from_v11() -> None:
    settings = mm_config.default_config()
    settings["TeamSettings"]["ExperimentalViewArchivedChannels"] = False
    assert server.configuration_problem({"version": "10.11.23"}, settings) is None
    assert "ExperimentalViewArchivedChannels" in (
        server.configuration_problem({"version": "11.0.1"}, settings) or ""
    )
    settings = mm_config.default_config()
    settings["ExperimentalSettings"]["ClientSideCertEnable"] = True
    assert "ClientSideCertEnable" in (server.configuration_problem({"version": "11.7.9"}, settings) or "")
    assert server.configuration_problem({"version": "11.7.9"}, mm_config.default_config()) is None


@pytest.mark.parametrize("version", ["11.7.9", "10.11.23"])
def test_mysql_is_refused(version: str) -> None:
    settings = mm_config.default_config()
    settings["SqlSettings"]["DriverName"] = "mysql"
    assert "DriverName 'mysql'" in (server.configuration_problem({"version": version}, settings) or "")


def test_version_header_changes_with_client_config(tmp_path: Path) -> None:
    build = build_info("11.10.0")
    settings = mm_config.default_config()
    first = server.App(build, settings, None, tmp_path, tmp_path / "data")  # type: ignore[arg-type]
    settings = mm_config.default_config()
    settings["ServiceSettings"]["SiteURL"] = "https://chat.example.com"
    second = server.App(build, settings, None, tmp_path, tmp_path / "data")  # type: ignore[arg-type]
    assert first.version_header().startswith("11.10.0.11.10.0.")
    assert first.version_header().endswith(".false")
    assert first.version_header() != second.version_header()


def test_install_dir_is_the_parent_of_bin(tmp_path: Path) -> None:
    binary = tmp_path / "mattermost" / "bin" / "mattermost"
    assert server.locate_install_dir({}, str(binary)) == (tmp_path / "mattermost").resolve()
    override = {server.INSTALL_DIR_ENV: str(tmp_path)}
    assert server.locate_install_dir(override, str(binary)) == tmp_path.resolve()


def test_notify_socket_addresses() -> None:
    assert notify.socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert notify.socket_address("@abstract") == "\0abstract"
    assert notify.socket_address("vsock:2:1") is None
    assert notify.notify(notify.READY, {}) is False
