"""The e2e harness itself: the mirrors serve what the tests claim they serve.

(That installed hosts are what the tests claim is checked at the start of the official and versioned
upgrade tests: checks.assert_installed_as_claimed.)"""

from __future__ import annotations

import json

import pytest

from . import hosts
from .conftest import NEW, OLD

pytestmark = pytest.mark.e2e


def test_mirrors_serve_what_the_tests_assume(make_host) -> None:
    host = make_host(None, mirror="good", with_mmupgrade=False)
    listing = json.loads(
        host.run(
            [
                "python3",
                "-c",
                (
                    "import urllib.request; print(urllib.request.urlopen("
                    f"'{hosts.RELEASES_API}', timeout=5).read().decode())"
                ),
            ]
        ).stdout
    )
    tags = [release["tag_name"] for release in listing]
    assert tags[0] == f"v{NEW}"
    assert {f"v{OLD}", "v10.11.17", "v11.7.2"} <= set(tags)
    # The truncated mirror's tarball really is short, and the bad-signature mirror's really fails gpgv.
    good = host.run(["stat", "-c", "%s", f"{hosts.MIRROR_DIR}/good/{NEW}/{hosts.tarball_name(NEW)}"]).stdout
    short = host.run(["stat", "-c", "%s", f"{hosts.MIRROR_DIR}/trunc/{NEW}/{hosts.tarball_name(NEW)}"]).stdout
    assert int(short) < int(good)
    verify = (
        "set -e; d=$(mktemp -d); gpg -q --homedir $d --batch --import {key} 2>/dev/null; "
        "gpg --homedir $d --batch --verify {root}/{v}/{t}.sig {root}/{v}/{t}"
    )
    for root, expected in (("good", 0), ("badsig", 2), ("trunc", 1)):
        cmd = verify.format(
            key=hosts.SIGNING_KEY, root=f"{hosts.MIRROR_DIR}/{root}", v=NEW, t=hosts.tarball_name(NEW)
        )
        assert host.run(cmd, check=False).returncode == expected, root
