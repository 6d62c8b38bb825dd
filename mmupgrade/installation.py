"""Find the Mattermost installation to upgrade, and what the server it runs actually uses.

Two layouts are supported (docs/dev/layout.md):
  official   everything in one tree (the tarball guide: /opt/mattermost/{bin,config,data,...})
  versioned  <root>/releases/<V>-<edition>/ and <root>/current -> releases/<V>-<edition> (the role's layout)
The install directory comes from --install-dir, else the unit's WorkingDirectory or ExecStart, else
/opt/mattermost. The version and edition come from the installed binary itself (`mattermost version`).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import Refused
from .settings import ReadDatabaseConfig, Settings, SettingsError, effective_settings
from .unit import UNIT_DIRS, Unit, read_unit, unit_environment
from .versions import Version

DEFAULT_INSTALL_DIR = Path("/opt/mattermost")
OFFICIAL = "official"
VERSIONED = "versioned"


@dataclass
class BinaryInfo:
    version: Version
    build_number: str
    enterprise: bool

    @property
    def edition(self) -> str:
        return "enterprise" if self.enterprise else "team"


@dataclass
class Installation:
    unit: Unit
    layout: str
    root: Path  # official: the tree itself; versioned: the directory holding releases/ and current
    release_dir: Path  # the release tree in service
    working_dir: Path  # the server's working directory
    env: dict[str, str]  # the unit's environment (may hold the data source: never print it)
    settings: Settings
    binary: BinaryInfo

    @property
    def version(self) -> Version:
        return self.binary.version

    @property
    def edition(self) -> str:
        return self.binary.edition

    @property
    def current_link(self) -> Path:
        return self.root / "current"

    @property
    def releases_dir(self) -> Path:
        return self.root / "releases"

    @property
    def environment_files(self) -> list[Path]:
        return [f.path for f in self.unit.environment_files if f.path.is_file()]


def discover(
    install_dir: Path | None,
    unit_name: str = "mattermost",
    unit_dirs: Sequence[Path] = UNIT_DIRS,
    use_systemctl: bool | None = None,
    read_database_config: ReadDatabaseConfig | None = None,
) -> Installation:
    unit = read_unit(unit_name, unit_dirs, use_systemctl)
    candidate = install_dir or _from_unit(unit) or DEFAULT_INSTALL_DIR
    layout, root = detect_layout(candidate)
    release_dir = root if layout == OFFICIAL else (root / "current").resolve()
    if layout == VERSIONED and not release_dir.is_dir():
        raise Refused(
            f"{root / 'current'} points to {release_dir}, which does not exist: fix the symlink first"
        )
    working_dir = unit.working_directory or (root if layout == OFFICIAL else root / "current")
    try:
        env = unit_environment(unit) if unit.found else {}
    except FileNotFoundError as exc:
        raise Refused(
            f"the unit {unit.name} names the environment file {exc.filename}, which does not exist"
        ) from None
    except OSError as exc:
        raise Refused(f"cannot read an environment file of {unit.name}: {exc}") from None
    try:
        settings = effective_settings(env, working_dir, release_dir, read_database_config)
    except SettingsError as exc:
        raise Refused(str(exc)) from None
    binary = read_binary_info(release_dir / "bin" / "mattermost", working_dir)
    return Installation(unit, layout, root, release_dir, working_dir, env, settings, binary)


def _from_unit(unit: Unit) -> Path | None:
    if unit.working_directory is not None:
        return unit.working_directory
    if unit.exec_start:
        binary = Path(unit.exec_start[0])
        if binary.is_absolute() and binary.parent.name == "bin":
            return binary.parent.parent
    return None


def detect_layout(candidate: Path) -> tuple[str, Path]:
    """(layout, root) for a directory that is, or is inside, a Mattermost installation."""
    candidate = Path(os.path.abspath(candidate))
    if candidate.name == "current" and candidate.is_symlink():
        return VERSIONED, candidate.parent
    if (candidate / "current").is_symlink():
        return VERSIONED, candidate
    if candidate.parent.name == "releases" and (candidate.parent.parent / "current").is_symlink():
        return VERSIONED, candidate.parent.parent
    if (candidate / "bin" / "mattermost").is_file():
        return OFFICIAL, candidate
    raise Refused(
        f"no Mattermost installation found at {candidate} (neither bin/mattermost nor a current symlink); "
        "pass --install-dir, or --unit if the service is not called mattermost"
    )


def read_binary_info(binary: Path, working_dir: Path | None = None) -> BinaryInfo:
    """Version and edition from `mattermost version` (it does not touch the database since v6.5)."""
    if not binary.is_file():
        raise Refused(f"{binary} does not exist")
    cwd = working_dir if working_dir is not None and working_dir.is_dir() else binary.parent.parent
    try:
        proc = subprocess.run(  # noqa: S603 - the installed server binary, fixed argv
            [str(binary), "version"],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            cwd=str(cwd),
            # Only what the command needs: the unit's environment holds the database password.
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Refused(f"cannot run {binary} version: {exc}") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise Refused(f"{binary} version failed (exit {proc.returncode}): {last}")
    return parse_version_output(proc.stdout, binary)


def parse_version_output(text: str, binary: Path | str = "mattermost") -> BinaryInfo:
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    version = Version.find(fields.get("Version", ""))
    if version is None:
        raise Refused(f"{binary} version printed no Version: line; is it a Mattermost server binary?")
    build_number = fields.get("Build Number", "")
    # Old dot releases reported X.Y.0 in Version and the real patch in Build Number (facts section 4).
    if version.patch == 0:
        from_build = Version.find(build_number)
        if from_build is not None and (from_build.major, from_build.minor) == (version.major, version.minor):
            version = from_build
    enterprise = fields.get("Build Enterprise Ready", "false").lower() == "true"
    return BinaryInfo(version, build_number, enterprise)
