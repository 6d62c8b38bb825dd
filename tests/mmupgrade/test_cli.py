"""The command line: main([...]) for --version, --help, usage errors, --check, --dry-run, refusals, --json."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from mmupgrade import __version__, cli, hostfs, preflight
from mmupgrade.cli import main
from mmupgrade.lock import RunLock
from mmupgrade.output import Reporter
from tests.conftest import MattermostDatabase

from .conftest import FakeService, Host, Mirror, ReleaseFactory, make_host, runtime_for

JSON_KEYS = ["status", "from", "to", "message", "backup", "exit_code"]


def run(host: Host, *args: str, json_mode: bool = True) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    reporter = Reporter(stdout=stdout, stderr=stderr)
    extra = ["--json"] if json_mode else []
    code = main([*args, *host.cli_args(), *extra], runtime=runtime_for(host, FakeService(), reporter))
    return code, stdout.getvalue(), stderr.getvalue()


def snapshot(*roots: Path) -> dict[str, tuple[int, int, int]]:
    """Every path below the roots with its inode, size and mtime: any change shows."""
    seen = {}
    for root in roots:
        for directory, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                path = os.path.join(directory, name)
                info = os.lstat(path)
                seen[path] = (info.st_ino, info.st_size, info.st_mtime_ns)
    return seen


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mmupgrade {__version__}"


def test_help_documents_options_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for option in (
        "--latest",
        "--to",
        "--check",
        "--rollback",
        "--install-dir",
        "--release-url",
        "--releases-api",
        "--signing-key",
        "--signing-key-fingerprint",
        "--sha256",
        "--tarball",
        "--edition",
        "--backup-dir",
        "--backup-data",
        "--keep-backups",
        "--dry-run",
        "--yes",
        "--json",
        "--health-timeout",
        "--unit",
    ):
        assert option in out
    for code in ("0 ", "1 ", "2 ", "3 ", "4 ", "5 ", "10 ", "130 "):
        assert f"\n  {code}" in out


@pytest.mark.parametrize(
    "args",
    [
        ["--to", "11.10"],
        ["--latest", "--check"],
        ["--to", "11.10.0", "--rollback"],
        ["--edition", "free"],
        ["--keep-backups", "0"],
        ["--health-timeout", "-1"],
        ["--sha256", "abc"],
        ["--no-such-option"],
    ],
)
def test_usage_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "usage: mmupgrade" in captured.err


def test_usage_error_with_json_still_prints_one_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--to", "nope", "--json"]) == 2
    document = json.loads(capsys.readouterr().out)
    assert list(document) == JSON_KEYS and document["exit_code"] == 2 and document["status"] == "refused"


def _host(
    tmp_path: Path,
    releases: ReleaseFactory,
    version: str,
    dsn: str = "postgres://mmuser:pw-not-used@127.0.0.1:9/none",
) -> Host:
    return make_host(tmp_path / "host", releases.get(version), "versioned", dsn)


def test_check_reports_an_update_with_exit_10(
    tmp_path: Path, releases: ReleaseFactory, mirror: Mirror
) -> None:
    host = _host(tmp_path, releases, "11.9.1")
    code, out, err = run(host, "--check", "--releases-api", f"{mirror.url}/api/releases")
    assert code == 10
    document = json.loads(out)
    assert list(document) == JSON_KEYS
    assert document == {
        "status": "update-available",
        "from": "11.9.1",
        "to": "11.10.0",
        "message": document["message"],
        "backup": None,
        "exit_code": 10,
    }
    assert "mmupgrade --latest" in document["message"]
    assert out.count("\n") == 1  # nothing but the JSON object on stdout
    assert "11.10.0 is available" in err  # the human line goes to stderr


def test_check_up_to_date_without_json(tmp_path: Path, releases: ReleaseFactory, mirror: Mirror) -> None:
    host = _host(tmp_path, releases, "11.10.0")
    code, out, err = run(host, "--check", "--releases-api", f"{mirror.url}/api/releases", json_mode=False)
    assert code == 0
    assert "11.10.0 is installed; 11.10.0 is the newest release" in out
    assert err == ""


def test_downgrade_and_blocked_path_are_refused(tmp_path: Path, releases: ReleaseFactory) -> None:
    host = _host(tmp_path / "a", releases, "11.10.0")
    code, out, _ = run(host, "--to", "11.9.1")
    assert code == 1 and "does not downgrade" in json.loads(out)["message"]
    blocked = _host(tmp_path / "b", releases, "10.11.17")
    code, out, _ = run(blocked, "--to", "11.7.2")
    assert code == 1 and "known-bad path" in json.loads(out)["message"]
    assert not (blocked.state_dir / "journal.json").exists()


def test_dry_run_changes_nothing(
    tmp_path: Path, releases: ReleaseFactory, mirror: Mirror, mm_database: MattermostDatabase
) -> None:
    host = _host(tmp_path, releases, "11.9.1", mm_database.dsn)
    before = snapshot(host.base / "opt", host.base / "var" / "opt", host.base / "etc")
    key = releases.get("11.10.0").signing_key
    code, out, err = run(
        host,
        "--latest",
        "--dry-run",
        "--releases-api",
        f"{mirror.url}/api/releases",
        "--release-url",
        mirror.url,
        "--signing-key",
        str(key),
    )
    assert code == 0, err
    document = json.loads(out)
    assert document["status"] == "update-available" and document["dry_run"] is True
    assert document["to"] == "11.10.0"
    assert "Plan (dry run: nothing will be changed):" in err
    assert any(line.startswith("  - stage the new release at") for line in err.splitlines())
    assert snapshot(host.base / "opt", host.base / "var" / "opt", host.base / "etc") == before
    assert not host.backup_dir.exists()
    assert not (host.state_dir / "journal.json").exists()
    assert mm_database.password not in out + err


def test_refusals_before_any_change(
    tmp_path: Path,
    releases: ReleaseFactory,
    mirror: Mirror,
    mm_database: MattermostDatabase,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = _host(tmp_path, releases, "11.9.1", mm_database.dsn)
    good = releases.get("11.10.0")
    common = ["--release-url", mirror.url, "--signing-key", str(good.signing_key)]
    before = snapshot(host.base / "opt", host.base / "var" / "opt")

    def refused(*args: str) -> str:
        code, out, err = run(host, *args)
        assert code == 1, err
        document = json.loads(out)
        assert document["status"] == "refused"
        assert mm_database.password not in out + err
        return document["message"]

    assert "is not available" in refused("--to", "11.11.0", *common)
    assert "SHA-256 mismatch" in refused("--to", "11.10.0", *common, "--sha256", "0" * 64)
    other = releases.get("11.10.0", root="other")
    assert "not the pinned" in refused(
        "--to", "11.10.0", *common, "--signing-key-fingerprint", other.fingerprint
    )
    tampered = tmp_path / "air-gap" / good.name
    tampered.parent.mkdir()
    data = bytearray(good.tarball.read_bytes())
    data[-100] ^= 0xFF
    tampered.write_bytes(bytes(data))
    tampered.with_name(good.name + ".sig").write_bytes(good.signature.read_bytes())
    message = refused("--tarball", str(tampered), "--signing-key", str(good.signing_key))
    assert "does not match its signature" in message and "Nothing was changed" in message
    (tampered.with_name(good.name + ".sig")).unlink()
    assert "no signature" in refused("--tarball", str(tampered), "--signing-key", str(good.signing_key))
    monkeypatch.setattr(preflight, "minimum_postgres_major", lambda target: 99)
    assert "needs PostgreSQL 99 or later" in refused("--to", "11.10.0", *common)
    monkeypatch.undo()
    monkeypatch.setattr(hostfs, "free_bytes", lambda path: 1024)
    assert "not enough disk space" in refused("--to", "11.10.0", *common)
    monkeypatch.undo()
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "must run as root" in refused("--to", "11.10.0", *common)
    monkeypatch.undo()
    assert snapshot(host.base / "opt", host.base / "var" / "opt") == before
    assert not list(host.root.glob("releases/.*"))


def test_lock_contention_exits_5(tmp_path: Path, releases: ReleaseFactory) -> None:
    host = _host(tmp_path, releases, "11.9.1")
    with RunLock(host.state_dir):
        code, out, _ = run(host, "--to", "11.10.0")
    assert code == 5
    document = json.loads(out)
    assert f"pid {os.getpid()}" in document["message"]


def test_a_bug_still_answers_in_the_documented_shape(
    tmp_path: Path, releases: ReleaseFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = _host(tmp_path, releases, "11.9.1")

    def broken(ctx: object) -> dict:
        raise RuntimeError("something nobody planned for")

    monkeypatch.setattr(cli, "run_upgrade", broken)
    code, out, err = run(host, "--to", "11.10.0")
    assert code == 4
    document = json.loads(out)
    assert document["status"] == "failed" and "a bug" in document["message"]
    assert "Traceback" in err and "something nobody planned for" in err
