"""The whole pipeline in-process: a stand-in server as a child process, the real test PostgreSQL.

The service controller starts the unit's ExecStart the way systemd would, so the upgrade really stops
the old version, switches, starts the new one, waits for /api/v4/system/ping, and rolls back for real
when the new release fails (the end-to-end runs under systemd live in tests/e2e).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmupgrade.cli import main
from mmupgrade.database import Database, DataSource
from mmupgrade.output import Reporter
from tests.conftest import MattermostDatabase

from .conftest import Host, Mirror, ProcessService, ReleaseFactory, make_host, runtime_for, wait_for_ping


class Run:
    """One mmupgrade invocation through main(), with --json, capturing both streams."""

    def __init__(self, host: Host, service: ProcessService) -> None:
        self.host = host
        self.service = service
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()

    def __call__(self, *args: str) -> tuple[int, dict]:
        self.stdout, self.stderr = io.StringIO(), io.StringIO()
        reporter = Reporter(stdout=self.stdout, stderr=self.stderr)
        code = main(
            [*args, *self.host.cli_args(), "--json"], runtime=runtime_for(self.host, self.service, reporter)
        )
        document = json.loads(self.stdout.getvalue())
        assert document["exit_code"] == code
        return code, document


@pytest.fixture
def running(
    request: pytest.FixtureRequest, tmp_path: Path, releases: ReleaseFactory, mm_database: MattermostDatabase
) -> Iterator[tuple[Host, ProcessService]]:
    layout = request.param
    host = make_host(tmp_path / "host", releases.get("11.9.1"), layout, mm_database.dsn)
    service = ProcessService(host.unit_dir, tmp_path / "server.log")
    service.start()
    try:
        assert wait_for_ping(host.ping_url).startswith("11.9.1.")
        yield host, service
    finally:
        service.stop()
        # Shown by pytest only when the test fails: what the servers said.
        print((tmp_path / "server.log").read_text(errors="replace")[-4000:])


def _schema(mm_database: MattermostDatabase) -> int:
    return Database(DataSource.parse(mm_database.dsn)).schema_version()


def _no_secret(mm_database: MattermostDatabase, *texts: str) -> None:
    for text in texts:
        assert mm_database.password not in text
        assert mm_database.dsn not in text


@pytest.mark.parametrize("running", ["official", "versioned"], indirect=True)
def test_upgrade_and_rollback_on_request(
    running: tuple[Host, ProcessService],
    releases: ReleaseFactory,
    mirror: Mirror,
    mm_database: MattermostDatabase,
) -> None:
    host, service = running
    key = releases.get("11.10.0").signing_key
    data_inode = host.data_dir.stat().st_ino
    config_before = host.config_file.read_bytes()
    run = Run(host, service)
    assert _schema(mm_database) == 1109

    code, document = run(
        "--to", "11.10.0", "--release-url", mirror.url, "--signing-key", str(key), "--health-timeout", "60"
    )
    assert code == 0, run.stderr.getvalue()
    assert document["status"] == "upgraded"
    assert (document["from"], document["to"]) == ("11.9.1", "11.10.0")
    assert wait_for_ping(host.ping_url).startswith("11.10.0.")
    assert _schema(mm_database) == 1110
    assert host.data_dir.stat().st_ino == data_inode
    assert (host.data_dir / "attachment.bin").read_bytes() == b"a file users uploaded"
    backup = Path(document["backup"])
    assert (backup / "database.dump").is_file() and (backup / "config.json").is_file()
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["schema_version"] == 1109 and manifest["complete"] is True
    journal = (host.state_dir / "journal.json").read_text()
    assert json.loads(journal)["phase"] == "committed"
    if host.layout == "official":
        assert (host.root / "certs" / "tls.key").is_file()  # custom directory kept
        assert json.loads(host.config_file.read_text())["SqlSettings"]["DataSource"] == mm_database.dsn
        assert Path(f"{host.root}.previous-11.9.1", "bin", "mattermost").is_file()
    else:
        assert os.readlink(host.root / "current") == "releases/11.10.0-enterprise"
        assert (backup / "env" / "mattermost.env").is_file()
    _no_secret(mm_database, run.stdout.getvalue(), run.stderr.getvalue(), journal, json.dumps(manifest))

    # Already there: nothing to do.
    code, document = run("--to", "11.10.0", "--release-url", mirror.url, "--signing-key", str(key))
    assert (code, document["status"]) == (0, "up-to-date")

    # On request: back to 11.9.1, the database restored (the schema had moved), the config as it was.
    code, document = run("--rollback", "--yes")
    assert code == 0, run.stderr.getvalue()
    assert document["status"] == "rolled-back"
    assert wait_for_ping(host.ping_url).startswith("11.9.1.")
    assert _schema(mm_database) == 1109
    assert host.config_file.read_bytes() == config_before
    assert host.data_dir.stat().st_ino == data_inode
    code, document = run("--rollback", "--yes")
    assert code == 1 and "already rolled back" in document["message"]


def test_upgrade_with_the_config_in_the_database(
    tmp_path: Path, releases: ReleaseFactory, mirror: Mirror, mm_database: MattermostDatabase
) -> None:
    """MM_CONFIG=postgres://...: the configuration lives in the database and travels with its dump."""
    host = make_host(
        tmp_path / "host", releases.get("11.9.1"), "versioned", mm_database.dsn, config_in_database=True
    )
    service = ProcessService(host.unit_dir, tmp_path / "server.log")
    service.start()
    try:
        assert wait_for_ping(host.ping_url).startswith("11.9.1.")
        database = Database(DataSource.parse(mm_database.dsn))
        assert database.active_config() is not None  # the server stored its configuration there
        run = Run(host, service)
        key = str(releases.get("11.10.0").signing_key)
        code, document = run("--to", "11.10.0", "--release-url", mirror.url, "--signing-key", key)
        assert code == 0, run.stderr.getvalue()
        manifest = json.loads((Path(document["backup"]) / "manifest.json").read_text())
        assert manifest["config_in_database"] is True and "config.json" not in manifest["files"]
        assert any(
            "configurations" in line
            for line in database.list_dump(Path(document["backup"]) / "database.dump")
        )
        code, document = run("--rollback", "--yes")
        assert code == 0, run.stderr.getvalue()
        assert wait_for_ping(host.ping_url).startswith("11.9.1.")
        _no_secret(mm_database, run.stdout.getvalue(), run.stderr.getvalue())
    finally:
        service.stop()


