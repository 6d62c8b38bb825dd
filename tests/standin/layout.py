"""What goes into a stand-in release tarball, and how the tarball is written.

The tree copies the real release's layout (server/build/release.mk: package-prep, package-general,
package-plugins), see shared/reference/mattermost-facts.md section 4. Only `bin/mattermost` does
anything; every other file is a small placeholder that is honest about being one.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

TOP_DIR = "mattermost"
DIR_MODE = 0o755
FILE_MODE = 0o644
EXEC_MODE = 0o755
CONFIG_MODE = 0o600

_PLACEHOLDER = "This file is a placeholder in a test stand-in for a Mattermost release; it is not Mattermost."


@dataclass(frozen=True)
class Member:
    """One archive entry; path is relative to the archive root, data None means a directory."""

    path: str
    data: bytes | None = None
    mode: int = FILE_MODE


@dataclass(frozen=True)
class Plugin:
    """A prepackaged plugin: its tarball and the detached signature of that tarball."""

    plugin_id: str
    version: str
    tarball: bytes
    signature: bytes

    @property
    def file_name(self) -> str:
        return f"{self.plugin_id}-{self.version}-linux-amd64.tar.gz"


# Two plugins, like the real tarball ships several; their ids are made up so nobody mistakes them.
PLUGIN_SPECS = (
    ("com.example.standin-demo", "Stand-in Demo", "1.2.0"),
    ("com.example.standin-notes", "Stand-in Notes", "0.4.1"),
)


def write_tar_gz(members: Iterable[Member], out: BinaryIO, mtime: int) -> None:
    """Write a gzip'd tar like a CI build does: owner root, fixed mtimes, parents before children."""
    by_path: dict[str, Member] = {}
    for member in members:
        by_path[member.path] = member
        parent = member.path.rpartition("/")[0]
        while parent and parent not in by_path:
            by_path[parent] = Member(parent, None, DIR_MODE)
            parent = parent.rpartition("/")[0]
    # mtime=0 and no file name in the gzip header keep rebuilds byte-identical.
    gz = gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="")
    with gz, tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path in sorted(by_path):
            member = by_path[path]
            info = tarfile.TarInfo(path + "/" if member.data is None else path)
            info.mtime = mtime
            info.mode = member.mode
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if member.data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(member.data)
                tar.addfile(info, io.BytesIO(member.data))


def tar_gz_bytes(members: Iterable[Member], mtime: int) -> bytes:
    buffer = io.BytesIO()
    write_tar_gz(members, buffer, mtime)
    return buffer.getvalue()


def plugin_tarball(plugin_id: str, name: str, version: str, mtime: int) -> bytes:
    """A plugin bundle as the server expects it: `<id>/plugin.json` plus the executable it names."""
    executable = "server/dist/plugin-linux-amd64"
    manifest = {
        "id": plugin_id,
        "name": name,
        "description": "Placeholder plugin bundled with the Mattermost release stand-in.",
        "version": version,
        "min_server_version": "9.0.0",
        "server": {"executables": {"linux-amd64": executable}},
    }
    script = f"#!/bin/sh\necho '{plugin_id} {version}: {_PLACEHOLDER}' >&2\nexit 1\n"
    return tar_gz_bytes(
        [
            Member(f"{plugin_id}/plugin.json", _json(manifest)),
            Member(f"{plugin_id}/{executable}", script.encode(), EXEC_MODE),
            Member(f"{plugin_id}/README.md", f"# {name}\n\n{_PLACEHOLDER}\n".encode()),
        ],
        mtime,
    )


