"""The journal survives a crash at any byte; the lock excludes a second run; recovery decides right."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mmupgrade import journal as journal_module
from mmupgrade import recovery, rollback
from mmupgrade.context import Context
from mmupgrade.errors import Locked, NeedsAttention, RolledBack, StepFailed
from mmupgrade.journal import Journal, write_atomically
from mmupgrade.lock import RunLock
from mmupgrade.output import Reporter

from .conftest import FakeService, Host, ReleaseFactory, make_host, runtime_for


def test_atomic_write_keeps_the_old_state_when_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "journal.json"
    write_atomically(path, '{"phase": "in-progress"}\n')

    def crash(*args: object) -> None:
        raise OSError("power lost")

    monkeypatch.setattr(journal_module.os, "replace", crash)
    with pytest.raises(OSError, match="power lost"):
        write_atomically(path, '{"phase": "committed"}\n')
    assert json.loads(path.read_text()) == {"phase": "in-progress"}
    assert os.listdir(tmp_path) == ["journal.json"]  # no temporary file left behind
    assert path.stat().st_mode & 0o777 == 0o600


def test_steps_are_recorded_before_and_after(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.begin({"action": "upgrade", "from": "11.9.1", "to": "11.10.0"})
    journal.started("download")
    journal.done("download")
    journal.started("verify")
    reread = Journal(tmp_path)
    record = reread.load()
    assert record is not None and record["phase"] == "in-progress"
    assert reread.step_state("download") == "done"
    assert reread.step_state("verify") == "started"
    assert reread.step_state("stop") is None
    assert reread.last_step() == "verify"
    journal.finish("committed", "done")
    journal.begin({"action": "upgrade", "from": "11.10.0", "to": "11.11.0"})
    assert len(list((tmp_path / "history").iterdir())) == 1  # the previous journal was kept


def test_lock_excludes_a_second_run_and_dies_with_its_holder(tmp_path: Path) -> None:
    with RunLock(tmp_path), pytest.raises(Locked) as raised, RunLock(tmp_path):
        pass
    assert raised.value.exit_code == 5
    # A holder killed with SIGKILL leaves the file but not the lock.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; sys.path.insert(0, sys.argv[1]); from mmupgrade.lock import RunLock; "
            "from pathlib import Path; lock = RunLock(Path(sys.argv[2])).__enter__(); "
            "print('locked', flush=True); time.sleep(60)",
            str(Path(__file__).resolve().parents[2]),
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
    with pytest.raises(Locked, match=f"pid {holder.pid}"), RunLock(tmp_path):
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    time.sleep(0.1)
    with RunLock(tmp_path):
        pass


# --- recovery decisions -----------------------------------------------------------------------------


@pytest.fixture
def host(tmp_path: Path, releases: ReleaseFactory) -> Host:
    return make_host(
        tmp_path / "host", releases.get("11.9.1"), "versioned", "postgres://mmuser:pw@127.0.0.1:9/none"
    )


def _context(host: Host, service: FakeService) -> Context:
    reporter = Reporter(stdout=io.StringIO(), stderr=io.StringIO())
    return Context(host.options(), runtime_for(host, service, reporter))


def _journal(host: Host, steps: list[tuple[str, str]], action: str = "upgrade", **extra: Any) -> Journal:
    journal = Journal(host.state_dir)
    plan = {
        "layout": "versioned",
        "root": str(host.root),
        "staged": str(host.root / "releases" / "11.10.0-enterprise"),
        "current_link": str(host.root / "current"),
        "old_target": "releases/11.9.1-enterprise",
        "new_target": "releases/11.10.0-enterprise",
    }
    journal.begin(
        {"action": action, "from": "11.9.1", "to": "11.10.0", "root": str(host.root), "plan": plan, **extra}
    )
    for step, state in steps:
        journal._append(step, state, {})
    return journal


def test_interrupted_before_the_stop_is_cleaned_up_and_the_run_goes_on(host: Host) -> None:
    staged = host.root / "releases" / "11.10.0-enterprise"
    staged.mkdir()
    partial = host.backup_dir / ".mattermost-11.9.1-to-11.10.0-x.partial"
    partial.mkdir(parents=True)
    _journal(
        host, [("download", "done"), ("verify", "done"), ("stage", "started")], backup_partial=str(partial)
    )
    service = FakeService()
    ctx = _context(host, service)
    assert recovery.recover(ctx) is None
    assert not staged.exists() and not partial.exists()
    assert Journal(host.state_dir).load()["phase"] == "abandoned"
    assert service.calls == []
    assert "nothing was changed" in ctx.reporter.stdout.getvalue()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "steps", [[("stop", "started")], [("stop", "done"), ("backup", "done"), ("swap", "started")]]
)
def test_interrupted_between_stop_and_switch_rolls_back(
    host: Host, steps: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _journal(host, steps)
    calls = []
    monkeypatch.setattr(
        recovery,
        "roll_back",
        lambda ctx, record, reason: calls.append(reason) or "rolled back to 11.9.1, which is serving",
    )
    with pytest.raises(RolledBack, match=r"rolled back to 11\.9\.1"):
        recovery.recover(_context(host, FakeService()))
    assert len(calls) == 1 and "interrupted" in calls[0]


def test_switched_and_healthy_is_finished(host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    (host.root / "current").unlink()
    (host.root / "current").symlink_to("releases/11.9.1-enterprise")  # discovery needs a readable binary
    _journal(host, [("stop", "done"), ("backup", "done"), ("swap", "done"), ("start", "started")])
    waited = []
    monkeypatch.setattr(recovery, "wait_healthy", lambda url, version, *a, **k: waited.append(str(version)))
    monkeypatch.setattr(recovery, "roll_back", lambda *a: pytest.fail("must not roll back"))
    service = FakeService()
    outcome = recovery.recover(_context(host, service))
    assert outcome is not None and outcome["status"] == "upgraded" and outcome["exit_code"] == 0
    assert "was finished" in outcome["message"]
    assert waited == ["11.10.0"] and service.calls == ["start"]
    assert Journal(host.state_dir).load()["phase"] == "committed"


def test_switched_but_unhealthy_is_rolled_back(host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    _journal(
        host,
        [("stop", "done"), ("backup", "done"), ("swap", "done"), ("start", "done"), ("health", "started")],
    )

    def unhealthy(*args: object, **kwargs: object) -> None:
        raise StepFailed("11.10.0 did not become healthy within 600 s: ping answered 500 UNHEALTHY")

    monkeypatch.setattr(recovery, "wait_healthy", unhealthy)
    monkeypatch.setattr(
        recovery, "roll_back", lambda ctx, record, reason: "rolled back to 11.9.1, which is serving"
    )
    with pytest.raises(RolledBack, match=r"500 UNHEALTHY; rolled back to 11\.9\.1"):
        recovery.recover(_context(host, FakeService()))


def test_healthy_but_not_committed_is_committed(host: Host) -> None:
    _journal(
        host,
        [("stop", "done"), ("swap", "done"), ("start", "done"), ("health", "done"), ("commit", "started")],
    )
    service = FakeService()
    outcome = recovery.recover(_context(host, service))
    assert outcome is not None and outcome["status"] == "upgraded"
    assert service.calls == []


def test_interrupted_rollback_is_run_again(host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    _journal(
        host,
        [
            ("stop", "done"),
            ("swap", "done"),
            ("health", "started"),
            ("rollback-stop", "done"),
            ("rollback-swap", "started"),
        ],
        rollback_reason="11.10.0 did not start",
    )
    reasons = []
    monkeypatch.setattr(
        recovery,
        "roll_back",
        lambda ctx, record, reason: reasons.append(reason) or "rolled back to 11.9.1, which is serving",
    )
    with pytest.raises(RolledBack):
        recovery.recover(_context(host, FakeService()))
    assert reasons == ["11.10.0 did not start"]
    _journal(host, [("rollback-stop", "started")], action="rollback")
    outcome = recovery.recover(_context(host, FakeService()))
    assert outcome is not None and (outcome["status"], outcome["exit_code"]) == ("rolled-back", 0)


def test_nothing_pending(host: Host) -> None:
    assert recovery.recover(_context(host, FakeService())) is None
    journal = _journal(host, [])
    journal.finish("committed", "done")
    assert recovery.recover(_context(host, FakeService())) is None


def test_a_failed_rollback_is_tried_again(host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = _journal(
        host, [("stop", "done"), ("swap", "done"), ("rollback-stop", "done"), ("rollback-start", "started")]
    )
    journal.finish("failed", "rolling back failed as well: the database did not answer")
    reasons = []
    monkeypatch.setattr(
        recovery, "roll_back", lambda ctx, record, reason: reasons.append(reason) or "rolled back to 11.9.1"
    )
    with pytest.raises(RolledBack):
        recovery.recover(_context(host, FakeService()))
    assert len(reasons) == 1


def test_an_unreadable_journal_needs_a_human(host: Host) -> None:
    host.state_dir.mkdir(parents=True, exist_ok=True)
    (host.state_dir / "journal.json").write_text("{ half a jour")
    with pytest.raises(NeedsAttention, match="unreadable") as raised:
        recovery.recover(_context(host, FakeService()))
    assert raised.value.exit_code == 4


def test_a_rollback_that_cannot_finish_says_what_to_do(host: Host) -> None:
    """Exit 4: the message names the cause and the manual steps; the journal keeps it for the next run."""
    journal = _journal(host, [("stop", "done"), ("swap", "done")])
    journal.record["plan"]["old_target"] = "releases/11.8.0-enterprise"  # gone: cannot be switched back to
    service = FakeService()
    ctx = _context(host, service)
    with pytest.raises(NeedsAttention) as raised:
        rollback.roll_back(ctx, journal.record, "11.10.0 did not start")
    message = str(raised.value)
    assert raised.value.exit_code == 4
    assert message.startswith("11.10.0 did not start; rolling back to 11.9.1 failed as well:")
    assert "To recover by hand: systemctl stop mattermost.service" in message
    assert "ln -sfn releases/11.8.0-enterprise" in message
    assert Journal(host.state_dir).load()["phase"] == "failed"
    assert service.calls == ["stop"]
