"""scripts/build-mmupgrade makes one file that runs on the servers' Python: 3.9 (EL9) and 3.11 (Debian 12)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import Mirror, ReleaseFactory, make_host

ROOT = Path(__file__).resolve().parents[2]
PYENV = Path(os.environ.get("PYENV_ROOT", "/root/.pyenv")) / "versions"


def _interpreters() -> list[str]:
    found = [sys.executable]
    for wanted in ("3.9", "3.11"):
        candidates = sorted(PYENV.glob(f"{wanted}.*/bin/python3"))
        if candidates:
            found.append(str(candidates[-1]))
    return found


@pytest.fixture(scope="module")
def pyz() -> Path:
    proc = subprocess.run(
        [str(ROOT / "scripts" / "build-mmupgrade")], capture_output=True, text=True, check=True
    )
    path = Path(proc.stdout.strip().splitlines()[-1])
    assert path == ROOT / "build" / "mmupgrade.pyz"
    return path


def test_the_file(pyz: Path) -> None:
    assert pyz.read_bytes().startswith(b"#!/usr/bin/python3\n")
    assert os.access(pyz, os.X_OK)
    with zipfile.ZipFile(pyz) as archive:
        names = archive.namelist()
        assert all(
            info.compress_type == zipfile.ZIP_DEFLATED for info in archive.infolist() if info.file_size
        )
    assert "__main__.py" in names and "mmupgrade/cli.py" in names
    assert not [name for name in names if "__pycache__" in name or name.startswith("tests/")]


@pytest.mark.parametrize("python", _interpreters())
def test_runs_on_supported_pythons(pyz: Path, python: str) -> None:
    version = subprocess.run([python, str(pyz), "--version"], capture_output=True, text=True, check=False)
    assert (version.returncode, version.stdout.strip()) == (0, "mmupgrade 0.1.0")
    helped = subprocess.run([python, str(pyz), "--help"], capture_output=True, text=True, check=False)
    assert helped.returncode == 0 and "exit codes:" in helped.stdout
    bad = subprocess.run([python, str(pyz), "--to", "x"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2


def test_check_through_the_pyz_on_python_3_9(
    pyz: Path, tmp_path: Path, releases: ReleaseFactory, mirror: Mirror
) -> None:
    """Every module is imported and the discovery and release-list code runs on the oldest Python."""
    candidates = sorted(PYENV.glob("3.9.*/bin/python3"))
    if not candidates:
        pytest.skip("no Python 3.9 under pyenv")
    host = make_host(tmp_path / "host", releases.get("11.9.1"), "versioned", "postgres://u:p@127.0.0.1:9/x")
    proc = subprocess.run(
        [
            str(candidates[-1]),
            str(pyz),
            "--check",
            "--install-dir",
            str(host.root),
            "--unit",
            "no-such-unit-here",
            "--releases-api",
            f"{mirror.url}/api/releases",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 10, proc.stderr
    assert json.loads(proc.stdout)["to"] == "11.10.0"