def mmctl_script(build: dict) -> bytes:
    """`bin/mmctl`: answers `mmctl version`, refuses everything else."""
    return f'''#!/usr/bin/env python3
"""mmctl of the Mattermost release stand-in: only `mmctl version` is implemented."""
import sys

VERSION = {build["version"]!r}
BUILD_DATE = {build["build_date"]!r}
BUILD_HASH = {build["build_hash"]!r}


def main(argv):
    if argv[:1] == ["version"]:
        print("mmctl:")
        print("Version:\\t" + VERSION)
        print("BuiltDate:\\t" + BUILD_DATE)
        print("GitCommit:\\t" + BUILD_HASH)
        print("GitTreeState:\\tclean")
        print("Platform:\\tlinux/amd64")
        return 0
    print("mmctl " + " ".join(argv) + ": not supported by the stand-in", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''.encode()


def release_members(
    build: dict, mattermost_bin: bytes, config: dict, plugins: Iterable[Plugin]
) -> list[Member]:
    """Every entry of the release tarball, under the top directory `mattermost/`."""
    version = build["version"]
    enterprise = bool(build["enterprise"])
    edition = "Enterprise Edition" if enterprise else "Team Edition"
    files: list[Member] = [
        Member("bin/mattermost", mattermost_bin, EXEC_MODE),
        Member("bin/mmctl", mmctl_script(build), EXEC_MODE),
        Member("config/config.json", _json(config), CONFIG_MODE),
        Member("config/README.md", _text("# Configuration", "config.json holds the server settings.")),
        Member("client/root.html", _html(f"Mattermost {version}", '<script src="/static/main.js"></script>')),
        Member("client/index.html", _html(f"Mattermost {version}", "")),
        Member("client/static/main.js", f"/* Mattermost stand-in web app {version} */\n".encode()),
        Member("client/manifest.json", _json({"name": "Mattermost", "short_name": "Mattermost"})),
        Member("fonts/placeholder.ttf", f"{_PLACEHOLDER}\n".encode()),
        Member("templates/welcome_body.html", _html("Welcome", "Welcome to Mattermost.")),
        Member("templates/reset_body.html", _html("Reset your password", "A password reset was requested.")),
        Member("i18n/en.json", _json([{"id": "api.standin.placeholder", "translation": "Stand-in"}])),
        Member("i18n/de.json", _json([{"id": "api.standin.placeholder", "translation": "Platzhalter"}])),
        Member("logs", None, DIR_MODE),
        Member("prepackaged_plugins", None, DIR_MODE),
        Member("NOTICE.txt", _text("NOTICE", "Third-party notices would be listed here.")),
        Member("README.md", _text(f"Mattermost {edition} {version}", "Test stand-in release.")),
    ]
    if enterprise:
        files.append(Member("config/cloud_defaults.json", _json({"ServiceSettings": {}})))
        files.append(Member("ENTERPRISE-EDITION-LICENSE.txt", _text("Enterprise Edition License", "")))
    else:
        files.append(Member("MIT-COMPILED-LICENSE.md", _text("MIT compiled license", "")))
    for plugin in plugins:
        files.append(Member(f"prepackaged_plugins/{plugin.file_name}", plugin.tarball))
        files.append(Member(f"prepackaged_plugins/{plugin.file_name}.sig", plugin.signature))
    files.append(Member("manifest.txt", _manifest(files)))
    top = Member(TOP_DIR, None, DIR_MODE)
    return [top, *(Member(f"{TOP_DIR}/{m.path}", m.data, m.mode) for m in files)]


def _manifest(files: list[Member]) -> bytes:
    lines = [f"{hashlib.sha256(m.data).hexdigest()}  {m.path}" for m in files if m.data is not None]
    return ("\n".join(sorted(lines, key=lambda line: line[66:])) + "\n").encode()


def _json(value: object) -> bytes:
    return (json.dumps(value, indent=2) + "\n").encode()


def _text(title: str, body: str) -> bytes:
    return "\n\n".join(part for part in (title, body, _PLACEHOLDER) if part).encode() + b"\n"


def _html(title: str, body: str) -> bytes:
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>\n'
        f"<body><p>{body}</p><!-- {_PLACEHOLDER} --></body></html>\n"
    ).encode()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
