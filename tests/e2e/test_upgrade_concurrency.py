"""Two runs at once: the second one finds the lock held and exits 5 without touching anything."""

from __future__ import annotations

import time

import pytest

from .checks import expect_result
from .conftest import NEW, OLD, SLOW_START_SECONDS

pytestmark = pytest.mark.e2e


def test_second_run_exits_5_while_the_first_holds_the_lock(make_host) -> None:
    host = make_host("official", OLD, mirror="slow")
    first = host.mmupgrade_background("--to", NEW)
    # Wait until the first run is inside its upgrade: its journal names a step (it holds the lock by then).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and first.running():
        journal = host.journal()
        if journal and journal.get("steps"):
            break
        time.sleep(0.2)
    assert first.running(), "the first run ended before the second could start: the test proves nothing"

    started = time.monotonic()
    rc, result = host.mmupgrade("--to", NEW)
    second_took = time.monotonic() - started
    assert rc == 5, f"second run: exit {rc}, {result}\n{host.last_stderr}"
    assert result.get("exit_code") == 5, result
    assert result.get("message"), result
    assert second_took < SLOW_START_SECONDS, "the second run waited for the lock instead of exiting"
    assert first.running(), "the second run should not have ended or disturbed the first"

    rc, result = first.wait()
    expect_result(rc, result, 0, "upgraded", host)
    assert host.version_serving() == NEW
    host.smoke_verify()
