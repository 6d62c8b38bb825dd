"""Build stand-in Mattermost release artifacts, laid out like releases.mattermost.com.

    python -m tests.standin.build --version 11.10.0 [--edition enterprise|team] [--failure MODE]
        [--slow-start-seconds N] [--schema N] [--build-number S] --out ROOT
    python -m tests.standin.build --many 11.9.1 11.10.0 --out ROOT

Output (docs/dev/standin-contract.md, "Release artifacts"):

    ROOT/releases/<V>/<tarball>          ROOT/releases/<V>/<tarball>.sig
    ROOT/sha256/<tarball>.sha256         ROOT/signing-key.asc, ROOT/signing-key.fingerprint, ROOT/gnupg/

Tests import build_release() instead. Exit codes: 0 built, 1 build failed, 2 bad arguments, 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .layout import PLUGIN_SPECS, Plugin, plugin_tarball, release_members, sha256_of, write_tar_gz
from .signing import FINGERPRINT_FILE, PUBLIC_KEY_FILE, Signer, SigningError

EDITIONS = ("enterprise", "team")
FAILURE_MODES = ("exit-on-start", "unhealthy", "slow-start")
DEFAULT_SLOW_START_SECONDS = 20
# The server program's sources: helpers outside this module own them, the builder only packages them.
MMSTANDIN_SOURCE = Path(__file__).resolve().parent / "mmstandin"
# Fixed timestamp for archive members (2026-01-01T00:00:00Z) so a rebuild is byte-identical;
# SOURCE_DATE_EPOCH overrides it, as in reproducible-builds.org tooling.
DEFAULT_EPOCH = 1767225600

_VERSION_RE = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")
_ZIPAPP_MAIN = (
    "# bin/mattermost of the Mattermost release stand-in (a Python zipapp).\n"
    "from mmstandin.cli import main\n"
    "\n"
    "raise SystemExit(main())\n"
)


class BuildError(Exception):
    """An expected build failure: bad input, missing server sources, gpg trouble."""


@dataclass(frozen=True)
class Release:
    """One built release tarball and what a test needs to fetch and verify it."""

    version: str
    edition: str
    tarball: Path
    signature: Path
    sha256: str
    sha256_file: Path
    signing_key: Path
    fingerprint: str
    build: dict = field(compare=False)

    @property
    def name(self) -> str:
        return self.tarball.name

    @property
    def url_path(self) -> str:
        """Path below the mirror's base URL, as on releases.mattermost.com: "<V>/<tarball>"."""
        return f"{self.version}/{self.tarball.name}"


def validate_version(version: str) -> tuple[int, int, int]:
    match = _VERSION_RE.fullmatch(version)
    if not match:
        raise BuildError(f"invalid version {version!r}: expected X.Y.Z, digits only (e.g. 11.10.0)")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def tarball_name(version: str, edition: str = "enterprise") -> str:
    if edition == "enterprise":
        return f"mattermost-{version}-linux-amd64.tar.gz"
    if edition == "team":
        return f"mattermost-team-{version}-linux-amd64.tar.gz"
    raise BuildError(f"invalid edition {edition!r}: expected one of {', '.join(EDITIONS)}")


def build_info(
    version: str,
    *,
    edition: str = "enterprise",
    failure: str | None = None,
    schema: int | None = None,
    build_number: str | None = None,
    slow_start_seconds: int = DEFAULT_SLOW_START_SECONDS,
    epoch: int = DEFAULT_EPOCH,
) -> dict:
    """The build.json baked into bin/mattermost."""
    major, minor, _patch = validate_version(version)
    tarball_name(version, edition)
    if failure is not None and failure not in FAILURE_MODES:
        raise BuildError(f"invalid failure mode {failure!r}: expected one of {', '.join(FAILURE_MODES)}")
    if schema is None:
        # Patch releases share their minor's schema, so only a new minor "migrates".
        schema = major * 100 + minor
    if schema < 1:
        raise BuildError(f"invalid schema version {schema}: must be a positive integer")
    if slow_start_seconds < 0:
        raise BuildError(f"invalid --slow-start-seconds {slow_start_seconds}: must not be negative")
    build_number = build_number or version
    identity = f"{version}|{edition}|{build_number}|{schema}|{failure}|{slow_start_seconds}"
    return {
        "version": version,
        "build_number": build_number,
        "build_date": _date_u(epoch),
        "build_hash": hashlib.sha1(identity.encode(), usedforsecurity=False).hexdigest(),
        "enterprise": edition == "enterprise",
        "schema_version": schema,
        "failure": failure,
        "slow_start_seconds": slow_start_seconds,
    }


def _date_u(epoch: int) -> str:
    """The format of `date -u`, which the real build stamps into BuildDate."""
    t = time.gmtime(epoch)
    return time.strftime(f"%a %b {t.tm_mday:2d} %H:%M:%S UTC %Y", t)


