"""Unpack a verified release tarball without trusting its member names.

Every member is checked before it is written: it must stay under the release's top directory
`mattermost/` (no absolute names, no `..`), links must point inside the tree, and only directories,
regular files and links are allowed (no devices, FIFOs). Owners from the archive are ignored (files
belong to the extracting user) and setuid/setgid/sticky and group/other-write bits are dropped. Where
Python has tarfile's "data" filter (3.12, and security backports to 3.9.17+/3.11.4+) it runs as well.
The archive is read as a stream, so memory stays flat whatever its size.
"""

from __future__ import annotations

import os
import posixpath
import tarfile
from pathlib import Path

TOP_DIR = "mattermost"
_SAFE_MODE_MASK = 0o755  # drops setuid/setgid/sticky and group/other write


class ExtractError(Exception):
    pass


def extract_release(tarball: Path, dest: Path) -> Path:
    """Extract into dest (an empty directory); returns dest/mattermost."""
    dest = dest.resolve()
    has_data_filter = hasattr(tarfile, "data_filter")
    try:
        with tarfile.open(tarball, mode="r|gz") as archive:
            regular_files: set[str] = set()
            for member in archive:
                name = check_member(member, regular_files)
                _check_parents_inside(dest, name)
                _sanitize(member, name)
                if has_data_filter:
                    archive.extract(member, dest, set_attrs=True, filter="data")
                else:
                    archive.extract(member, dest, set_attrs=True)
                if member.isfile():
                    regular_files.add(name)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ExtractError(f"cannot unpack {tarball.name}: {exc}") from None
    top = dest / TOP_DIR
    if not (top / "bin" / "mattermost").is_file():
        raise ExtractError(
            f"{tarball.name} has no {TOP_DIR}/bin/mattermost: it is not a Mattermost server release"
        )
    return top


def check_member(member: tarfile.TarInfo, regular_files: set[str] | frozenset[str] = frozenset()) -> str:
    """The member's normalised name, or ExtractError saying why it must not be extracted."""
    raw = member.name
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        raise ExtractError(f"refusing archive member {raw!r}: absolute path")
    name = posixpath.normpath(raw)
    parts = name.split("/")
    if ".." in raw.split("/") or name.startswith(".."):
        raise ExtractError(f"refusing archive member {raw!r}: path escapes the release directory")
    if parts[0] != TOP_DIR:
        raise ExtractError(f"refusing archive member {raw!r}: outside the release's top directory {TOP_DIR}/")
    if member.isdir() or member.isfile():
        return name
    if member.issym():
        target = member.linkname
        if target.startswith("/"):
            raise ExtractError(f"refusing symlink {raw!r} -> {target!r}: absolute link target")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
        if resolved.split("/")[0] != TOP_DIR or resolved.startswith(".."):
            raise ExtractError(f"refusing symlink {raw!r} -> {target!r}: points outside the release")
        return name
    if member.islnk():
        target = posixpath.normpath(member.linkname)
        if member.linkname.startswith("/") or target.split("/")[0] != TOP_DIR:
            raise ExtractError(
                f"refusing hard link {raw!r} -> {member.linkname!r}: points outside the release"
            )
        if target not in regular_files:
            raise ExtractError(
                f"refusing hard link {raw!r} -> {member.linkname!r}: not a file extracted before it"
            )
        return name
    kind = (
        "device file" if (member.ischr() or member.isblk()) else "FIFO" if member.isfifo() else "special file"
    )
    raise ExtractError(f"refusing archive member {raw!r}: {kind}")


def _check_parents_inside(dest: Path, name: str) -> None:
    """A symlink extracted earlier must not carry a later member outside dest (e.g. dir-link/../x)."""
    parent = os.path.realpath(os.path.join(dest, os.path.dirname(name)))
    if parent != str(dest) and not parent.startswith(str(dest) + os.sep):
        raise ExtractError(f"refusing archive member {name!r}: its directory leads outside the release")


def _sanitize(member: tarfile.TarInfo, name: str) -> None:
    member.name = name
    member.mode &= _SAFE_MODE_MASK
    # Owners in the archive mean nothing on this host; root extracting would otherwise chown to them.
    member.uid = member.gid = os.geteuid() if hasattr(os, "geteuid") else 0
    member.uname = member.gname = ""
