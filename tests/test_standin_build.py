"""The release stand-in builder makes tarballs shaped, signed and checksummed like the real release site's."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pytest

from tests.standin import build
from tests.standin.build import BuildError, Release, build_release

VERSION = "11.10.0"

# Every entry of the Enterprise tarball, as the real release.mk lays it out (see mattermost-facts.md §4).
ENTERPRISE_MEMBERS = {
    "mattermost/",
    "mattermost/ENTERPRISE-EDITION-LICENSE.txt",
    "mattermost/NOTICE.txt",
    "mattermost/README.md",
    "mattermost/manifest.txt",
    "mattermost/bin/",
    "mattermost/bin/mattermost",
    "mattermost/bin/mmctl",
    "mattermost/client/",
    "mattermost/client/index.html",
    "mattermost/client/root.html",
    "mattermost/client/manifest.json",
    "mattermost/client/static/",
    "mattermost/client/static/main.js",
    "mattermost/config/",
    "mattermost/config/README.md",
    "mattermost/config/cloud_defaults.json",
    "mattermost/config/config.json",
    "mattermost/fonts/",
    "mattermost/fonts/placeholder.ttf",
    "mattermost/i18n/",
    "mattermost/i18n/de.json",
    "mattermost/i18n/en.json",
    "mattermost/logs/",
    "mattermost/prepackaged_plugins/",
    "mattermost/prepackaged_plugins/com.example.standin-demo-1.2.0-linux-amd64.tar.gz",
    "mattermost/prepackaged_plugins/com.example.standin-demo-1.2.0-linux-amd64.tar.gz.sig",
    "mattermost/prepackaged_plugins/com.example.standin-notes-0.4.1-linux-amd64.tar.gz",
    "mattermost/prepackaged_plugins/com.example.standin-notes-0.4.1-linux-amd64.tar.gz.sig",
    "mattermost/templates/",
    "mattermost/templates/reset_body.html",
    "mattermost/templates/welcome_body.html",
}
TEAM_MEMBERS = (
    ENTERPRISE_MEMBERS
    - {"mattermost/ENTERPRISE-EDITION-LICENSE.txt", "mattermost/config/cloud_defaults.json"}
) | {"mattermost/MIT-COMPILED-LICENSE.md"}
EXECUTABLES = {"mattermost/bin/mattermost", "mattermost/bin/mmctl"}


@pytest.fixture(scope="module")
def out_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("standin-out")


@pytest.fixture(scope="module")
def enterprise(out_root: Path) -> Release:
    return build_release(VERSION, out_root)


@pytest.fixture(scope="module")
def team(out_root: Path) -> Release:
    return build_release(VERSION, out_root, edition="team")


def members(release: Release) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(release.tarball, "r:gz") as tar:
        return {(m.name + "/" if m.isdir() else m.name): m for m in tar.getmembers()}


def read_member(release: Release, name: str) -> bytes:
    with tarfile.open(release.tarball, "r:gz") as tar:
        handle = tar.extractfile(name)
        assert handle is not None
        return handle.read()


@pytest.fixture
def extracted(enterprise: Release, tmp_path: Path) -> Path:
    with tarfile.open(enterprise.tarball, "r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / "mattermost"


def gpg_verify(key: Path, signature: Path, data: Path) -> subprocess.CompletedProcess[str]:
    """Verify like an installer handed a key file: import it into an empty keyring, then --verify."""
    # A short home directory: gpg-agent's socket path must fit a unix socket name.
    home = tempfile.mkdtemp(prefix="gpgv-")
    try:
        gpg = ["gpg", "--homedir", home, "--batch", "--no-tty"]
        subprocess.run([*gpg, "--import", str(key)], capture_output=True, check=True)
        return subprocess.run(
            [*gpg, "--status-fd", "1", "--verify", str(signature), str(data)],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        subprocess.run(
            ["gpgconf", "--homedir", home, "--kill", "gpg-agent"], capture_output=True, check=False
        )
        shutil.rmtree(home, ignore_errors=True)


def run_version(install_dir: Path) -> list[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MM_")}
    proc = subprocess.run(
        ["bin/mattermost", "version"],
        check=False,
        cwd=install_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


# ---- layout


def test_enterprise_tarball_is_where_the_release_site_has_it(enterprise: Release, out_root: Path) -> None:
    assert enterprise.tarball == out_root / "releases" / VERSION / f"mattermost-{VERSION}-linux-amd64.tar.gz"
    assert enterprise.signature == enterprise.tarball.with_name(enterprise.tarball.name + ".sig")
    assert enterprise.url_path == f"{VERSION}/mattermost-{VERSION}-linux-amd64.tar.gz"
    with enterprise.tarball.open("rb") as handle:
        assert handle.read(2) == b"\x1f\x8b"  # gzip


def test_enterprise_tarball_has_the_real_layout(enterprise: Release) -> None:
    assert set(members(enterprise)) == ENTERPRISE_MEMBERS


def test_team_tarball_name_and_license(team: Release) -> None:
    assert team.tarball.name == f"mattermost-team-{VERSION}-linux-amd64.tar.gz"
    assert team.url_path == f"{VERSION}/mattermost-team-{VERSION}-linux-amd64.tar.gz"
    assert set(members(team)) == TEAM_MEMBERS


def test_no_runtime_directories_in_tarball(enterprise: Release) -> None:
    names = set(members(enterprise))
    for runtime_dir in ("mattermost/data/", "mattermost/plugins/", "mattermost/client/plugins/"):
        assert runtime_dir not in names
        assert not any(name.startswith(runtime_dir) for name in names)


def test_modes_and_owner_like_a_ci_build(enterprise: Release) -> None:
    for name, info in members(enterprise).items():
        assert (info.uid, info.gid) == (0, 0), name
        assert info.mtime == build.DEFAULT_EPOCH, name
        if info.isdir() or name in EXECUTABLES:
            expected = 0o755
        elif name == "mattermost/config/config.json":
            expected = 0o600
        else:
            expected = 0o644
        assert stat.S_IMODE(info.mode) == expected, name
        assert info.isdir() or info.isfile(), name


def test_config_json_is_the_release_default(enterprise: Release) -> None:
    config = json.loads(read_member(enterprise, "mattermost/config/config.json"))
    assert config["ServiceSettings"]["SiteURL"] == ""


def test_prepackaged_plugins_are_bundles_with_signatures(enterprise: Release, tmp_path: Path) -> None:
    names = [
        n for n in members(enterprise) if n.startswith("mattermost/prepackaged_plugins/") and n[-1] != "/"
    ]
    bundles = [n for n in names if n.endswith(".tar.gz")]
    assert len(bundles) == 2
    for name in bundles:
        bundle = tmp_path / Path(name).name
        bundle.write_bytes(read_member(enterprise, name))
        signature = tmp_path / (bundle.name + ".sig")
        signature.write_bytes(read_member(enterprise, name + ".sig"))
        assert gpg_verify(enterprise.signing_key, signature, bundle).returncode == 0
        plugin_id, version = re.fullmatch(r"(.+)-(\d+\.\d+\.\d+)-linux-amd64\.tar\.gz", bundle.name).groups()
        with tarfile.open(bundle, "r:gz") as tar:
            manifest = json.load(tar.extractfile(f"{plugin_id}/plugin.json"))
            executable = manifest["server"]["executables"]["linux-amd64"]
            assert tar.getmember(f"{plugin_id}/{executable}").isfile()
        assert (manifest["id"], manifest["version"]) == (plugin_id, version)
        assert manifest["name"]


def test_rebuild_gives_identical_members_and_server(out_root: Path) -> None:
    first = build_release("11.9.1", out_root)
    with tarfile.open(first.tarball, "r:gz") as tar:
        before = {m.name: (m.mode, m.mtime, m.size) for m in tar.getmembers()}
    second = build_release("11.9.1", out_root)
    with tarfile.open(second.tarball, "r:gz") as tar:
        after = {m.name: (m.mode, m.mtime, m.size) for m in tar.getmembers()}
    assert before == after
    assert read_member(first, "mattermost/bin/mattermost") == read_member(second, "mattermost/bin/mattermost")


# ---- bin/mattermost and bin/mmctl


def test_zipapp_packages_mmstandin_with_build_json(enterprise: Release) -> None:
    data = read_member(enterprise, "mattermost/bin/mattermost")
    assert data.startswith(b"#!/usr/bin/env python3\n")
    archive = Path(tempfile.mkstemp(suffix=".pyz")[1])
    try:
        archive.write_bytes(data)
        with zipfile.ZipFile(archive) as zipapp:
            names = zipapp.namelist()
            baked = json.loads(zipapp.read("mmstandin/build.json"))
            main = zipapp.read("__main__.py").decode()
    finally:
        archive.unlink()
    assert "mmstandin/cli.py" in names
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
    assert "from mmstandin.cli import main" in main
    assert baked == enterprise.build
    assert baked["version"] == VERSION
    assert baked["build_number"] == VERSION
    assert re.fullmatch(r"[0-9a-f]{40}", baked["build_hash"])
    assert baked["enterprise"] is True
    assert baked["schema_version"] == 1110
    assert baked["failure"] is None
    assert baked["slow_start_seconds"] == 20


def test_mattermost_version_enterprise(extracted: Path) -> None:
    lines = run_version(extracted)
    assert len(lines) == 5
    assert lines[0] == f"Version: {VERSION}"
    assert lines[1] == f"Build Number: {VERSION}"
    assert lines[2].startswith("Build Date: ")
    assert re.fullmatch(r"Build Hash: [0-9a-f]{40}", lines[3])
    assert lines[4] == "Build Enterprise Ready: true"


def test_mattermost_version_team(team: Release, tmp_path: Path) -> None:
    with tarfile.open(team.tarball, "r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    lines = run_version(tmp_path / "mattermost")
    assert lines[0] == f"Version: {VERSION}"
    assert lines[4] == "Build Enterprise Ready: false"


def test_mmctl_answers_version_only(extracted: Path) -> None:
    version = subprocess.run(
        ["bin/mmctl", "version"], check=False, cwd=extracted, capture_output=True, text=True
    )
    assert version.returncode == 0
    assert f"Version:\t{VERSION}" in version.stdout.splitlines()
    other = subprocess.run(
        ["bin/mmctl", "user", "list"], check=False, cwd=extracted, capture_output=True, text=True
    )
    assert other.returncode == 1
    assert "not supported by the stand-in" in other.stderr


def test_build_options_reach_build_json(out_root: Path) -> None:
    release = build_release(
        "11.8.2",
        out_root,
        edition="team",
        failure="slow-start",
        slow_start_seconds=3,
        schema=1107,
        build_number="4242",
    )
    baked = json.loads(_zip_member(read_member(release, "mattermost/bin/mattermost"), "mmstandin/build.json"))
    assert baked["enterprise"] is False
    assert baked["failure"] == "slow-start"
    assert baked["slow_start_seconds"] == 3
    assert baked["schema_version"] == 1107
    assert baked["build_number"] == "4242"


def _zip_member(data: bytes, name: str) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.read(name)


# ---- signature and checksum


def test_signature_verifies_with_exported_key(enterprise: Release, team: Release, out_root: Path) -> None:
    assert enterprise.signing_key == out_root / "signing-key.asc"
    assert enterprise.signing_key.read_text().startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    for release in (enterprise, team):
        result = gpg_verify(release.signing_key, release.signature, release.tarball)
        assert result.returncode == 0, result.stderr
        assert f"[GNUPG:] VALIDSIG {release.fingerprint}" in result.stdout


def test_signature_fails_on_tampered_tarball(enterprise: Release, tmp_path: Path) -> None:
    tampered = tmp_path / enterprise.tarball.name
    data = bytearray(enterprise.tarball.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    result = gpg_verify(enterprise.signing_key, enterprise.signature, tampered)
    assert result.returncode != 0
    assert "[GNUPG:] BADSIG" in result.stdout
    assert "VALIDSIG" not in result.stdout


def test_signature_is_detached_binary(enterprise: Release) -> None:
    data = enterprise.signature.read_bytes()
    assert not data.startswith(b"-----BEGIN")
    assert data[0] & 0x80  # an OpenPGP packet tag, not armor


def test_sha256_file_matches_and_is_not_served(enterprise: Release, out_root: Path) -> None:
    digest = hashlib.sha256(enterprise.tarball.read_bytes()).hexdigest()
    assert enterprise.sha256 == digest
    assert enterprise.sha256_file == out_root / "sha256" / f"{enterprise.tarball.name}.sha256"
    assert enterprise.sha256_file.read_text() == f"{digest}  {enterprise.tarball.name}\n"
    assert not list((out_root / "releases").rglob("*.sha256"))


def test_key_generated_once_and_reused(enterprise: Release, out_root: Path) -> None:
    key_before = enterprise.signing_key.read_bytes()
    again = build_release("11.7.9", out_root)
    assert again.fingerprint == enterprise.fingerprint
    assert again.signing_key.read_bytes() == key_before
    assert (out_root / "signing-key.fingerprint").read_text().strip() == enterprise.fingerprint
    assert stat.S_IMODE((out_root / "gnupg").stat().st_mode) == 0o700
    assert gpg_verify(again.signing_key, again.signature, again.tarball).returncode == 0


def test_separate_roots_get_separate_keys(enterprise: Release, tmp_path: Path) -> None:
    other = build_release("11.7.9", tmp_path)
    assert other.fingerprint != enterprise.fingerprint
    assert gpg_verify(enterprise.signing_key, other.signature, other.tarball).returncode != 0


# ---- input validation and CLI


@pytest.mark.parametrize(
    "version", ["11.10", "v11.10.0", "11.10.0-rc1", "11.010.0", "11.10.x", "", "1.2.3.4"]
)
def test_bad_version_rejected(version: str, tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="invalid version"):
        build_release(version, tmp_path)
    assert not (tmp_path / "releases").exists()


def test_bad_options_rejected(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="invalid edition"):
        build_release(VERSION, tmp_path, edition="community")
    with pytest.raises(BuildError, match="invalid failure mode"):
        build_release(VERSION, tmp_path, failure="crash")
    with pytest.raises(BuildError, match="invalid schema"):
        build_release(VERSION, tmp_path, schema=0)


def test_cli_rejects_bad_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert build.main(["--version", "11.10", "--out", str(tmp_path)]) == 2
    assert "invalid version '11.10'" in capsys.readouterr().err
    assert not (tmp_path / "releases").exists()


def test_cli_many_builds_each_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert build.main(["--many", "11.9.1", "11.10.0", "--edition", "team", "--out", str(tmp_path)]) == 0
    for version in ("11.9.1", "11.10.0"):
        name = f"mattermost-team-{version}-linux-amd64.tar.gz"
        assert (tmp_path / "releases" / version / name).is_file()
        assert (tmp_path / "releases" / version / f"{name}.sig").is_file()
        assert (tmp_path / "sha256" / f"{name}.sha256").is_file()
    assert "signing key" in capsys.readouterr().out


def test_cli_as_module(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "tests.standin.build", "--version", "11.10.0", "--out", str(tmp_path)],
        cwd=repo,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "releases" / "11.10.0" / "mattermost-11.10.0-linux-amd64.tar.gz").is_file()


def test_missing_server_sources_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="server program sources not found"):
        build_release(VERSION, tmp_path, source=tmp_path / "mmstandin")


def test_builder_stops_its_gpg_agent(enterprise: Release) -> None:
    # The builder runs gpg through a short-lived /tmp/standin-gpg-* link; its agent must not outlive it.
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert [line for line in processes.splitlines() if "standin-gpg-" in line] == []
