"""Preflight and verification refusals: exit 1, status refused, and the server exactly as it was.

"Exactly as it was" (hosts.Host.snapshot): the same server process still serving the same version on the
same schema, the same config, unit and env files, and no new or removed entry below /opt.
"""

from __future__ import annotations

import pytest

from .checks import assert_unchanged, expect_result
from .conftest import NEW, OLD

pytestmark = pytest.mark.e2e


def refused(host, *args: str) -> dict:
    before = host.snapshot()
    rc, result = host.mmupgrade(*args)
    expect_result(rc, result, 1, "refused", host)
    assert_unchanged(before, host.snapshot())
    host.smoke_verify()
    return result


def test_signature_from_another_key_is_refused(make_host) -> None:
    host = make_host("official", OLD, mirror="badsig")
    result = refused(host, "--to", NEW)
    assert "signature" in result["message"].lower(), result["message"]


def test_wrong_sha256_is_refused(make_host) -> None:
    host = make_host("official", OLD)
    result = refused(host, "--to", NEW, "--sha256", "0" * 64)
    assert "sha-256" in result["message"].lower() or "sha256" in result["message"].lower(), result["message"]


def test_truncated_download_is_refused(make_host) -> None:
    host = make_host("versioned", OLD, mirror="trunc")
    refused(host, "--to", NEW)


def test_downgrade_is_refused(make_host) -> None:
    host = make_host("official", NEW)
    result = refused(host, "--to", OLD)
    assert OLD in result["message"] and NEW in result["message"], result["message"]


def test_blocked_upgrade_path_is_refused(make_host) -> None:
    # Mattermost's known-bad path: from 10.11.17 or later to 11.7.2 or older.
    host = make_host("official", "10.11.17")
    result = refused(host, "--to", "11.7.2")
    assert "11.7.2" in result["message"], result["message"]
