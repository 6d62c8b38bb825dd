"""Prepackaged plugins are unpacked into the plugins directory, safely and without overwriting anything."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.standin.mmstandin import plugins


def bundle(path: Path, plugin_id: str, version: str = "1.0.0", top: str | None = None) -> Path:
    """A plugin tarball like the release's prepackaged_plugins/*.tar.gz: <id>/plugin.json + files."""
    top = top or plugin_id
    files = {
        f"{top}/plugin.json": json.dumps({"id": plugin_id, "version": version}).encode(),
        f"{top}/server/dist/plugin-linux-amd64": b"#!/bin/sh\nexit 0\n",
    }
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.endswith("amd64") else 0o644
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    bundles, installed = tmp_path / "prepackaged_plugins", tmp_path / "plugins"
    bundles.mkdir()
    return bundles, installed


def test_bundles_are_unpacked_by_plugin_id(dirs: tuple[Path, Path]) -> None:
    bundles, installed = dirs
    bundle(bundles / "com.example.one-1.0.0-linux-amd64.tar.gz", "com.example.one")
    # The top directory name does not matter; the manifest's id does.
    bundle(bundles / "two.tar.gz", "com.example.two", top="whatever")
    (bundles / "com.example.one-1.0.0-linux-amd64.tar.gz.sig").write_bytes(b"signature")

    outcomes = plugins.install_prepackaged(bundles, installed)

    assert [(o.plugin_id, o.installed) for o in outcomes] == [
        ("com.example.one", True),
        ("com.example.two", True),
    ]
    manifest = json.loads((installed / "com.example.one" / "plugin.json").read_text())
    assert manifest["id"] == "com.example.one"
    executable = installed / "com.example.two" / "server" / "dist" / "plugin-linux-amd64"
    assert executable.stat().st_mode & 0o100
    assert sorted(p.name for p in installed.iterdir()) == ["com.example.one", "com.example.two"]


def test_existing_plugin_directory_is_left_untouched(dirs: tuple[Path, Path]) -> None:
    bundles, installed = dirs
    bundle(bundles / "one.tar.gz", "com.example.one", version="2.0.0")
    existing = installed / "com.example.one"
    existing.mkdir(parents=True)
    (existing / "plugin.json").write_text('{"id": "com.example.one", "version": "9.9.9"}')
    (existing / "admin-notes.txt").write_text("mine")

    outcomes = plugins.install_prepackaged(bundles, installed)

    assert [(o.plugin_id, o.installed) for o in outcomes] == [("com.example.one", False)]
    assert json.loads((existing / "plugin.json").read_text())["version"] == "9.9.9"
    assert (existing / "admin-notes.txt").read_text() == "mine"
    assert not (existing / "server").exists()


def test_second_run_installs_nothing(dirs: tuple[Path, Path]) -> None:
    bundles, installed = dirs
    bundle(bundles / "one.tar.gz", "com.example.one")
    plugins.install_prepackaged(bundles, installed)
    assert [o.installed for o in plugins.install_prepackaged(bundles, installed)] == [False]


def test_bad_bundles_are_skipped_and_good_ones_installed(dirs: tuple[Path, Path]) -> None:
    bundles, installed = dirs
    (bundles / "a-broken.tar.gz").write_bytes(b"not a tarball")
    bundle(bundles / "b-bad-id.tar.gz", "../../escape")
    with tarfile.open(bundles / "c-no-manifest.tar.gz", "w:gz") as archive:
        info = tarfile.TarInfo("thing/readme.txt")
        archive.addfile(info, io.BytesIO(b""))
    bundle(bundles / "d-good.tar.gz", "com.example.good")

    outcomes = plugins.install_prepackaged(bundles, installed)

    assert [o.installed for o in outcomes] == [False, False, False, True]
    assert sorted(p.name for p in installed.iterdir()) == ["com.example.good"]


def test_path_traversal_is_refused(dirs: tuple[Path, Path]) -> None:
    bundles, installed = dirs
    with tarfile.open(bundles / "evil.tar.gz", "w:gz") as archive:
        manifest = json.dumps({"id": "com.example.evil"}).encode()
        info = tarfile.TarInfo("com.example.evil/plugin.json")
        info.size = len(manifest)
        archive.addfile(info, io.BytesIO(manifest))
        link = tarfile.TarInfo("com.example.evil/escape")
        link.type = tarfile.SYMTYPE
        link.linkname = "../../../outside"
        archive.addfile(link)
        payload = tarfile.TarInfo("com.example.evil/escape/pwned")
        archive.addfile(payload, io.BytesIO(b""))

    outcomes = plugins.install_prepackaged(bundles, installed)

    assert [o.installed for o in outcomes] == [False]
    assert not (installed.parent.parent / "outside").exists()
    assert list(installed.iterdir()) == []


def test_fallback_extraction_without_filters(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pythons without tarfile.data_filter take the hand-written safe path."""
    bundles, installed = dirs
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    bundle(bundles / "one.tar.gz", "com.example.one")
    with tarfile.open(bundles / "two.tar.gz", "w:gz") as archive:
        info = tarfile.TarInfo("../com.example.two/plugin.json")
        archive.addfile(info, io.BytesIO(b""))

    outcomes = plugins.install_prepackaged(bundles, installed)

    assert [o.installed for o in outcomes] == [True, False]
    assert (installed / "com.example.one" / "server" / "dist" / "plugin-linux-amd64").stat().st_mode & 0o100


def test_missing_bundle_directory_is_fine(tmp_path: Path) -> None:
    assert plugins.install_prepackaged(tmp_path / "absent", tmp_path / "plugins") == []
