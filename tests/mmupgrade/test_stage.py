"""Staging beside the release in service: ownership, capability, the shipped state set aside, checks."""

from __future__ import annotations

import io
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmupgrade.cli import main
from mmupgrade.installation import Installation, discover
from mmupgrade.output import Reporter
from mmupgrade.stage import StageError, discard_staged, plan_paths, stage_release
from mmupgrade.swap import unmovable_entries
from mmupgrade.versions import Version

from .conftest import FakeService, Host, ReleaseFactory, make_host, runtime_for

DSN = "postgres://mmuser:pw@127.0.0.1:9/none"


def _installation(host: Host) -> Installation:
    return discover(None, "mattermost", [host.unit_dir], use_systemctl=False)


def _capabilities(path: Path) -> str:
    return subprocess.run(["getcap", str(path)], capture_output=True, text=True, check=False).stdout


def test_official_staging(tmp_path: Path, releases: ReleaseFactory) -> None:
    host = make_host(tmp_path / "host", releases.get("11.9.1"), "official", DSN)
    # The guide's ownership (chown -R mattermost:mattermost) and its setcap for ports below 1024.
    for directory, dirnames, filenames in os.walk(host.root):
        for name in dirnames + filenames:
            os.lchown(os.path.join(directory, name), 1234, 1234)
    os.chmod(host.root, 0o700)
    subprocess.run(["setcap", "cap_net_bind_service=+ep", str(host.root / "bin" / "mattermost")], check=True)
    installation = _installation(host)
    new = releases.get("11.10.0")
    plan = plan_paths(installation, Version(11, 10, 0), "enterprise")
    plan = stage_release(new.tarball, installation, plan, Version(11, 10, 0), "enterprise")

    staged = Path(plan.staged)
    assert staged == Path(f"{host.root}.upgrade-11.10.0")
    assert plan.previous == f"{host.root}.previous-11.9.1"
    assert plan.preserved == ["config", "logs", "plugins", "client/plugins", "data", "certs"]
    binary = staged / "bin" / "mattermost"
    assert (binary.stat().st_uid, binary.stat().st_gid) == (1234, 1234)
    assert staged.stat().st_uid == 0 and staged.stat().st_mode & 0o777 == 0o700  # like the old top directory
    assert "cap_net_bind_service" in _capabilities(binary)
    # The release's own config/ and logs/ wait aside: the old ones move in at the switch.
    assert not (staged / "config").exists() and not (staged / "logs").exists()
    assert (Path(plan.shipped_aside) / "config" / "config.json").is_file()
    assert not list(host.root.parent.glob(".*unpacking"))
    # The tree in service was not touched.
    assert (host.root / "bin" / "mattermost").stat().st_uid == 1234
    discard_staged(plan)
    assert not staged.exists() and not Path(plan.shipped_aside).exists()


def test_versioned_staging_and_a_wrong_tarball(tmp_path: Path, releases: ReleaseFactory) -> None:
    host = make_host(tmp_path / "host", releases.get("11.9.1"), "versioned", DSN)
    installation = _installation(host)
    target = Version(11, 10, 0)
    plan = plan_paths(installation, target, "enterprise")
    with pytest.raises(
        StageError, match=r"reports 11\.9\.1 enterprise, not 11\.10\.0 enterprise: wrong file"
    ):
        stage_release(releases.get("11.9.1").tarball, installation, plan, target, "enterprise")
    assert sorted(p.name for p in (host.root / "releases").iterdir()) == ["11.9.1-enterprise"]
    plan = stage_release(releases.get("11.10.0").tarball, installation, plan, target, "enterprise")
    assert Path(plan.staged) == host.root / "releases" / "11.10.0-enterprise"
    assert (plan.old_target, plan.new_target) == ("releases/11.9.1-enterprise", "releases/11.10.0-enterprise")
    assert os.readlink(host.root / "current") == "releases/11.9.1-enterprise"
    # Read-only to the service: nothing in the release is writable by group or others.
    assert not [p for p in Path(plan.staged).rglob("*") if not p.is_symlink() and p.stat().st_mode & 0o022]


@pytest.fixture
def mounted_data(tmp_path: Path, releases: ReleaseFactory) -> Iterator[Host]:
    host = make_host(tmp_path / "host", releases.get("11.9.1"), "official", DSN)
    subprocess.run(["mount", "-t", "tmpfs", "mmupgrade-test", str(host.root / "data")], check=True)
    try:
        yield host
    finally:
        subprocess.run(["umount", str(host.root / "data")], check=False)


def test_mount_points_cannot_be_moved(mounted_data: Host) -> None:
    assert unmovable_entries(mounted_data.root) == [f"{mounted_data.root / 'data'} (a mount point)"]


def test_preflight_refuses_a_mounted_data_directory(mounted_data: Host) -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    reporter = Reporter(stdout=stdout, stderr=stderr)
    code = main(
        ["--to", "11.10.0", *mounted_data.cli_args(), "--json"],
        runtime=runtime_for(mounted_data, FakeService(), reporter),
    )
    assert code == 1
    message = json.loads(stdout.getvalue())["message"]
    assert "a mount point" in message and "FileSettings.Directory" in message
