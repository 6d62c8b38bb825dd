"""Prepackaged plugins: unpack <release>/prepackaged_plugins/*.tar.gz into PluginSettings.Directory.

Each bundle holds `<plugin id>/plugin.json` plus the plugin's files. A plugin directory that already
exists is never touched: it may be a newer version an admin installed, and the upgrade guide keeps
plugins/ across upgrades precisely so that nothing there is lost.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MANIFEST = "plugin.json"
# model.IsValidPluginId: 3 to 190 characters of letters, digits, '-', '_' and '.'.
PLUGIN_ID = re.compile(r"^[A-Za-z0-9_.-]{3,190}$")

log = logging.getLogger("mmstandin.plugins")


class PluginBundleError(Exception):
    """A bundle cannot be installed: unreadable, unsafe, or without a usable manifest."""


@dataclass(frozen=True)
class Outcome:
    bundle: str
    plugin_id: str | None
    installed: bool
    reason: str = ""


def install_prepackaged(bundle_dir: Path, plugins_dir: Path) -> list[Outcome]:
    """Install every bundle whose plugin is not present yet; a bad bundle is logged and skipped."""
    outcomes: list[Outcome] = []
    if not bundle_dir.is_dir():
        return outcomes
    for bundle in sorted(bundle_dir.glob("*.tar.gz")):
        try:
            outcome = install_bundle(bundle, plugins_dir)
        except PluginBundleError as exc:
            log.error(
                "failed to install prepackaged plugin",
                extra={"fields": {"path": str(bundle), "error": str(exc)}},
            )
            outcome = Outcome(bundle.name, None, False, str(exc))
        else:
            if outcome.installed:
                log.info("installed prepackaged plugin", extra={"fields": {"plugin_id": outcome.plugin_id}})
            else:
                log.debug(
                    "prepackaged plugin already present, leaving it alone",
                    extra={"fields": {"plugin_id": outcome.plugin_id}},
                )
        outcomes.append(outcome)
    return outcomes


def install_bundle(bundle: Path, plugins_dir: Path) -> Outcome:
    plugins_dir.mkdir(parents=True, exist_ok=True)
    # Unpack next to the destination, then rename: a crash never leaves a half plugin under its id.
    staging = Path(tempfile.mkdtemp(prefix=".prepackaged-", dir=str(plugins_dir)))
    try:
        try:
            with tarfile.open(bundle, "r:gz") as archive:
                top = _single_top_directory(archive)
                _extract_safely(archive, staging)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise PluginBundleError(f"cannot unpack {bundle.name}: {exc}") from None
        plugin_id = _manifest_id(staging / top)
        destination = plugins_dir / plugin_id
        if destination.exists() or destination.is_symlink():
            return Outcome(bundle.name, plugin_id, False, "already present")
        (staging / top).rename(destination)
        return Outcome(bundle.name, plugin_id, True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _single_top_directory(archive: tarfile.TarFile) -> str:
    tops = set()
    for member in archive.getmembers():
        parts = PurePosixPath(member.name).parts  # "./x" and "x" alike; "." alone has no parts
        if parts:
            tops.add(parts[0])
    if len(tops) != 1:
        raise PluginBundleError(f"expected one top-level directory, found {sorted(tops) or 'none'}")
    return tops.pop()


def _manifest_id(plugin_root: Path) -> str:
    manifest_path = plugin_root / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PluginBundleError(f"no readable {MANIFEST}: {exc}") from None
    plugin_id = manifest.get("id") if isinstance(manifest, dict) else None
    if not isinstance(plugin_id, str) or not PLUGIN_ID.match(plugin_id):
        raise PluginBundleError(f"{MANIFEST} has no valid plugin id: {plugin_id!r}")
    return plugin_id


def _extract_safely(archive: tarfile.TarFile, destination: Path) -> None:
    """The tarfile "data" filter where Python has it (3.12, and security releases of 3.9 to 3.11)."""
    if hasattr(tarfile, "data_filter"):
        try:
            archive.extractall(destination, filter="data")
        except tarfile.FilterError as exc:
            raise PluginBundleError(f"unsafe archive member: {exc}") from None
        return
    _extract_regular_members(archive, destination)


def _extract_regular_members(archive: tarfile.TarFile, destination: Path) -> None:
    """Fallback for Pythons without extraction filters: directories and regular files only, inside dest."""
    root = destination.resolve()
    for member in archive.getmembers():
        relative = PurePosixPath(member.name)
        if relative.is_absolute() or ".." in relative.parts:
            raise PluginBundleError(f"unsafe archive member: {member.name}")
        target = (root / relative).resolve()
        if target != root and root not in target.parents:
            raise PluginBundleError(f"unsafe archive member: {member.name}")
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
        elif member.isfile():
            target.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            if source is None:
                raise PluginBundleError(f"cannot read archive member: {member.name}")
            with source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink)
            # Like the data filter: keep execute bits, drop setuid/setgid/sticky and group/other write.
            target.chmod(member.mode & 0o755 | 0o600)
        else:
            raise PluginBundleError(f"unsupported archive member type: {member.name}")
