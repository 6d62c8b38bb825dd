"""Assertions shared by the e2e tests: documented result, preserved config, no secrets, nothing changed."""

from __future__ import annotations

import json
from typing import Any

from .hosts import JOURNAL, OFFICIAL_UNIT, Host, data_source

RESULT_KEYS = {"status", "from", "to", "message", "exit_code"}


def expect_result(rc: int, result: dict, exit_code: int, status: str | tuple[str, ...], host: Host) -> None:
    """The exit code and the --json result agree with each other and with what the test expects."""
    statuses = (status,) if isinstance(status, str) else status
    context = f"exit {rc}, result {json.dumps(result)}\nstderr:\n{host.last_stderr[-4000:]}"
    assert rc == exit_code, f"expected exit {exit_code}: {context}"
    assert result.get("status") in statuses, f"expected status {statuses}: {context}"
    assert result.get("exit_code") == rc, f"JSON exit_code differs from the process exit code: {context}"
    missing = RESULT_KEYS - set(result)
    assert not missing, f"result lacks {sorted(missing)}: {context}"
    if rc != 0:
        assert result["message"], f"a failure must say what happened: {context}"


def leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten a config document to {"Section.Key": value} (lists are leaves)."""
    if not isinstance(value, dict):
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        flat.update(leaves(item, f"{prefix}.{key}" if prefix else key))
    return flat


def assert_config_preserved(before: str, after: str) -> None:
    """Every setting of the old config.json is still there with the same value (the server may add keys)."""
    old, new = leaves(json.loads(before)), leaves(json.loads(after))
    changed = {
        key: (value, new.get(key, "<missing>"))
        for key, value in old.items()
        if new.get(key, object()) != value
    }
    assert not changed, f"config.json settings changed by the upgrade: {changed}"


def assert_no_secret(host: Host, secret: str, *extra_texts: str) -> None:
    """The database password is in no output of mmupgrade, nor in its journal."""
    texts = {
        "stdout": host.last_stdout,
        "stderr": host.last_stderr,
        "journal": host.run(f"cat {JOURNAL} /var/lib/mmupgrade/history/*.json 2>/dev/null; true").stdout,
    }
    for index, text in enumerate(extra_texts):
        texts[f"extra {index}"] = text
    leaked = [name for name, text in texts.items() if secret in text]
    assert not leaked, f"the database password appears in mmupgrade's {', '.join(leaked)}"


def assert_unchanged(before: dict, after: dict) -> None:
    """A refused run left the server exactly as it was: same process, version, schema, files, trees."""
    diffs = []
    for key, old in before.items():
        new = after[key]
        if old != new:
            if key == "tree":
                added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
                diffs.append(f"tree: added {added}, removed {removed}")
            else:
                diffs.append(f"{key}: {old!r} -> {new!r}")
    assert not diffs, "a refused run changed the server:\n" + "\n".join(diffs)


def assert_installed_as_claimed(host: Host, version: str) -> None:
    """The harness's install is what the tests claim (guide's layout and unit, or the role's layout)."""
    assert host.version_serving() == version
    assert host.installed_version() == version
    assert host.service_active() == "active"
    host.smoke_verify()
    if host.layout == "official":
        assert host.read("/etc/systemd/system/mattermost.service") == OFFICIAL_UNIT
        assert host.stat("/opt/mattermost/bin/mattermost")["owner"] == "mattermost"
        config = json.loads(host.read("/opt/mattermost/config/config.json"))
        assert config["SqlSettings"]["DataSource"] == data_source(host.db_password)
        assert host.exists("/opt/mattermost/plugins") and host.exists("/opt/mattermost/data")
    else:
        link = host.run(["readlink", "/opt/mattermost/current"]).stdout.strip()
        assert link.startswith(f"releases/{version}-")
        env = host.stat("/etc/mattermost/mattermost.env")
        assert (env["owner"], env["group"], env["mode"]) == ("root", "mattermost", "640")
        assert host.stat(f"/opt/mattermost/{link}/bin/mattermost")["owner"] == "root"
        assert host.exists("/var/opt/mattermost/plugins") and host.exists(
            "/var/opt/mattermost/config/config.json"
        )
