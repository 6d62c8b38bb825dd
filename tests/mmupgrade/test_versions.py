"""Version ordering, the known-bad upgrade path and the PostgreSQL minimum per target."""

from __future__ import annotations

import pytest

from mmupgrade.errors import Refused
from mmupgrade.versions import Version, check_upgrade_path, known_bad_path, minimum_postgres_major


def test_parse_and_order_numerically() -> None:
    versions = [Version.parse(v) for v in ("11.10.0", "11.9.1", "v11.9.10", "10.11.23", "11.0.1")]
    assert [str(v) for v in sorted(versions)] == ["10.11.23", "11.0.1", "11.9.1", "11.9.10", "11.10.0"]


@pytest.mark.parametrize("text", ["11.10", "11.10.0-rc1", "11.010.0", "x.y.z", "", "11.10.0.1"])
def test_parse_refuses_what_is_not_x_y_z(text: str) -> None:
    with pytest.raises(ValueError, match="not a Mattermost version"):
        Version.parse(text)


def test_find_reads_the_front_of_a_version_header() -> None:
    assert Version.find("11.10.0.11.10.0.abcdef.false") == Version(11, 10, 0)
    assert Version.find("dev") is None


@pytest.mark.parametrize(
    ("current", "target", "bad"),
    [
        ("10.11.17", "11.7.2", True),
        ("10.11.23", "11.0.1", True),
        ("10.11.17", "11.7.3", False),  # fixed in 11.7.3
        ("10.11.16", "11.7.2", False),  # before the bad patch
        ("10.11.17", "10.11.20", False),  # a 10.x patch update
        ("11.5.0", "11.7.2", True),  # Mattermost's wording covers every version from 10.11.17 on
        ("11.7.3", "11.10.0", False),
    ],
)
def test_known_bad_path(current: str, target: str, bad: bool) -> None:
    problem = known_bad_path(Version.parse(current), Version.parse(target))
    assert (problem is not None) is bad
    if bad:
        assert "11.7.3 or later" in problem


def test_check_upgrade_path_refuses_downgrade_and_bad_path() -> None:
    with pytest.raises(Refused, match="does not downgrade"):
        check_upgrade_path(Version.parse("11.10.0"), Version.parse("11.9.1"))
    with pytest.raises(Refused, match="known-bad path"):
        check_upgrade_path(Version.parse("10.11.17"), Version.parse("11.7.0"))
    check_upgrade_path(Version.parse("11.9.1"), Version.parse("11.10.0"))


@pytest.mark.parametrize(
    ("target", "minimum"),
    [("11.0.1", 14), ("11.10.0", 14), ("10.11.23", 13), ("10.6.0", 13), ("10.5.14", 11), ("9.11.5", 11)],
)
def test_postgres_minimum(target: str, minimum: int) -> None:
    assert minimum_postgres_major(Version.parse(target)) == minimum
