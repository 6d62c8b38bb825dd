"""The build information baked into `bin/mattermost` by the release builder (mmstandin/build.json)."""

from __future__ import annotations

import json
import pkgutil
import re

FAILURE_MODES = ("exit-on-start", "unhealthy", "slow-start")

# What a local `go build` of the real server reports: version "dev"-ish, no build date.
DEV_BUILD = {
    "version": "0.0.0-dev",
    "build_number": "dev",
    "build_date": "n/a",
    "build_hash": "dev",
    "enterprise": False,
    # 1 rather than 0 so a dev build still creates its tables on first start.
    "schema_version": 1,
    "failure": None,
    "slow_start_seconds": 20,
}


class BuildInfoError(Exception):
    """build.json exists but cannot be used."""


def load() -> dict:
    """Return build.json merged over the dev defaults; works from a zipapp and from a source tree."""
    # pkgutil.get_data goes through the package's loader, so it reads from inside the zipapp as well.
    try:
        raw = pkgutil.get_data(__package__ or "mmstandin", "build.json")
    except OSError:
        raw = None
    if raw is None:
        return dict(DEV_BUILD)
    try:
        baked = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise BuildInfoError(f"build.json is not valid JSON: {exc}") from exc
    return normalise(baked)


def normalise(baked: dict) -> dict:
    """Fill keys the builder left out and check the ones the server acts on."""
    build = {**DEV_BUILD, **baked}
    if "schema_version" not in baked:
        build["schema_version"] = default_schema_version(str(build["version"]))
    if build["failure"] is not None and build["failure"] not in FAILURE_MODES:
        raise BuildInfoError(f"build.json failure {build['failure']!r} is not one of {FAILURE_MODES}")
    build["schema_version"] = max(1, int(build["schema_version"]))
    return build


def version_tuple(version: str) -> tuple[int, int, int]:
    """(major, minor, patch) of a version such as "11.10.0" or "0.0.0-dev"; missing parts are 0."""
    match = re.match(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", version)
    if not match:
        return (0, 0, 0)
    return (int(match.group(1)), int(match.group(2) or 0), int(match.group(3) or 0))


def default_schema_version(version: str) -> int:
    """major*100 + minor: patch releases of one minor line share a schema, as in the contract."""
    major, minor, _patch = version_tuple(version)
    return major * 100 + minor


def version_lines(build: dict) -> list[str]:
    """The five lines `mattermost version` prints (server/cmd/mattermost/commands/version.go)."""
    return [
        f"Version: {build['version']}",
        f"Build Number: {build['build_number']}",
        f"Build Date: {build['build_date']}",
        f"Build Hash: {build['build_hash']}",
        f"Build Enterprise Ready: {'true' if build['enterprise'] else 'false'}",
    ]
