"""The release list: GitHub's shape from the stand-in mirror, pagination, prereleases, static files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmupgrade.net import get_json
from mmupgrade.releases import (
    ReleaseListError,
    fetch_release_list,
    newest_version,
    parse_tarball_name,
    stable_versions,
    tarball_url,
)
from mmupgrade.versions import Version

from .conftest import Mirror, start_mirror, stop_mirror


@pytest.fixture(scope="module")
def busy_mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    """A mirror with 130 releases (more than one page of 100), a prerelease on top and a non-version dir."""
    root = tmp_path_factory.mktemp("busy") / "releases"
    for minor in range(130):
        (root / f"9.{minor}.0").mkdir(parents=True)
    (root / "11.12.0-rc1").mkdir()
    (root / "11.11.1").mkdir()
    (root / "not-a-version").mkdir()
    running = start_mirror(root, tmp_path_factory.mktemp("busy-port") / "port")
    yield running
    stop_mirror(running)


def test_newest_from_the_stand_in_mirror(mirror: Mirror) -> None:
    assert newest_version(f"{mirror.url}/api/releases") == Version(11, 10, 0)


def test_pagination_reads_every_page_and_skips_prereleases(busy_mirror: Mirror) -> None:
    requested: list[str] = []

    def fetch(url: str) -> tuple[object, object]:
        requested.append(url)
        return get_json(url)

    releases = fetch_release_list(f"{busy_mirror.url}/api/releases", fetch)
    assert len(requested) == 2  # 132 releases at 100 per page, following the Link header
    assert "per_page=100" in requested[0]
    assert len(releases) == 132
    versions = stable_versions(releases)
    assert versions[0] == Version(11, 11, 1)  # 11.12.0-rc1 is a prerelease
    assert Version(9, 0, 0) in versions and len(versions) == 131


def test_static_file_with_the_same_shape(tmp_path: Path) -> None:
    """A static file ignores ?page=: paging stops when a page brings nothing new."""
    listing = [{"tag_name": f"v10.{n}.0", "draft": False, "prerelease": False} for n in range(100)] + [
        {"tag_name": "v11.0.1", "draft": False, "prerelease": False}
    ]
    listing_file = tmp_path / "releases.json"
    listing_file.write_text(json.dumps(listing))
    calls = []

    def fetch(url: str) -> tuple[object, object]:
        calls.append(url)
        return json.loads(listing_file.read_text()), {}

    assert newest_version("https://mirror.example/releases.json", fetch) == Version(11, 0, 1)
    assert len(calls) == 2


def test_drafts_odd_tags_and_semver_order() -> None:
    releases = [
        {"tag_name": "v11.7.9", "draft": False, "prerelease": False},  # ESR patch published last
        {"tag_name": "v11.10.0", "draft": False, "prerelease": False},
        {"tag_name": "v11.11.0", "draft": True, "prerelease": False},
        {"tag_name": "v11.12.0-rc1", "draft": False, "prerelease": True},
        {"tag_name": "mobile-v2.0.0", "draft": False, "prerelease": False},
        {"tag_name": "v11.10", "draft": False, "prerelease": False},
        "not an object",
    ]
    assert stable_versions(releases) == [Version(11, 10, 0), Version(11, 7, 9)]


def test_single_release_object_is_accepted() -> None:
    def fetch(url: str) -> tuple[object, object]:
        return {"tag_name": "v11.10.0", "draft": False, "prerelease": False}, {}

    assert newest_version("https://example.invalid/releases/latest", fetch) == Version(11, 10, 0)


def test_empty_or_unreachable_list_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ReleaseListError, match="no stable"):
        newest_version("x", lambda url: ([], {}))
    with pytest.raises(ReleaseListError, match="cannot read the release list"):
        newest_version("http://127.0.0.1:9/api/releases")


def test_tarball_names_and_urls() -> None:
    version = Version(11, 10, 0)
    assert tarball_url("https://releases.mattermost.com/", version, "enterprise", "amd64") == (
        "https://releases.mattermost.com/11.10.0/mattermost-11.10.0-linux-amd64.tar.gz"
    )
    assert (
        tarball_url("https://r", version, "team", "arm64")
        == "https://r/11.10.0/mattermost-team-11.10.0-linux-arm64.tar.gz"
    )
    assert parse_tarball_name("mattermost-team-11.10.0-linux-amd64.tar.gz") == (version, "team")
    assert parse_tarball_name("mattermost-11.10.0-linux-amd64.tar.gz") == (version, "enterprise")
    assert parse_tarball_name("release.tar.gz") is None
