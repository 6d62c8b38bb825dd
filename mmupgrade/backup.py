"""The backup set taken before the switch: database dump, configuration, env file and unit.

One directory per upgrade under the backup directory (root-only), written as `.<name>.partial` and
renamed when complete, with a manifest.json listing every file and its SHA-256. The dump is proven
readable with pg_restore --list before the set counts as complete. The data directory is optional
(--backup-data): the upgrade moves it by rename and never rewrites it.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .database import Database, DatabaseError
from .journal import write_atomically
from .progress import Progress, human_size
from .verify import sha256_of

MANIFEST = "manifest.json"
DATABASE_DUMP = "database.dump"
CONFIG_DATABASE_DUMP = "config-database.dump"
CONFIG_COPY = "config.json"
DATA_ARCHIVE = "data.tar"
PREFIX = "mattermost-"

ProgressFactory = Callable[[str, int], Optional[Progress]]


class BackupError(Exception):
    pass


@dataclass
class BackupSet:
    path: Path
    manifest: dict[str, Any]

    @property
    def database_dump(self) -> Path | None:
        return self.path / DATABASE_DUMP if DATABASE_DUMP in self.manifest.get("files", {}) else None

    @property
    def config_copy(self) -> Path | None:
        return self.path / CONFIG_COPY if CONFIG_COPY in self.manifest.get("files", {}) else None

    @property
    def schema_version(self) -> int | None:
        value = self.manifest.get("schema_version")
        return int(value) if value is not None else None

    @classmethod
    def load(cls, path: Path) -> BackupSet:
        try:
            manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BackupError(f"the backup {path} has no readable {MANIFEST}: {exc}") from None
        return cls(path, manifest)


def backup_name(from_version: str, to_version: str) -> str:
    return f"{PREFIX}{from_version}-to-{to_version}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"


class BackupWriter:
    """Fills one backup set; the set exists under its final name only after complete()."""

    def __init__(self, backup_root: Path, name: str, manifest: dict[str, Any] | None = None) -> None:
        self.root = backup_root
        self.final = backup_root / name
        self.partial = backup_root / f".{name}.partial"
        self.manifest: dict[str, Any] = {
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "files": {},
        }
        self.manifest.update(manifest or {})

    def open(self) -> None:
        """Create the partial directory (idempotent: the data archive may have opened it already)."""
        if self.partial.is_dir():
            return
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        self.partial.mkdir(mode=0o700)
        self._save_manifest()

    def _record(self, name: str, source: str | None = None) -> None:
        self.manifest["files"][name] = {"sha256": sha256_of(self.partial / name), "source": source}
        self._save_manifest()

    def _save_manifest(self) -> None:
        write_atomically(self.partial / MANIFEST, json.dumps(self.manifest, indent=2) + "\n")

    def add_file(self, source: Path, name: str) -> None:
        dest = self.partial / name
        dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copy2(source, dest)
        os.chmod(dest, 0o600)
        self._record(name, str(source))

    def add_database(
        self, database: Database, name: str = DATABASE_DUMP, progress: ProgressFactory | None = None
    ) -> None:
        dest = self.partial / name
        try:
            expected = database.size_bytes()
        except DatabaseError:
            expected = 0  # only the progress bar needs it; the dump itself will say what is wrong
        database.dump(dest, progress=progress, expected_size=expected)
        os.chmod(dest, 0o600)
        entries = database.list_dump(dest)
        if not entries:
            raise BackupError(f"the database dump {dest} lists no objects: refusing to rely on it")
        self.manifest.setdefault("dump_entries", {})[name] = len(entries)
        self._record(name, f"database {database.source.database}")

    def add_data(self, data_dir: Path, progress: ProgressFactory | None = None) -> None:
        """tar of the data directory (no compression: attachments are mostly compressed already)."""
        total = sum(os.lstat(os.path.join(d, f)).st_size for d, _, files in os.walk(data_dir) for f in files)
        bar = progress(f"backing up {data_dir}", total) if progress else None
        dest = self.partial / DATA_ARCHIVE
        done = 0
        with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as archive:
            archive.add(data_dir, arcname="data", recursive=False)
            for directory, dirnames, filenames in os.walk(data_dir):
                dirnames.sort()
                for name in sorted(dirnames) + sorted(filenames):
                    path = os.path.join(directory, name)
                    archive.add(
                        path, arcname=os.path.join("data", os.path.relpath(path, data_dir)), recursive=False
                    )
                    if name in filenames:
                        done += os.lstat(path).st_size
                        if bar is not None:
                            bar.update(done)
        os.chmod(dest, 0o600)
        if bar is not None:
            bar.finish(f"backed up {data_dir} ({human_size(total)})")
        self._record(DATA_ARCHIVE, str(data_dir))

    def note(self, **fields: Any) -> None:
        self.manifest.update(fields)
        self._save_manifest()

    def complete(self) -> BackupSet:
        self.manifest["complete"] = True
        self._save_manifest()
        os.rename(self.partial, self.final)
        return BackupSet(self.final, self.manifest)

    def discard(self) -> None:
        shutil.rmtree(self.partial, ignore_errors=True)


def restore_config_file(backup: BackupSet) -> bool:
    """Put the backed-up config.json back if it changed; True when it was rewritten.

    The new version adds its own keys to config.json at start; the old one must get its file back
    byte for byte, with the same owner and mode.
    """
    copy = backup.config_copy
    original = backup.manifest.get("files", {}).get(CONFIG_COPY, {}).get("source")
    if copy is None or not original:
        return False
    target = Path(original)
    if target.exists() and sha256_of(target) == sha256_of(copy):
        return False
    owner = backup.manifest.get("config_owner") or {}
    temp = target.with_name(f".{target.name}.mmupgrade-restore")
    shutil.copyfile(copy, temp)
    os.chmod(temp, int(owner.get("mode", 0o600)))
    if "uid" in owner:
        os.chown(temp, int(owner["uid"]), int(owner["gid"]))
    os.replace(temp, target)
    return True


def prune(backup_root: Path, keep: int, protect: Path | None = None) -> list[Path]:
    """Delete complete backup sets beyond the newest `keep`; returns what was removed."""
    if not backup_root.is_dir():
        return []
    sets = []
    for entry in backup_root.iterdir():
        if entry.name.startswith(PREFIX) and (entry / MANIFEST).is_file():
            try:
                created = json.loads((entry / MANIFEST).read_text(encoding="utf-8")).get("created", "")
            except (OSError, ValueError):
                continue
            sets.append((created, entry))
    sets.sort(reverse=True)
    removed = []
    for _created, entry in sets[max(keep, 1) :]:
        if protect is not None and entry == protect:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed
