"""Backup sets: a verified database dump, config, env file and unit; optional data archive; retention."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from mmupgrade.backup import BackupSet, BackupWriter, prune, restore_config_file
from mmupgrade.database import Database, DataSource
from mmupgrade.verify import sha256_of
from tests.conftest import MattermostDatabase


def test_complete_backup_set(mm_database: MattermostDatabase, tmp_path: Path) -> None:
    database = Database(DataSource.parse(mm_database.dsn))
    database.query(
        "CREATE TABLE db_migrations (version bigint PRIMARY KEY, name text); INSERT INTO "
        "db_migrations VALUES (1109, 'x');"
    )
    config = tmp_path / "config.json"
    config.write_text('{"ServiceSettings": {"SiteURL": "https://chat.example.com"}}')
    env_file = tmp_path / "mattermost.env"
    env_file.write_text(f'MM_SQLSETTINGS_DATASOURCE="{mm_database.dsn}"\n')
    data = tmp_path / "data"
    (data / "users" / "u1").mkdir(parents=True)
    (data / "users" / "u1" / "photo.png").write_bytes(b"\x89PNG" * 1000)

    writer = BackupWriter(tmp_path / "backups", "mattermost-11.9.1-to-11.10.0-20260101T000000Z")
    writer.open()
    writer.add_data(data)
    writer.add_database(database)
    writer.add_file(config, "config.json")
    writer.add_file(env_file, "env/mattermost.env")
    writer.note(schema_version=1109)
    assert not writer.final.exists()  # only complete sets carry the final name
    backup = writer.complete()

    assert not writer.partial.exists()
    assert (tmp_path / "backups").stat().st_mode & 0o777 == 0o700
    loaded = BackupSet.load(backup.path)
    assert loaded.schema_version == 1109 and loaded.manifest["complete"] is True
    assert loaded.database_dump is not None and loaded.database_dump.stat().st_mode & 0o777 == 0o600
    for name, entry in loaded.manifest["files"].items():
        assert sha256_of(backup.path / name) == entry["sha256"]
    assert loaded.manifest["dump_entries"]["database.dump"] > 0
    with tarfile.open(backup.path / "data.tar") as archive:
        assert archive.extractfile("data/users/u1/photo.png").read() == b"\x89PNG" * 1000  # type: ignore[union-attr]
    # The manifest never carries the credentials (the env file copy does: the set is root-only).
    assert mm_database.password not in (backup.path / "manifest.json").read_text()


def test_restore_config_file_puts_back_bytes_owner_and_mode(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"original": true}\n')
    os.chmod(config, 0o640)
    writer = BackupWriter(tmp_path / "backups", "mattermost-a-to-b-x")
    writer.open()
    info = config.stat()
    writer.note(config_owner={"uid": info.st_uid, "gid": info.st_gid, "mode": 0o640})
    writer.add_file(config, "config.json")
    backup = writer.complete()
    assert restore_config_file(backup) is False  # unchanged: nothing to do
    config.write_text('{"original": true, "AddedByNewVersion": 1}\n')
    os.chmod(config, 0o600)
    assert restore_config_file(backup) is True
    assert config.read_text() == '{"original": true}\n'
    assert config.stat().st_mode & 0o777 == 0o640


def test_retention_keeps_the_newest(tmp_path: Path) -> None:
    root = tmp_path / "backups"
    made = []
    for index in range(5):
        writer = BackupWriter(root, f"mattermost-{index}-to-{index + 1}-x")
        writer.manifest["created"] = f"2026-01-0{index + 1}T00:00:00Z"
        writer.open()
        made.append(writer.complete().path)
    (root / "unrelated").mkdir()
    removed = prune(root, keep=2, protect=made[0])
    assert sorted(removed) == sorted(made[1:3])
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [made[0].name, made[3].name, made[4].name, "unrelated"]
    )


def test_discard_removes_a_partial_set(tmp_path: Path) -> None:
    writer = BackupWriter(tmp_path, "mattermost-a-to-b-y")
    writer.open()
    (writer.partial / "database.dump").write_bytes(b"half")
    writer.discard()
    assert list(tmp_path.iterdir()) == []


def test_files_in_a_set_are_root_only(tmp_path: Path) -> None:
    source = tmp_path / "mattermost.service"
    source.write_text("[Service]\n")
    os.chmod(source, 0o644)
    writer = BackupWriter(tmp_path / "b", "mattermost-a-to-b-z")
    writer.open()
    writer.add_file(source, "unit/00-mattermost.service")
    assert (writer.partial / "unit" / "00-mattermost.service").stat().st_mode & 0o777 == 0o600
