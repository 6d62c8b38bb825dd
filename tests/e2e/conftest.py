"""Fixtures of the mmupgrade end-to-end tests (run alone: `pytest -m e2e tests/e2e`, see README.md).

Session: checks the test bed, builds mmupgrade (scripts/build-mmupgrade -> build/mmupgrade.pyz) and the
stand-in releases, and makes the images every test container starts from (hosts.py). Function: `make_host`
starts one container with Mattermost installed, serving and carrying the smoke test's data, mmupgrade in
/usr/local/sbin and the release mirror running on 127.0.0.1:8000 inside it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.standin.build import build_release

from . import hosts
from .hosts import Bed, HarnessError, Host

REPO = Path(__file__).resolve().parents[2]
PYZ = REPO / "build" / "mmupgrade.pyz"
BUILD_SCRIPT = REPO / "scripts" / "build-mmupgrade"
KEEP = os.environ.get("MME2E_KEEP") == "1"  # keep the containers of failed tests for debugging

OLD, NEW = "11.9.1", "11.10.0"
# Stand-in builds of a slow release: long enough for a second run to find the lock held.
SLOW_START_SECONDS = 8
# The unhealthy release migrates the schema past anything real before it fails its health check, so a
# rollback has to restore the database.
UNHEALTHY_SCHEMA = 1150


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


# Printed at the end of the run (image timings, what each SIGKILL rerun did).
_SUMMARY: list[str] = []


def pytest_terminal_summary(terminalreporter) -> None:
    if _SUMMARY:
        terminalreporter.section("mmupgrade e2e")
        for line in _SUMMARY:
            terminalreporter.write_line(line)


# ------------------------------------------------------------------------------------------- releases


@dataclass(frozen=True)
class Releases:
    """The stand-in mirror roots of this session (each becomes /srv/mirror/<name> in the containers)."""

    roots: dict  # name -> Path of the directory the mirror serves (ROOT/releases)
    signing_key: Path
    other_key: Path
    fingerprint: str
    sha256: dict  # (root name, version, edition) -> hex digest
    airgap_tarball: Path


def _copy_key(src_root: Path, dst_root: Path) -> None:
    """Make dst_root sign with src_root's key (the failing variants are official-looking releases)."""
    dst_root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(
        src_root / "gnupg", dst_root / "gnupg", ignore=shutil.ignore_patterns("S.*", "*.lock", ".#*")
    )
    for name in ("signing-key.asc", "signing-key.fingerprint"):
        shutil.copy2(src_root / name, dst_root / name)


