"""Committing an upgrade: leftovers removed, earlier releases and backups kept up to the retention count."""

from __future__ import annotations

import os
import time
from pathlib import Path

from mmupgrade.commit import prune_previous_releases
from mmupgrade.swap import SwapPlan


def _aged(path: Path, age: int) -> None:
    path.mkdir(parents=True)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))


def test_versioned_retention_keeps_the_replaced_release_and_the_newest_others(tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    for age, name in enumerate(
        ["11.10.0-enterprise", "11.9.1-enterprise", "11.8.5-enterprise", "11.7.9-enterprise"]
    ):
        _aged(releases / name, age * 100)
    _aged(releases / ".11.11.0-enterprise.unpacking", 0)
    (tmp_path / "current").symlink_to("releases/11.10.0-enterprise")
    plan = SwapPlan(
        layout="versioned",
        root=str(tmp_path),
        staged=str(releases / "11.10.0-enterprise"),
        current_link=str(tmp_path / "current"),
        old_target="releases/11.9.1-enterprise",
        new_target="releases/11.10.0-enterprise",
    )
    removed = prune_previous_releases(plan, keep=2)
    assert removed == [releases / "11.7.9-enterprise"]
    assert sorted(p.name for p in releases.iterdir()) == [
        ".11.11.0-enterprise.unpacking",  # not a release: never touched here
        "11.10.0-enterprise",
        "11.8.5-enterprise",
        "11.9.1-enterprise",
    ]


def test_official_retention(tmp_path: Path) -> None:
    root = tmp_path / "mattermost"
    _aged(root, 0)
    for age, version in enumerate(["11.9.1", "11.8.5", "11.7.9"]):
        _aged(tmp_path / f"mattermost.previous-{version}", age * 100)
    plan = SwapPlan(
        layout="official", root=str(root), staged="", previous=str(tmp_path / "mattermost.previous-11.9.1")
    )
    assert prune_previous_releases(plan, keep=1) == [
        tmp_path / "mattermost.previous-11.8.5",
        tmp_path / "mattermost.previous-11.7.9",
    ]
    assert root.is_dir() and (tmp_path / "mattermost.previous-11.9.1").is_dir()
