"""Host filesystem chores shared by staging and swapping: ownership, capabilities, SELinux, space."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from .progress import human_size


class HostError(Exception):
    pass


def chown_tree(root: Path, uid: int, gid: int) -> None:
    """chown -hR: links themselves, never what they point to."""
    os.lchown(root, uid, gid)
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.lchown(os.path.join(directory, name), uid, gid)


def has_net_bind_capability(binary: Path) -> bool:
    """True when the binary carries cap_net_bind_service (setcap after the guide's step 10)."""
    getcap = shutil.which("getcap") or ("/usr/sbin/getcap" if os.path.exists("/usr/sbin/getcap") else None)
    if getcap is None:
        return False
    proc = subprocess.run([getcap, str(binary)], capture_output=True, text=True, check=False)  # noqa: S603
    return "cap_net_bind_service" in proc.stdout


def set_net_bind_capability(binary: Path) -> None:
    # File capabilities live on the inode: a new binary does not inherit them from the one it replaces.
    setcap = shutil.which("setcap") or "/usr/sbin/setcap"
    proc = subprocess.run(  # noqa: S603
        [setcap, "cap_net_bind_service=+ep", str(binary)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise HostError(f"setcap cap_net_bind_service=+ep {binary} failed: {proc.stderr.strip()}")


def selinux_enabled() -> bool:
    if shutil.which("selinuxenabled"):
        return subprocess.run(["selinuxenabled"], check=False).returncode == 0  # noqa: S607
    return os.path.exists("/sys/fs/selinux/enforce")


def restore_selinux_contexts(paths: Iterable[Path]) -> None:
    """restorecon -R: files renamed or unpacked into place keep the label of where they were made."""
    if not selinux_enabled():
        return
    restorecon = shutil.which("restorecon")
    if restorecon is None:
        raise HostError("SELinux is enabled but restorecon is missing (install policycoreutils)")
    existing = [str(p) for p in paths if os.path.lexists(p)]
    if not existing:
        return
    proc = subprocess.run([restorecon, "-R", *existing], capture_output=True, text=True, check=False)  # noqa: S603
    if proc.returncode != 0:
        raise HostError(f"restorecon failed: {proc.stderr.strip()}")


def existing_parent(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists():
        path = path.parent
    return path


def device_of(path: Path) -> int:
    return os.stat(existing_parent(path)).st_dev


def free_bytes(path: Path) -> int:
    stat = os.statvfs(existing_parent(path))
    return stat.f_bavail * stat.f_frsize


def tree_size(path: Path) -> int:
    total = 0
    for directory, _dirnames, filenames in os.walk(path):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except OSError:
                continue
    return total


def check_space(needs: list[tuple[str, Path, int]], margin: int = 64 * 1024 * 1024) -> str | None:
    """Sum what each filesystem must hold; the first shortfall as a message, or None.

    needs: (purpose, directory, bytes) — directories on the same filesystem add up.
    """
    by_device: dict[int, list[tuple[str, Path, int]]] = {}
    for purpose, directory, size in needs:
        by_device.setdefault(device_of(directory), []).append((purpose, directory, size))
    for entries in by_device.values():
        wanted = sum(size for _, _, size in entries) + margin
        free = free_bytes(entries[0][1])
        if free < wanted:
            detail = ", ".join(
                f"{purpose} in {directory} {human_size(size)}" for purpose, directory, size in entries
            )
            return (
                f"not enough disk space on the filesystem of {existing_parent(entries[0][1])}: "
                f"{human_size(wanted)} needed ({detail}, plus a margin), {human_size(free)} free"
            )
    return None