@pytest.fixture(scope="session")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Releases:
    base = tmp_path_factory.mktemp("standin")
    sums = {}

    def build(name: str, version: str, **kwargs) -> None:
        release = build_release(version, base / name, **kwargs)
        sums[(name, version, kwargs.get("edition", "enterprise"))] = release.sha256

    for version in (OLD, NEW, "10.11.17", "11.7.2"):
        build("good", version)
    build("good", NEW, edition="team")
    build("good", OLD, edition="team")
    for name, kwargs in {
        "exit": {"failure": "exit-on-start"},
        "unhealthy": {"failure": "unhealthy", "schema": UNHEALTHY_SCHEMA},
        "slow": {"failure": "slow-start", "slow_start_seconds": SLOW_START_SECONDS},
    }.items():
        _copy_key(base / "good", base / name)
        build(name, OLD)
        build(name, NEW, **kwargs)
    # Signed by another key: the signature is valid, just not from the key mmupgrade is told to trust.
    build("badsig", OLD)
    build("badsig", NEW)
    # A download cut short: the mirror serves the first half of the tarball with the real signature.
    _copy_key(base / "good", base / "trunc")
    shutil.copytree(base / "good" / "releases", base / "trunc" / "releases")
    tarball = base / "trunc" / "releases" / NEW / hosts.tarball_name(NEW)
    data = tarball.read_bytes()
    tarball.write_bytes(data[: len(data) // 2])

    good_key = base / "good" / "signing-key.asc"
    other_key = base / "badsig" / "signing-key.asc"
    if good_key.read_bytes() == other_key.read_bytes():
        raise HarnessError("the bad-signature mirror was signed with the good key")
    return Releases(
        roots={
            name: base / name / "releases"
            for name in ("good", "exit", "unhealthy", "slow", "badsig", "trunc")
        },
        signing_key=good_key,
        other_key=other_key,
        fingerprint=(base / "good" / "signing-key.fingerprint").read_text().strip(),
        sha256=sums,
        airgap_tarball=base / "good" / "releases" / NEW / hosts.tarball_name(NEW),
    )


def _session_files(releases: Releases) -> list[tuple[str, bytes, int]]:
    files = []
    for name, root in releases.roots.items():
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                files.append(
                    (f"{hosts.MIRROR_DIR}/{name}/{path.relative_to(root)}", path.read_bytes(), 0o644)
                )
    tools = {
        "mirror.py": REPO / "tests" / "standin" / "mirror.py",
        "mmsmoke.py": REPO / "tests" / "smoke" / "mmsmoke.py",
        "killer.py": Path(__file__).parent / "killer.py",
    }
    for name, path in tools.items():
        files.append((f"{hosts.TOOLS_DIR}/{name}", path.read_bytes(), 0o755))
    files.append((hosts.SIGNING_KEY, releases.signing_key.read_bytes(), 0o644))
    files.append((hosts.OTHER_KEY, releases.other_key.read_bytes(), 0o644))
    # Air-gapped upgrades: a release and its signature copied onto the server by hand.
    tarball = releases.airgap_tarball
    files.append((f"/root/{tarball.name}", tarball.read_bytes(), 0o644))
    files.append((f"/root/{tarball.name}.sig", Path(f"{tarball}.sig").read_bytes(), 0o644))
    return files


# ---------------------------------------------------------------------------------------------- images


@pytest.fixture(scope="session")
def bed() -> Iterator[Bed]:
    try:
        hosts.require_bed()
    except HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)
    the_bed = Bed()
    try:
        yield the_bed
    finally:
        if the_bed.timings:
            timings = ", ".join(f"{k} {v:.1f}s" for k, v in the_bed.timings.items())
            _SUMMARY.append(f"image timings: {timings}")
        _SUMMARY.extend(the_bed.notes)
        if not KEEP:
            the_bed.cleanup()


@pytest.fixture(scope="session")
def db_password() -> str:
    # Distinct enough to be searched for in mmupgrade's output and logs (secrets must never appear).
    return "pw" + secrets.token_hex(12)


@pytest.fixture(scope="session")
def staged_image(bed: Bed, releases: Releases, db_password: str) -> str:
    return bed.staged_image(_session_files(releases), db_password)


@pytest.fixture(scope="session")
def installed_image(bed: Bed, staged_image: str, db_password: str) -> Callable[[str, str, str], str]:
    cache: dict = {}

    def get(layout: str, version: str, edition: str = "enterprise") -> str:
        key = (layout, version, edition)
        if key not in cache:
            cache[key] = bed.installed_image(staged_image, layout, version, edition, db_password)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def mmupgrade_pyz() -> Path:
    """build/mmupgrade.pyz, built fresh by scripts/build-mmupgrade (MME2E_PYZ=FILE: that file instead)."""
    if os.environ.get("MME2E_PYZ"):
        return Path(os.environ["MME2E_PYZ"]).resolve()
    if not BUILD_SCRIPT.exists():
        pytest.fail(
            f"{BUILD_SCRIPT.relative_to(REPO)} is missing: it builds {PYZ.relative_to(REPO)}", pytrace=False
        )
    proc = subprocess.run([str(BUILD_SCRIPT)], cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail(
            f"scripts/build-mmupgrade failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}",
            pytrace=False,
        )
    if not PYZ.is_file():
        pytest.fail(f"{PYZ} is missing after scripts/build-mmupgrade", pytrace=False)
    return PYZ


# ------------------------------------------------------------------------------------------- test hosts


@pytest.fixture
def make_host(
    request: pytest.FixtureRequest, bed: Bed, installed_image, staged_image: str, db_password: str
) -> Iterator[Callable[..., Host]]:
    """make_host(layout="official", version=OLD, edition="enterprise", mirror="good") -> a ready Host.

    mirror=None: no release mirror runs (air-gapped). layout=None: nothing installed (staged image only).
    with_mmupgrade=False: the harness's own tests, which do not need build/mmupgrade.pyz.
    """
    made: list[Host] = []

    def make(
        layout: str | None = "official",
        version: str = OLD,
        edition: str = "enterprise",
        mirror: str | None = "good",
        with_mmupgrade: bool = True,
    ) -> Host:
        started = time.monotonic()
        image = installed_image(layout, version, edition) if layout else staged_image
        host = bed.start(image, f"{request.node.name}", booted=False)
        made.append(host)
        host.db_password = db_password
        host.layout, host.installed = layout or "", version if layout else ""
        if with_mmupgrade:
            host.install_mmupgrade(request.getfixturevalue("mmupgrade_pyz"))
        if mirror:
            host.start_mirror(mirror)
        if layout:
            host.materialize()
            host.wait_serving(version)
        host.ready_seconds = time.monotonic() - started
        return host

    yield make

    failed = any(
        getattr(request.node, f"rep_{when}", None) is not None and getattr(request.node, f"rep_{when}").failed
        for when in ("setup", "call")
    )
    for host in made:
        if failed:
            try:
                print(host.diagnostics())
                print(
                    f"last mmupgrade stdout: {host.last_stdout[-4000:]}\nstderr: {host.last_stderr[-6000:]}"
                )
            except HarnessError as exc:
                print(f"(no diagnostics: {exc})")
        if failed and KEEP:
            print(f"kept container {host.name} (MME2E_KEEP=1)")
            bed.containers.remove(host.name)
            continue
        bed.remove(host)