def mattermost_zipapp(build: dict, source: Path = MMSTANDIN_SOURCE, epoch: int = DEFAULT_EPOCH) -> bytes:
    """bin/mattermost: the mmstandin package as a zipapp, with build.json inside the package."""
    if source.name != "mmstandin" or not (source / "cli.py").is_file():
        raise BuildError(f"server program sources not found: {source}/cli.py is missing")
    date_time = time.gmtime(max(epoch, 315532800))[:6]  # zip timestamps start in 1980

    def entry(name: str, mode: int = 0o644) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time)
        info.external_attr = (0o100000 | mode) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        return info

    buffer = io.BytesIO()
    buffer.write(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(entry("__main__.py"), _ZIPAPP_MAIN)
        for path in sorted(source.rglob("*")):
            relative = path.relative_to(source)
            if (
                not path.is_file()
                or "__pycache__" in relative.parts
                or path.suffix in {".pyc", ".pyo"}
                or relative.as_posix() == "build.json"
            ):
                continue
            archive.writestr(entry(f"mmstandin/{relative.as_posix()}"), path.read_bytes())
        archive.writestr(entry("mmstandin/build.json"), json.dumps(build, indent=2) + "\n")
    return buffer.getvalue()


def default_config(source: Path = MMSTANDIN_SOURCE) -> dict:
    """config/config.json as shipped: mmstandin's defaults with the release build's edits.

    Read in a child interpreter so this process never imports the server program (tests may load
    it from elsewhere) and a broken checkout surfaces as a BuildError, not an import side effect.
    """
    code = (
        "import json, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from mmstandin.config import default_config\n"
        "json.dump(default_config(), sys.stdout)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code, str(source.parent)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BuildError(f"cannot read default config from {source}/config.py: {last}")
    config = json.loads(proc.stdout)
    # release.mk blanks SiteURL and drops the console log level to INFO for release builds.
    config.setdefault("ServiceSettings", {})["SiteURL"] = ""
    if "ConsoleLevel" in config.get("LogSettings", {}):
        config["LogSettings"]["ConsoleLevel"] = "INFO"
    return config


def build_release(
    version: str,
    out_root: Path | str,
    *,
    edition: str = "enterprise",
    failure: str | None = None,
    schema: int | None = None,
    build_number: str | None = None,
    slow_start_seconds: int = DEFAULT_SLOW_START_SECONDS,
    source: Path | None = None,
    epoch: int | None = None,
) -> Release:
    """Build, sign and checksum one release tarball into out_root; returns where everything is.

    source is the mmstandin package directory to ship as bin/mattermost (default MMSTANDIN_SOURCE);
    epoch is the archive members' mtime (default $SOURCE_DATE_EPOCH, else DEFAULT_EPOCH).
    """
    source = Path(source) if source is not None else MMSTANDIN_SOURCE
    if epoch is None:
        try:
            epoch = int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_EPOCH))
        except ValueError as exc:
            raise BuildError("SOURCE_DATE_EPOCH must be a number of seconds") from exc
    root = Path(out_root).resolve()
    build = build_info(
        version,
        edition=edition,
        failure=failure,
        schema=schema,
        build_number=build_number,
        slow_start_seconds=slow_start_seconds,
        epoch=epoch,
    )
    name = tarball_name(version, edition)
    server = mattermost_zipapp(build, source, epoch)
    config = default_config(source)

    release_dir = root / "releases" / version
    release_dir.mkdir(parents=True, exist_ok=True)
    tarball = release_dir / name
    signature = release_dir / f"{name}.sig"
    partial = release_dir / f".{name}.partial"
    try:
        with Signer(root) as signer:
            plugins = []
            for plugin_id, title, plugin_version in PLUGIN_SPECS:
                data = plugin_tarball(plugin_id, title, plugin_version, epoch)
                plugins.append(Plugin(plugin_id, plugin_version, data, signer.sign_bytes(data)))
            with partial.open("wb") as out:
                write_tar_gz(release_members(build, server, config, plugins), out, epoch)
            signer.sign_file(partial, signature)
            partial.replace(tarball)
            fingerprint = signer.fingerprint
    except SigningError as exc:
        raise BuildError(str(exc)) from exc
    finally:
        partial.unlink(missing_ok=True)

    digest = sha256_of(tarball)
    sums_dir = root / "sha256"
    sums_dir.mkdir(exist_ok=True)
    sha256_file = sums_dir / f"{name}.sha256"
    sha256_file.write_text(f"{digest}  {name}\n")
    return Release(
        version=version,
        edition=edition,
        tarball=tarball,
        signature=signature,
        sha256=digest,
        sha256_file=sha256_file,
        signing_key=root / PUBLIC_KEY_FILE,
        fingerprint=fingerprint,
        build=build,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.standin.build",
        description="Build stand-in Mattermost release tarballs, signatures and checksums.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--version", dest="versions", nargs=1, metavar="X.Y.Z", help="version to build")
    which.add_argument("--many", dest="versions", nargs="+", metavar="X.Y.Z", help="several versions")
    parser.add_argument("--edition", choices=EDITIONS, default="enterprise")
    parser.add_argument("--failure", choices=FAILURE_MODES, help="make bin/mattermost misbehave")
    parser.add_argument("--slow-start-seconds", type=int, default=DEFAULT_SLOW_START_SECONDS)
    parser.add_argument("--schema", type=int, help="schema version (default: major*100 + minor)")
    parser.add_argument("--build-number", help="Build Number (default: the version)")
    parser.add_argument("--out", required=True, type=Path, metavar="ROOT", help="output root")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        for version in args.versions:
            validate_version(version)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        for version in args.versions:
            release = build_release(
                version,
                args.out,
                edition=args.edition,
                failure=args.failure,
                schema=args.schema,
                build_number=args.build_number,
                slow_start_seconds=args.slow_start_seconds,
            )
            print(f"built {release.tarball}")
            print(f"  sha256 {release.sha256}")
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    root = Path(args.out).resolve()
    print(f"signing key {root / PUBLIC_KEY_FILE} (fingerprint in {root / FINGERPRINT_FILE})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
