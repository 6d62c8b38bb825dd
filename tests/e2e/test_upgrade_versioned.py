"""Upgrade of the versioned layout the mattermost role makes (releases/<V>-<edition>, current symlink)."""

from __future__ import annotations

import pytest

from .checks import (
    assert_config_preserved,
    assert_installed_as_claimed,
    assert_no_secret,
    assert_unchanged,
    expect_result,
)
from .conftest import NEW, OLD

pytestmark = pytest.mark.e2e

CONFIG = "/var/opt/mattermost/config/config.json"
ENV_FILE = "/etc/mattermost/mattermost.env"


def current(host) -> str:
    return host.run(["readlink", "/opt/mattermost/current"]).stdout.strip()


def test_versioned_layout_latest_through_the_release_list(make_host, db_password: str) -> None:
    host = make_host("versioned", OLD)
    assert_installed_as_claimed(host, OLD)
    host.run("cd /var/opt/mattermost/data && echo e2e > e2e-marker && chown mattermost:mattermost e2e-marker")
    before = host.snapshot()
    env_before = (host.read(ENV_FILE), host.stat(ENV_FILE))
    config_before = host.read(CONFIG)

    rc, result = host.mmupgrade("--check")
    expect_result(rc, result, 10, "update-available", host)
    assert (result["from"], result["to"]) == (OLD, NEW)

    rc, result = host.mmupgrade("--latest", "--dry-run")
    assert rc == 0, f"--dry-run: exit {rc}, {result}\n{host.last_stderr}"
    assert result.get("to") == NEW
    assert_unchanged(before, host.snapshot())

    rc, result = host.mmupgrade("--latest")
    expect_result(rc, result, 0, "upgraded", host)
    assert (result["from"], result["to"]) == (OLD, NEW)
    assert host.version_serving() == NEW
    assert current(host) == f"releases/{NEW}-enterprise"
    assert host.exists(f"/opt/mattermost/releases/{OLD}-enterprise/bin/mattermost"), (
        "old release kept for rollback"
    )
    assert host.stat(f"/opt/mattermost/releases/{NEW}-enterprise/bin/mattermost")["owner"] == "root"
    assert host.schema_version() == 1110
    host.smoke_verify()
    assert (host.read(ENV_FILE), host.stat(ENV_FILE)) == env_before, "the installer's env file changed"
    assert_config_preserved(config_before, host.read(CONFIG))
    assert host.read("/var/opt/mattermost/data/e2e-marker") == "e2e\n"
    assert_no_secret(host, db_password)

    rc, result = host.mmupgrade("--check")
    expect_result(rc, result, 0, "up-to-date", host)
    pid = host.snapshot()["main_pid"]
    rc, result = host.mmupgrade("--latest")
    expect_result(rc, result, 0, "up-to-date", host)
    assert host.snapshot()["main_pid"] == pid, "an up-to-date run restarted the server"


def test_versioned_rollback_on_request_restores_release_and_database(make_host) -> None:
    host = make_host("versioned", OLD)
    rc, result = host.mmupgrade("--to", NEW)
    expect_result(rc, result, 0, "upgraded", host)
    assert host.schema_version() == 1110

    rc, result = host.mmupgrade("--rollback")

    expect_result(rc, result, 0, "rolled-back", host)
    assert host.version_serving() == OLD
    assert current(host) == f"releases/{OLD}-enterprise"
    assert host.schema_version() == 1109
    host.smoke_verify()


def test_team_edition_is_upgraded_to_team_edition(make_host) -> None:
    host = make_host("versioned", OLD, edition="team")
    rc, result = host.mmupgrade("--latest")
    expect_result(rc, result, 0, "upgraded", host)
    assert host.version_serving() == NEW
    assert current(host) == f"releases/{NEW}-team"
    version = host.run("cd /opt/mattermost/current && runuser -u mattermost -- bin/mattermost version").stdout
    assert "Build Enterprise Ready: false" in version
    host.smoke_verify()
