"""Mattermost versions: parsing, ordering, the known-bad upgrade path and the PostgreSQL each needs.

Facts: shared/reference/mattermost-facts.md sections 5 (PostgreSQL minimums) and 8 (known-bad path).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import Refused

_VERSION = re.compile(r"v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version:
        """X.Y.Z (a leading "v", as in GitHub tags, is accepted); anything else is refused."""
        match = _VERSION.fullmatch(text.strip())
        if not match:
            raise ValueError(f"{text!r} is not a Mattermost version (X.Y.Z, e.g. 11.10.0)")
        return cls(*(int(part) for part in match.groups()))

    @classmethod
    def find(cls, text: str) -> Version | None:
        """The first X.Y.Z at the start of text (e.g. of "11.10.0.12345.abc.false"), or None."""
        match = re.match(r"v?(\d+)\.(\d+)\.(\d+)", text.strip())
        return cls(*(int(part) for part in match.groups())) if match else None

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


# "Customers should not upgrade from >=10.11.17 to <=11.7.2 due to a bug that causes an issue with
# database migration numbers. The bug is fixed in v11.7.3." (important-upgrade-notes, facts section 8)
BAD_PATH_FROM = Version(10, 11, 17)
BAD_PATH_TO = Version(11, 7, 2)
BAD_PATH_FIXED = Version(11, 7, 3)


def known_bad_path(current: Version, target: Version) -> str | None:
    """Why current -> target must not be done, or None.

    The rule is applied as Mattermost words it (from 10.11.17 or later to 11.7.2 or earlier), limited to
    targets in v11: a 10.x patch update cannot hit the v11 migration numbering bug.
    """
    if current >= BAD_PATH_FROM and Version(11, 0, 0) <= target <= BAD_PATH_TO:
        return (
            f"upgrading from {current} to {target} is a known-bad path: Mattermost says not to upgrade from "
            f"{BAD_PATH_FROM} or later to {BAD_PATH_TO} or earlier (a database migration numbering bug, "
            f"fixed in {BAD_PATH_FIXED}); upgrade to {BAD_PATH_FIXED} or later instead"
        )
    return None


def minimum_postgres_major(target: Version) -> int:
    """The oldest PostgreSQL major the target release supports (facts section 5)."""
    if target >= Version(11, 0, 0):
        return 14
    if target >= Version(10, 6, 0):
        return 13
    return 11


def check_upgrade_path(current: Version, target: Version) -> None:
    """Refuse a downgrade and a known-bad path; the same target is handled by the caller (up to date)."""
    if target < current:
        raise Refused(
            f"{target} is older than the installed {current}: mmupgrade does not downgrade (the database "
            "schema of a newer release does not go back); use --rollback right after an upgrade, or "
            "restore a backup"
        )
    problem = known_bad_path(current, target)
    if problem is not None:
        raise Refused(problem)
