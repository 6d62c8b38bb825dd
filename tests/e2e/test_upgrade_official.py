"""Upgrade of an install made by the official tarball guide (everything in /opt/mattermost)."""

from __future__ import annotations

import json

import pytest

from .checks import assert_config_preserved, assert_installed_as_claimed, assert_no_secret, expect_result
from .conftest import NEW, OLD

pytestmark = pytest.mark.e2e

CONFIG = "/opt/mattermost/config/config.json"


def test_official_layout_upgrade_keeps_data_config_and_custom_dirs(make_host, db_password: str) -> None:
    host = make_host("official", OLD)
    assert_installed_as_claimed(host, OLD)
    # What an admin's server has besides the release: a System Console change, a file a user uploaded, a
    # custom plugin (server and webapp parts), a custom directory the guide says it does NOT preserve, logs.
    host.run(
        "set -e; cd /opt/mattermost; "
        "python3 - <<'EOF'\n"
        "import json\n"
        f"path = '{CONFIG}'\n"
        "config = json.load(open(path))\n"
        "config['TeamSettings']['SiteName'] = 'E2E Upgrade Site'\n"
        "config['ServiceSettings']['EnableCustomEmoji'] = True\n"
        "json.dump(config, open(path, 'w'), indent=2)\n"
        "EOF\n"
        "mkdir -p data/e2e custom-tls plugins/com.example.e2e client/plugins/com.example.e2e; "
        "head -c 65536 /dev/urandom > data/e2e/upload.bin; "
        "echo '-----BEGIN PRIVATE KEY-----e2e' > custom-tls/server.key; chmod 0600 custom-tls/server.key; "
        'echo \'{"id": "com.example.e2e", "version": "1.0.0"}\' > plugins/com.example.e2e/plugin.json; '
        "echo 'console.log(1)' > client/plugins/com.example.e2e/main.js; "
        "echo 'e2e marker line' >> logs/mattermost.log; "
        "chown -R mattermost:mattermost /opt/mattermost"
    )
    kept = [
        "data/e2e/upload.bin",
        "custom-tls/server.key",
        "plugins/com.example.e2e/plugin.json",
        "client/plugins/com.example.e2e/main.js",
    ]
    sums = {path: host.sha256(f"/opt/mattermost/{path}") for path in kept}
    config_before, config_stat = host.read(CONFIG), host.stat(CONFIG)

    rc, result = host.mmupgrade("--to", NEW)

    expect_result(rc, result, 0, "upgraded", host)
    assert (result["from"], result["to"]) == (OLD, NEW)
    assert host.version_serving() == NEW
    assert host.installed_version() == NEW
    assert host.service_active() == "active"
    assert host.schema_version() == 1110
    host.smoke_verify()
    # The unit keeps pointing at /opt/mattermost, which holds the new release and all the old state.
    assert host.run(["readlink", "-f", "/opt/mattermost"]).stdout.strip() in ("/opt/mattermost",)
    assert_config_preserved(config_before, host.read(CONFIG))
    assert json.loads(host.read(CONFIG))["TeamSettings"]["SiteName"] == "E2E Upgrade Site"
    for path, digest in sums.items():
        assert host.exists(f"/opt/mattermost/{path}"), f"{path} lost by the upgrade"
        assert host.sha256(f"/opt/mattermost/{path}") == digest, f"{path} changed by the upgrade"
    assert "e2e marker line" in host.read("/opt/mattermost/logs/mattermost.log")
    # The new release's files are there too: the new prepackaged plugins, the new templates.
    assert host.exists("/opt/mattermost/prepackaged_plugins") and host.exists("/opt/mattermost/templates")
    not_owned = host.run("find /opt/mattermost \\! -user mattermost -printf '%p\\n' | head -20").stdout
    assert not not_owned.strip(), f"not owned by mattermost after the upgrade:\n{not_owned}"
    assert host.stat(CONFIG) == config_stat, "config.json owner or mode changed"
    assert not host.run("ls -d /opt/mattermost.upgrade-* 2>/dev/null; true").stdout.strip(), (
        "staging left behind"
    )
    assert result.get("backup"), "the result names no backup"
    assert host.exists(result["backup"]), f"the backup {result['backup']} the result names is missing"
    # The backup holds the config with the database password: root only (docs/dev/layout.md).
    assert host.stat("/var/backups/mattermost")["mode"] == "700"
    readable = host.run("find /var/backups/mattermost -perm /o=rwx -printf '%p\\n'").stdout
    assert not readable.strip(), f"backup files others can read: {readable}"
    assert_no_secret(host, db_password)
