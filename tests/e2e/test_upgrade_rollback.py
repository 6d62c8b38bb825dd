"""A release that fails after the switch is rolled back by itself: exit 3, the old version serving again.

exit-on-start exits before it migrates (only the release is put back); unhealthy migrates the schema to
UNHEALTHY_SCHEMA and then never gets healthy (the database must come back from the backup too).
"""

from __future__ import annotations

import pytest

from .checks import assert_no_secret, expect_result
from .conftest import NEW, OLD, UNHEALTHY_SCHEMA

pytestmark = pytest.mark.e2e

# The unhealthy release never gets healthy: mmupgrade waits this long (default 600 s) before rolling back.
HEALTH_TIMEOUT = 10

CONFIGS = {
    "official": "/opt/mattermost/config/config.json",
    "versioned": "/var/opt/mattermost/config/config.json",
}


def assert_rolled_back(host, rc: int, result: dict, config_before: str) -> None:
    expect_result(rc, result, 3, "rolled-back", host)
    assert result["to"] == NEW and result["from"] == OLD
    assert host.version_serving() == OLD
    assert host.installed_version() == OLD
    assert host.service_active() == "active"
    assert host.schema_version() == 1109, "the database was not restored to the old schema"
    host.smoke_verify()
    assert host.read(CONFIGS[host.layout]) == config_before, (
        "config.json is not byte-identical after the rollback"
    )
    if host.layout == "versioned":
        assert (
            host.run(["readlink", "/opt/mattermost/current"]).stdout.strip() == f"releases/{OLD}-enterprise"
        )


@pytest.mark.parametrize("layout", ["official", "versioned"])
def test_release_that_exits_on_start_is_rolled_back(make_host, layout: str, db_password: str) -> None:
    host = make_host(layout, OLD, mirror="exit")
    config_before = host.read(CONFIGS[layout])
    rc, result = host.mmupgrade("--to", NEW)
    assert_rolled_back(host, rc, result, config_before)
    assert_no_secret(host, db_password)


@pytest.mark.parametrize("layout", ["official", "versioned"])
def test_release_that_stays_unhealthy_is_rolled_back_with_the_database(make_host, layout: str) -> None:
    host = make_host(layout, OLD, mirror="unhealthy")
    config_before = host.read(CONFIGS[layout])
    rc, result = host.mmupgrade("--to", NEW, "--health-timeout", str(HEALTH_TIMEOUT))
    assert_rolled_back(host, rc, result, config_before)
    # The failed start really had migrated (the server said so), and its migration is gone from the database.
    log = host.run(
        "journalctl -u mattermost --no-pager -o cat | grep 'Migrated the database schema'", check=False
    ).stdout
    assert str(UNHEALTHY_SCHEMA) in log, (
        f"the unhealthy release never migrated; the test proves nothing:\n{log}"
    )
    rows = host.run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            "psql",
            "-d",
            "mattermost",
            "-Atc",
            "SELECT count(*) FROM db_migrations WHERE version > 1109",
        ]
    ).stdout.strip()
    assert rows == "0"
