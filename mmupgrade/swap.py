"""Switch the server from the old release to the new one in O(1), and back.

versioned  `current` is replaced atomically by a symlink to the new release (rename of a new link over it).
official   the old tree's state (config, logs, plugins, client/plugins, data, and every custom entry the
           new release does not ship) is moved into the staged tree by rename; the old tree becomes
           <root>.previous-<old version> and the staged tree becomes <root>. Nothing is copied, so the
           time does not depend on the size of the data, and the data directory keeps its inode.

Both directions are idempotent: each move checks where things are before moving, so a run killed
halfway is finished (or undone) by calling the same function again.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .installation import OFFICIAL, VERSIONED

# Kept across upgrades by the official guide ("By default, the following subdirectories will be preserved").
PRESERVED = ("config", "logs", "plugins", "client/plugins", "data")
# What a release tarball ships at its top level, Enterprise or Team (facts section 4): not custom.
RELEASE_ENTRIES = frozenset(
    {
        "bin",
        "client",
        "config",
        "fonts",
        "i18n",
        "logs",
        "prepackaged_plugins",
        "templates",
        "ENTERPRISE-EDITION-LICENSE.txt",
        "MIT-COMPILED-LICENSE.md",
        "NOTICE.txt",
        "README.md",
        "manifest.txt",
    }
)


class SwapError(Exception):
    pass


@dataclass
class SwapPlan:
    layout: str
    root: str
    staged: str  # the new release tree before the switch (versioned: its final place in releases/)
    # versioned
    current_link: str = ""
    old_target: str = ""
    new_target: str = ""
    # official
    previous: str = ""
    shipped_aside: str = ""  # the new release's own config/, logs/ ... that the old ones replace
    preserved: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SwapPlan:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def preserved_entries(old_tree: Path, new_tree: Path) -> list[str]:
    """What moves from the old tree to the new one: the guide's list plus custom entries."""
    names = [name for name in PRESERVED if os.path.lexists(old_tree / name)]
    for entry in sorted(os.listdir(old_tree)):
        if entry in RELEASE_ENTRIES or entry in names or entry.startswith(".mmupgrade"):
            continue
        if os.path.lexists(new_tree / entry):
            continue
        names.append(entry)  # TLS keys, an alternative data directory, Bleve indexes...
    return names


def unmovable_entries(root: Path) -> list[str]:
    """What the official-layout switch could not rename: mount points (rename(2) refuses them).

    The tree itself must share a filesystem with its parent (the new tree is staged beside it), and
    every entry that moves over (data, config, custom directories) must not be a mount of its own.
    """
    problems = []
    device = os.stat(root).st_dev
    if os.stat(root.parent).st_dev != device:
        problems.append(f"{root} (a mount point)")
    for name in sorted(os.listdir(root)):
        if name == "client":
            path = root / "client" / "plugins"
        elif name in RELEASE_ENTRIES and name not in PRESERVED:
            continue  # release files stay with the old tree
        else:
            path = root / name
        if path.is_dir() and not path.is_symlink() and os.stat(path).st_dev != device:
            problems.append(f"{path} (a mount point)")
    return problems


def swap_in(plan: SwapPlan) -> None:
    if plan.layout == VERSIONED:
        set_link(Path(plan.current_link), plan.new_target)
        return
    if plan.layout != OFFICIAL:
        raise SwapError(f"unknown layout {plan.layout!r}")
    root, staged, previous = Path(plan.root), Path(plan.staged), Path(plan.previous)
    if not previous.exists():
        # The old tree is still at root: move its state into the staged tree, then set the old tree aside.
        for name in plan.preserved:
            _move(root / name, staged / name)
        _rename(root, previous)
    if staged.exists():
        _rename(staged, root)
    elif not root.exists():
        raise SwapError(f"neither {staged} nor {root} exists: the new release tree is missing")
    _fsync_parent(root)


def swap_back(plan: SwapPlan) -> None:
    if plan.layout == VERSIONED:
        set_link(Path(plan.current_link), plan.old_target)
        return
    root, staged, previous = Path(plan.root), Path(plan.staged), Path(plan.previous)
    if previous.exists():
        if os.path.lexists(root):
            if staged.exists():
                raise SwapError(f"{root}, {staged} and {previous} all exist: cannot tell which tree is which")
            _rename(root, staged)
        _rename(previous, root)
    for name in plan.preserved:
        _move(staged / name, root / name)
    _fsync_parent(root)


def set_link(link: Path, target: str) -> None:
    """Point link at target atomically (a new symlink renamed over the old one)."""
    if os.path.islink(link) and os.readlink(link) == target:
        return
    temp = link.with_name(f".{link.name}.mmupgrade-new")
    if os.path.lexists(temp):
        os.unlink(temp)
    os.symlink(target, temp)
    os.replace(temp, link)
    _fsync_parent(link)


def _move(source: Path, dest: Path) -> None:
    """Rename source to dest unless that already happened."""
    source_there, dest_there = os.path.lexists(source), os.path.lexists(dest)
    if source_there and dest_there:
        raise SwapError(f"both {source} and {dest} exist: not moving one over the other")
    if source_there:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.rename(source, dest)


def _rename(source: Path, dest: Path) -> None:
    if os.path.lexists(dest):
        raise SwapError(f"{dest} already exists: not moving {source} over it")
    os.rename(source, dest)


def _fsync_parent(path: Path) -> None:
    fd = os.open(str(path.parent), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
