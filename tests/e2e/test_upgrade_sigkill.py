"""SIGKILL at every step, then a rerun: the rerun either finishes the upgrade or rolls it back, says which,
and the server serves one consistent version with the smoke test's data intact.

The kill comes from outside (killer.py polls mmupgrade's journal and kills the whole process group the
moment a step is recorded as started, or a little later for the mid-step cases); mmupgrade has no test
hook. The step names are read from the mmupgrade sources (every `_step(...)`/`journal.started(...)`), and
test_journaled_steps_are_the_ones_parametrized checks them against what real runs journal, so a renamed
or added step cannot silently go untested.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .checks import expect_result
from .conftest import NEW, OLD, REPO
from .hosts import Host

pytestmark = pytest.mark.e2e

# How long the unhealthy release is given before mmupgrade rolls back (the rollback steps are killed).
HEALTH_TIMEOUT = "9"
_FIRST = {"upgrade.py": 0, "commit.py": 1, "rollback.py": 2}  # so the steps come in pipeline order
_STEP_CALL = re.compile(r"""(?:_step\(\s*(?:ctx,\s*)?|journal\.started\(\s*)["']([a-z][a-z-]*)["']""")


def journaled_steps() -> list[str]:
    """Every step name mmupgrade journals, in source order, without duplicates."""
    names: list[str] = []
    sources = sorted(
        (REPO / "mmupgrade").glob("*.py"), key=lambda p: (p.name not in _FIRST, _FIRST.get(p.name, 0), p.name)
    )
    for path in sources:
        for name in _STEP_CALL.findall(Path(path).read_text()):
            if name not in names:
                names.append(name)
    return names


STEPS = journaled_steps()
UPGRADE_STEPS = [step for step in STEPS if not step.startswith("rollback-")]
ROLLBACK_STEPS = [step for step in STEPS if step.startswith("rollback-")]


def upgrade_args(step: str, mirror: str) -> list[str]:
    args = ["--to", NEW]
    if step == "backup-data":
        args.append("--backup-data")
    if mirror == "unhealthy":
        args += ["--health-timeout", HEALTH_TIMEOUT]
    return args


def kill_and_rerun(
    bed, host: Host, step: str, mirror: str, *, delay: float = 0.0, on_rename: str = "", nth: int = 1
) -> tuple[dict, int, dict]:
    """Kill mmupgrade at the step (or at the nth rename of on_rename), then rerun the same command."""
    args = upgrade_args(step, mirror)
    killed = host.mmupgrade_killed_at(step, *args, delay=delay, on_rename=on_rename, nth=nth)
    where = f"rename #{nth} of {on_rename}" if on_rename else f"step {step!r}"
    assert killed["killed"], (
        f"mmupgrade finished before {where} (it journaled {killed['steps_seen']}); exit {killed['rc']}"
    )
    if on_rename:
        last = ((killed.get("journal") or {}).get("steps") or [{}])[-1]
        assert (last.get("step"), last.get("state")) == (step, "started"), (
            f"the kill at {where} came outside step {step}: journal ends with {last}"
        )
    # What the kill left, for the session summary: proof of the intermediate state the rerun met.
    left = host.run("cd /opt && ls -d mattermost* 2>/dev/null | tr '\\n' ' '; true").stdout.strip()
    # The rerun is what an admin types after the crash (the same command).
    rc, result = host.mmupgrade(*args)
    entries = (killed.get("journal") or {}).get("steps") or [{}]
    at = f"{entries[-1].get('step')} {entries[-1].get('state')}"
    point = f"{step} at {where}" if on_rename else step + (f"+{delay * 1000:g}ms" if delay else "")
    bed.notes.append(
        f"SIGKILL {host.layout} {point}: killed after {killed['seconds']:.2f}s "
        f"(journal: {at}; /opt: {left}); rerun exit {rc} {result.get('status')}"
    )
    return killed, rc, result


def assert_consistent(host: Host, rc: int, result: dict, killed: dict) -> str:
    """Finished (new version) or rolled back (old version), and the result says which; returns which."""
    expect_result(rc, result, rc, ("upgraded", "rolled-back"), host)
    context = f"killed at {killed['steps_seen'][-1:]} ; rerun: exit {rc} {result}\n{host.last_stderr[-3000:]}"
    # The rerun reports the interrupted run it found before anything else.
    assert "did not finish" in host.last_stderr, f"the rerun did not report the interrupted run: {context}"
    serving = host.version_serving()
    if result["status"] == "upgraded":
        assert rc == 0, context
        assert serving == NEW, f"says upgraded but {serving} is serving: {context}"
        assert host.schema_version() == 1110, context
    else:
        assert rc == 3, context
        assert serving == OLD, f"says rolled back but {serving} is serving: {context}"
        assert host.schema_version() == 1109, f"database not restored: {context}"
    assert host.installed_version() == serving, context
    journal = host.journal() or {}
    assert journal.get("phase") in ("committed", "rolled-back"), (
        f"journal left {journal.get('phase')}: {context}"
    )
    host.smoke_verify()
    leftovers = host.run(
        "ls -d /opt/mattermost.upgrade-* /opt/mattermost/releases/.* 2>/dev/null; true"
    ).stdout
    leftovers = [line for line in leftovers.split() if not line.endswith(("/.", "/.."))]
    assert not leftovers, f"staging left behind: {leftovers}"
    return result["status"]


def layouts_for(steps: list[str], both: set[str]) -> list:
    """(layout, step) pairs: every step in the official layout, the ones in `both` in the versioned too."""
    pairs = [pytest.param("official", step, id=f"official-{step}") for step in steps]
    pairs += [pytest.param("versioned", step, id=f"versioned-{step}") for step in steps if step in both]
    return pairs


# Until "stop" nothing touches the server, so the layout cannot matter: those steps run in one layout.
# From "stop" on the layouts switch differently (renames vs. a symlink): both.
AFTER_STOP = (
    set(UPGRADE_STEPS[UPGRADE_STEPS.index("stop") :]) if "stop" in UPGRADE_STEPS else set(UPGRADE_STEPS)
)


@pytest.mark.parametrize(("layout", "step"), layouts_for(UPGRADE_STEPS, AFTER_STOP))
def test_sigkill_during_upgrade_then_rerun(bed, make_host, layout: str, step: str) -> None:
    host = make_host(layout, OLD)
    killed, rc, result = kill_and_rerun(bed, host, step, "good")
    outcome = assert_consistent(host, rc, result, killed)
    if outcome == "rolled-back" and step == "swap":
        # "Run mmupgrade again to retry": after a rollback from the middle of the switch, the next try
        # upgrades cleanly (checked for this step only, to keep the suite's time).
        rc, result = host.mmupgrade("--to", NEW)
        expect_result(rc, result, 0, "upgraded", host)
        assert host.version_serving() == NEW
        host.smoke_verify()


@pytest.mark.parametrize(("layout", "step"), layouts_for(ROLLBACK_STEPS, {"rollback-swap"}))
def test_sigkill_during_automatic_rollback_then_rerun(bed, make_host, layout: str, step: str) -> None:
    # The unhealthy release migrates the schema, so the rollback has to restore the database too.
    host = make_host(layout, OLD, mirror="unhealthy")
    killed, rc, result = kill_and_rerun(bed, host, step, "unhealthy")
    outcome = assert_consistent(host, rc, result, killed)
    assert outcome == "rolled-back", "an unhealthy release cannot end up upgraded"


# Kills inside a step rather than at its start. The official layout's switch is a few renames that take
# microseconds, so strace kills mmupgrade as it enters one of them, before it happens (strace's path
# filter matches a rename by its source path): with the old tree's state partly moved into the new
# tree, all moved but the old tree still in place, the old tree set aside and no /opt/mattermost at
# all; then the same kind of points in the switch back of a rollback. Plus a kill during the dump.
STAGED = f"/opt/mattermost.upgrade-{NEW}"
PREVIOUS = f"/opt/mattermost.previous-{OLD}"
INSIDE = [
    pytest.param(("swap", "/opt/mattermost/config", "good"), id="swap-before-first-move"),
    pytest.param(("swap", "/opt/mattermost/data", "good"), id="swap-state-half-moved"),
    pytest.param(("swap", "/opt/mattermost", "good"), id="swap-old-tree-not-aside"),
    pytest.param(("swap", STAGED, "good"), id="swap-no-tree-in-place"),
    pytest.param(("rollback-swap", PREVIOUS, "unhealthy"), id="swap-back-no-tree-in-place"),
    pytest.param(("rollback-swap", f"{STAGED}/data", "unhealthy"), id="swap-back-state-half-moved"),
]


@pytest.mark.parametrize("case", INSIDE)
def test_sigkill_inside_the_official_switch_then_rerun(bed, make_host, case: tuple[str, str, str]) -> None:
    step, path, mirror = case
    host = make_host("official", OLD, mirror=mirror)
    killed, rc, result = kill_and_rerun(bed, host, step, mirror, on_rename=path)
    assert_consistent(host, rc, result, killed)


def test_sigkill_during_the_database_dump_then_rerun(bed, make_host) -> None:
    host = make_host("official", OLD)
    killed, rc, result = kill_and_rerun(bed, host, "backup", "good", delay=0.05)
    assert_consistent(host, rc, result, killed)


def test_journaled_steps_are_the_ones_parametrized(make_host) -> None:
    """A real upgrade and a real rollback journal exactly steps this module kills at."""
    host = make_host("official", OLD)
    rc, _ = host.mmupgrade("--to", NEW, "--backup-data")
    assert rc == 0, host.last_stderr
    upgraded = [entry["step"] for entry in (host.journal() or {}).get("steps", [])]
    # --rollback runs the same rollback steps as an automatic rollback.
    rc, _ = host.mmupgrade("--rollback")
    assert rc == 0, host.last_stderr
    rolled = [entry["step"] for entry in (host.journal() or {}).get("steps", [])]
    unknown = sorted(set(rolled + upgraded) - set(STEPS))
    assert not unknown, f"steps journaled but never killed at: {unknown}"
    assert set(ROLLBACK_STEPS) <= set(rolled), f"rollback journaled {rolled}"
    assert set(UPGRADE_STEPS) <= set(upgraded), f"upgrade journaled {upgraded}"
