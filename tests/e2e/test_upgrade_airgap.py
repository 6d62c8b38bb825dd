"""Air-gapped upgrade: a release tarball and its .sig copied onto a server that reaches no release server.

The test containers have no network at all, and here no mirror runs either: anything but the local file
would fail.
"""

from __future__ import annotations

import pytest

from . import hosts
from .checks import assert_unchanged, expect_result
from .conftest import NEW, OLD

pytestmark = pytest.mark.e2e

TARBALL = f"/root/{hosts.tarball_name(NEW)}"


def test_airgapped_tarball_upgrade_with_pinned_checksum(make_host, releases) -> None:
    host = make_host("versioned", OLD, mirror=None)
    assert (
        host.run(
            [
                "python3",
                "-c",
                f"import urllib.request; urllib.request.urlopen('{hosts.MIRROR_URL}', timeout=3)",
            ],
            check=False,
        ).returncode
        != 0
    ), "a mirror answers: this test would not be air-gapped"

    # A tarball without its signature beside it is refused before anything changes.
    host.run(f"mkdir -p /root/nosig && cp {TARBALL} /root/nosig/")
    before = host.snapshot()
    rc, result = host.mmupgrade("--tarball", f"/root/nosig/{hosts.tarball_name(NEW)}", mirror=False)
    expect_result(rc, result, 1, "refused", host)
    assert_unchanged(before, host.snapshot())

    digest = releases.sha256[("good", NEW, "enterprise")]
    rc, result = host.mmupgrade("--tarball", TARBALL, "--sha256", digest, mirror=False)

    expect_result(rc, result, 0, "upgraded", host)
    assert (result["from"], result["to"]) == (OLD, NEW)
    assert host.version_serving() == NEW
    assert host.run(["readlink", "/opt/mattermost/current"]).stdout.strip() == f"releases/{NEW}-enterprise"
    host.smoke_verify()