@pytest.mark.parametrize("running", ["versioned"], indirect=True)
@pytest.mark.parametrize(
    ("failure", "cause"),
    [("unhealthy", "ping answered 500 UNHEALTHY"), ("exit-on-start", "exited with status 1")],
)
def test_failing_release_rolls_back(
    running: tuple[Host, ProcessService],
    releases: ReleaseFactory,
    mm_database: MattermostDatabase,
    failure: str,
    cause: str,
) -> None:
    host, service = running
    bad = releases.get("11.10.0", root=f"bad-{failure}", failure=failure)
    config_before = host.config_file.read_bytes()
    run = Run(host, service)
    code, document = run(
        "--tarball", str(bad.tarball), "--signing-key", str(bad.signing_key), "--health-timeout", "8"
    )
    assert code == 3, run.stderr.getvalue()
    assert document["status"] == "rolled-back"
    assert cause in document["message"]
    assert "rolled back to 11.9.1, which is serving" in document["message"]
    assert wait_for_ping(host.ping_url).startswith("11.9.1.")
    assert _schema(mm_database) == 1109  # restored when the failed version had migrated it
    assert host.config_file.read_bytes() == config_before
    assert os.readlink(host.root / "current") == "releases/11.9.1-enterprise"
    assert not (host.root / "releases" / "11.10.0-enterprise").exists()
    assert json.loads((host.state_dir / "journal.json").read_text())["phase"] == "rolled-back"
    _no_secret(mm_database, run.stdout.getvalue(), run.stderr.getvalue())


class Killed(BaseException):
    """Stands for SIGKILL: nothing in mmupgrade catches it, the journal stays as the step left it."""


class DyingService(ProcessService):
    """Dies (raises Killed) right after doing the named operation for real."""

    def __init__(self, service: ProcessService, die_after: str) -> None:
        super().__init__(service.unit_dir, service.log_file)
        self.process = service.process
        self.die_after = die_after

    def stop(self) -> None:
        super().stop()
        if self.die_after == "stop":
            self.die_after = ""
            raise Killed

    def start(self) -> None:
        super().start()
        if self.die_after == "start":
            self.die_after = ""
            raise Killed


@pytest.mark.parametrize("running", ["official"], indirect=True)
@pytest.mark.parametrize(
    "case",
    [("stop", 3, "rolled-back", "11.9.1."), ("start", 0, "upgraded", "11.10.0.")],
    ids=["killed-after-stop", "killed-after-start"],
)
def test_killed_run_is_finished_or_rolled_back_by_the_next(
    running: tuple[Host, ProcessService],
    releases: ReleaseFactory,
    mirror: Mirror,
    case: tuple[str, int, str, str],
) -> None:
    """Killed after the stop: the next run rolls back. Killed after switching and starting: it finishes."""
    host, service = running
    die_after, exit_code, status, serving = case
    key = releases.get("11.10.0").signing_key
    dying = DyingService(service, die_after)
    args = [
        "--to",
        "11.10.0",
        "--release-url",
        mirror.url,
        "--signing-key",
        str(key),
        "--health-timeout",
        "60",
    ]
    with pytest.raises(Killed):
        Run(host, dying)(*args)
    assert json.loads((host.state_dir / "journal.json").read_text())["phase"] == "in-progress"
    run = Run(host, dying)
    code, document = run(*args)
    assert (code, document["status"]) == (exit_code, status), run.stderr.getvalue()
    assert "did not finish: it stopped at step" in run.stderr.getvalue()
    assert wait_for_ping(host.ping_url).startswith(serving)
    assert (host.data_dir / "attachment.bin").is_file()
    service.process = dying.process  # so the fixture stops whatever runs now
