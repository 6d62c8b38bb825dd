"""Safe extraction: a real release unpacks; escapes, absolute names, links out and devices are refused."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from mmupgrade.extract import ExtractError, extract_release

from .conftest import ReleaseFactory


@pytest.fixture(params=["data-filter", "own-checks-only"], autouse=True)
def filter_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with tarfile's data filter and, as on Pythons without it, with the own checks only."""
    if request.param == "own-checks-only" and hasattr(tarfile, "data_filter"):
        monkeypatch.delattr(tarfile, "data_filter")
    return str(request.param)


def _tarball(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> Path:
    data = data or {}
    with tarfile.open(path, "w:gz") as archive:
        for member in members:
            payload = data.get(member.name)
            if payload is not None:
                member.size = len(payload)
                archive.addfile(member, io.BytesIO(payload))
            else:
                archive.addfile(member)
    return path


def _member(
    name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "", mode: int = 0o644
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = mode
    return info


def _base_members() -> list[tarfile.TarInfo]:
    return [
        _member("mattermost", tarfile.DIRTYPE, mode=0o755),
        _member("mattermost/bin", tarfile.DIRTYPE, mode=0o755),
    ]


def test_real_release_unpacks(releases: ReleaseFactory, tmp_path: Path) -> None:
    release = releases.get("11.10.0")
    top = extract_release(release.tarball, tmp_path)
    assert top == tmp_path / "mattermost"
    binary = top / "bin" / "mattermost"
    assert binary.is_file() and os.access(binary, os.X_OK)
    assert (top / "config" / "config.json").stat().st_mode & 0o777 == 0o600
    assert all(p.stat().st_uid == os.geteuid() for p in top.rglob("*"))


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (_member("mattermost/../../etc/evil"), "path escapes"),
        (_member("/etc/evil"), "absolute path"),
        (_member("elsewhere/file"), "outside the release's top directory"),
        (
            _member("mattermost/bin/link", tarfile.SYMTYPE, "../../../etc/passwd"),
            "points outside the release",
        ),
        (_member("mattermost/bin/abs", tarfile.SYMTYPE, "/etc/passwd"), "absolute link target"),
        (_member("mattermost/bin/hard", tarfile.LNKTYPE, "/etc/passwd"), "hard link"),
        (_member("mattermost/bin/hard", tarfile.LNKTYPE, "mattermost/../etc/shadow"), "hard link"),
        (
            _member("mattermost/bin/hard", tarfile.LNKTYPE, "mattermost/bin/never-extracted"),
            "not a file extracted before",
        ),
        (_member("mattermost/dev/sda", tarfile.BLKTYPE), "device file"),
        (_member("mattermost/dev/tty", tarfile.CHRTYPE), "device file"),
        (_member("mattermost/fifo", tarfile.FIFOTYPE), "FIFO"),
    ],
)
def test_dangerous_members_are_refused(tmp_path: Path, member: tarfile.TarInfo, reason: str) -> None:
    tarball = _tarball(tmp_path / "evil.tar.gz", [*_base_members(), member])
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ExtractError, match=reason):
        extract_release(tarball, dest)
    assert not (tmp_path / "etc").exists()


def test_symlink_then_file_through_it_is_refused(tmp_path: Path) -> None:
    """A link inside the tree that leads out, used as a directory by a later member."""
    outside = tmp_path / "outside"
    outside.mkdir()
    members = [
        *_base_members(),
        _member("mattermost/up", tarfile.SYMTYPE, "bin/.."),  # fine on its own: stays inside
        _member("mattermost/bin/x", tarfile.REGTYPE),
    ]
    tarball = _tarball(tmp_path / "ok.tar.gz", members, {"mattermost/bin/x": b"x"})
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ExtractError, match="no mattermost/bin/mattermost"):
        extract_release(tarball, dest)  # only refused for not being a release


def test_links_inside_the_tree_and_mode_bits(tmp_path: Path) -> None:
    members = [
        *_base_members(),
        _member("mattermost/bin/mattermost", mode=0o6777),
        _member("mattermost/bin/alias", tarfile.SYMTYPE, "mattermost"),
        _member("mattermost/bin/hardcopy", tarfile.LNKTYPE, "mattermost/bin/mattermost", mode=0o755),
    ]
    tarball = _tarball(tmp_path / "ok.tar.gz", members, {"mattermost/bin/mattermost": b"#!/bin/sh\n"})
    dest = tmp_path / "dest"
    dest.mkdir()
    top = extract_release(tarball, dest)
    binary = top / "bin" / "mattermost"
    assert binary.stat().st_mode & 0o7777 == 0o755  # setuid/setgid and group/other write dropped
    assert os.readlink(top / "bin" / "alias") == "mattermost"
    assert (top / "bin" / "hardcopy").stat().st_ino == binary.stat().st_ino


def test_not_a_tarball(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.tar.gz"
    bogus.write_bytes(b"definitely not gzip")
    with pytest.raises(ExtractError, match="cannot unpack"):
        extract_release(bogus, tmp_path)
