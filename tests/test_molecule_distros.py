"""molecule/distros is molecule/default on Ubuntu and EL 9 hosts: same playbooks, variables and containers.

The scenario cannot run on the build machines (its base images come from a registry), so what can be checked
without running it is checked here, where a drift from molecule/default would otherwise go unnoticed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
MOLECULE = ROOT / "molecule"
TIERS = ["mattermost_database", "mattermost_application", "mattermost_proxy"]
# The base image of every platform the README promises for CI that can pull images.
EXPECTED_IMAGES = {
    "ubuntu2204": "docker.io/library/ubuntu:22.04",
    "ubuntu2404": "docker.io/library/ubuntu:24.04",
    "rockylinux9": "docker.io/rockylinux/rockylinux:9",
    "almalinux9": "docker.io/almalinux/almalinux:9",
    "oraclelinux9": "docker.io/library/oraclelinux:9",
}
# What a systemd host needs from docker here and on CI's runners (tests/bed/README.md says why).
CONTAINER_OPTIONS = (
    "docker_host",
    "command",
    "cgroupns_mode",
    "capabilities",
    "security_opts",
    "volumes",
    "tmpfs",
    "stop_signal",
)


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def distros() -> dict:
    return load(MOLECULE / "distros" / "molecule.yml")


def test_runs_the_default_scenarios_playbooks(distros: dict) -> None:
    playbooks = distros["provisioner"]["playbooks"]
    assert playbooks == {step: f"../default/{step}.yml" for step in ("prepare", "converge", "verify")}
    for playbook in playbooks.values():
        assert (MOLECULE / "distros" / playbook).is_file()


def test_uses_the_default_scenarios_settings(distros: dict) -> None:
    default = load(MOLECULE / "default" / "molecule.yml")["provisioner"]
    assert distros["provisioner"]["env"] == default["env"]
    assert distros["provisioner"]["inventory"]["group_vars"] == default["inventory"]["group_vars"]


def test_platforms_are_the_promised_images_in_every_tier(distros: dict) -> None:
    platforms = {p["name"].removesuffix("-${MOLECULE_SCENARIO_NAME}"): p for p in distros["platforms"]}
    assert {name: p["image"] for name, p in platforms.items()} == EXPECTED_IMAGES
    for platform in platforms.values():
        assert platform["name"].endswith("-${MOLECULE_SCENARIO_NAME}")
        assert platform["groups"] == TIERS
        # Built by molecule from Dockerfile.j2 on top of the public image.
        assert not platform.get("pre_build_image", False)
    assert (MOLECULE / "distros" / "Dockerfile.j2").is_file()


def test_containers_get_the_shared_systemd_options(distros: dict) -> None:
    shared = load(ROOT / ".config" / "molecule" / "config.yml")["platforms"][0]
    expected = {option: shared[option] for option in CONTAINER_OPTIONS}
    for platform in distros["platforms"]:
        assert {option: platform.get(option) for option in CONTAINER_OPTIONS} == expected, platform["name"]
        assert "privileged" not in platform
