"""The O(1) switch for both layouts, and its idempotence when a run dies halfway."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mmupgrade.swap import SwapError, SwapPlan, preserved_entries, set_link, swap_back, swap_in


def _tree(path: Path, marker: str, entries: list[str]) -> None:
    for entry in entries:
        (path / entry).mkdir(parents=True, exist_ok=True)
    (path / "bin" / "mattermost").write_text(marker)


def _official(tmp_path: Path) -> tuple[SwapPlan, dict[str, int]]:
    root = tmp_path / "opt" / "mattermost"
    staged = tmp_path / "opt" / "mattermost.upgrade-11.10.0"
    _tree(
        root,
        "old",
        [
            "bin",
            "config",
            "logs",
            "data/users",
            "plugins/p1",
            "client/plugins/p1",
            "client/static",
            "certs",
            "fonts",
        ],
    )
    (root / "config" / "config.json").write_text('{"admin": "edited in the System Console"}')
    (root / "data" / "users" / "photo.png").write_bytes(b"png")
    (root / "custom-notes.txt").write_text("a custom file")
    _tree(staged, "new", ["bin", "client/static", "fonts", "i18n", "templates"])
    inodes = {name: os.stat(root / name).st_ino for name in ("data", "config", "plugins", "certs")}
    plan = SwapPlan(
        layout="official",
        root=str(root),
        staged=str(staged),
        previous=str(tmp_path / "opt" / "mattermost.previous-11.9.1"),
        preserved=preserved_entries(root, staged),
    )
    return plan, inodes


def test_preserved_entries_are_the_guides_list_plus_custom_ones(tmp_path: Path) -> None:
    plan, _ = _official(tmp_path)
    assert plan.preserved == [
        "config",
        "logs",
        "plugins",
        "client/plugins",
        "data",
        "certs",
        "custom-notes.txt",
    ]


def test_official_swap_in_and_back(tmp_path: Path) -> None:
    plan, inodes = _official(tmp_path)
    root, previous = Path(plan.root), Path(plan.previous)
    swap_in(plan)
    assert (root / "bin" / "mattermost").read_text() == "new"
    assert (previous / "bin" / "mattermost").read_text() == "old"
    assert not Path(plan.staged).exists()
    assert (root / "config" / "config.json").read_text() == '{"admin": "edited in the System Console"}'
    assert (root / "data" / "users" / "photo.png").read_bytes() == b"png"
    assert (root / "client" / "plugins" / "p1").is_dir() and (root / "client" / "static").is_dir()
    assert (root / "custom-notes.txt").exists() and (root / "certs").is_dir()
    # Moved by rename, never copied: the same inodes, whatever the size of the data.
    assert {name: os.stat(root / name).st_ino for name in inodes} == inodes
    assert not (previous / "data").exists()

    swap_back(plan)
    assert (root / "bin" / "mattermost").read_text() == "old"
    assert {name: os.stat(root / name).st_ino for name in inodes} == inodes
    assert (root / "client" / "plugins" / "p1").is_dir()
    assert not previous.exists()
    assert (Path(plan.staged) / "bin" / "mattermost").read_text() == "new"
    assert not (Path(plan.staged) / "data").exists()


def test_official_swap_in_finishes_after_a_crash_halfway(tmp_path: Path) -> None:
    plan, inodes = _official(tmp_path)
    root, staged = Path(plan.root), Path(plan.staged)
    # Killed after moving two of the preserved entries.
    for name in plan.preserved[:2]:
        os.rename(root / name, staged / name)
    swap_in(plan)
    assert (root / "bin" / "mattermost").read_text() == "new"
    assert {name: os.stat(root / name).st_ino for name in inodes} == inodes
    swap_in(plan)  # again: nothing left to do
    assert (root / "bin" / "mattermost").read_text() == "new"


@pytest.mark.parametrize("crash_point", ["moves", "old-aside", "switched"])
def test_official_swap_back_from_any_point(tmp_path: Path, crash_point: str) -> None:
    plan, inodes = _official(tmp_path)
    root, staged, previous = Path(plan.root), Path(plan.staged), Path(plan.previous)
    for name in plan.preserved[:3]:
        os.rename(root / name, staged / name)
    if crash_point in ("old-aside", "switched"):
        for name in plan.preserved[3:]:
            (staged / name).parent.mkdir(parents=True, exist_ok=True)
            os.rename(root / name, staged / name)
        os.rename(root, previous)
    if crash_point == "switched":
        os.rename(staged, root)
    swap_back(plan)
    swap_back(plan)  # idempotent
    assert (root / "bin" / "mattermost").read_text() == "old"
    assert {name: os.stat(root / name).st_ino for name in inodes} == inodes
    assert not previous.exists()


def test_official_refuses_to_move_over_existing_state(tmp_path: Path) -> None:
    plan, _ = _official(tmp_path)
    (Path(plan.staged) / "config").mkdir()  # the new release's own config was not set aside
    with pytest.raises(SwapError, match="not moving one over the other"):
        swap_in(plan)


def test_versioned_switch_is_one_atomic_link_replace(tmp_path: Path) -> None:
    root = tmp_path / "opt" / "mattermost"
    for name in ("11.9.1-enterprise", "11.10.0-enterprise"):
        (root / "releases" / name).mkdir(parents=True)
    link = root / "current"
    link.symlink_to("releases/11.9.1-enterprise")
    plan = SwapPlan(
        layout="versioned",
        root=str(root),
        staged=str(root / "releases" / "11.10.0-enterprise"),
        current_link=str(link),
        old_target="releases/11.9.1-enterprise",
        new_target="releases/11.10.0-enterprise",
    )
    swap_in(plan)
    assert os.readlink(link) == "releases/11.10.0-enterprise"
    swap_in(plan)
    assert sorted(os.listdir(root)) == ["current", "releases"]  # no temporary link left behind
    swap_back(plan)
    assert os.readlink(link) == "releases/11.9.1-enterprise"
    # A leftover temporary link from a killed run does not get in the way.
    (root / ".current.mmupgrade-new").symlink_to("releases/whatever")
    set_link(link, "releases/11.10.0-enterprise")
    assert os.readlink(link) == "releases/11.10.0-enterprise"
