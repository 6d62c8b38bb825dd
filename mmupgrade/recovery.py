"""Pick up after a run that did not finish (SIGKILL, power loss, Ctrl-C), from its journal.

Decisions, by how far the journal says the interrupted upgrade got:
  never stopped the service        nothing changed: remove its leftovers, carry on with this run
  stopped, not (fully) switched    roll back: the old release is (put) back and started
  switched, not yet healthy        start it and wait: healthy -> finish the upgrade, else roll back
  healthy, not committed           finish the upgrade
  rolling back                     run the rollback again (every rollback step is idempotent)
The run says which of these it did.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from .backup import BackupWriter
from .commit import commit
from .context import Context
from .errors import NeedsAttention, RolledBack
from .health import ping_url, wait_healthy
from .journal import ABANDONED, UNFINISHED
from .output import result
from .rollback import RECOVERABLE, roll_back
from .stage import StageError, discard_staged
from .swap import SwapPlan
from .versions import Version


def pending(ctx: Context) -> dict[str, Any] | None:
    """The journal of an unfinished run, or None."""
    record = ctx.journal.load()
    if record and record.get("phase") in UNFINISHED:
        return record
    return None


def recover(ctx: Context) -> dict[str, Any] | None:
    """Finish or roll back an interrupted run; returns this run's result when that is all it should do.

    None means nothing was pending, or the interrupted run had changed nothing and this run goes on.
    """
    record = pending(ctx)
    if record is None:
        return None
    journal = ctx.journal
    if record.get("corrupt") or "plan" not in record:
        raise NeedsAttention(
            f"the journal {journal.path} is unreadable, so mmupgrade cannot tell what the last run did: "
            "check which release serves (mattermost version), then move the journal aside and run again"
        )
    action, old, new = record.get("action"), record.get("from"), record.get("to")
    interrupted_at = journal.last_step() or "its start"
    ctx.say(
        f"The previous mmupgrade run ({action} {old} -> {new}) did not finish: it stopped at step "
        f"{interrupted_at}."
    )

    if action == "rollback" or journal.reached("rollback-stop"):
        reason = record.get("rollback_reason") or f"the previous run was interrupted at step {interrupted_at}"
        summary = roll_back(ctx, record, reason)
        if action == "rollback":
            return result(
                "rolled-back",
                0,
                f"Finished the interrupted rollback: {summary}.",
                new,
                old,
                backup=record.get("backup"),
            )
        raise RolledBack(
            f"The interrupted upgrade to {new} was rolled back: {summary}. Run mmupgrade again to retry."
        )

    if not journal.reached("stop"):
        _clean_unstarted(record)
        journal.finish(ABANDONED, f"interrupted at step {interrupted_at} before the server was stopped")
        ctx.say("It had not stopped the server, so nothing was changed; its leftovers were removed.")
        return None

    if journal.step_state("swap") != "done":
        summary = roll_back(
            ctx, record, f"the previous upgrade to {new} was interrupted at step {interrupted_at}"
        )
        raise RolledBack(
            f"The interrupted upgrade to {new} was rolled back: {summary}. Run mmupgrade again to retry."
        )

    if journal.step_state("health") != "done":
        target = Version.parse(new)
        try:
            installation = ctx.discover(Path(record["root"]))
            journal.started("start")
            ctx.service.start()
            journal.done("start")
            journal.started("health")
            timeout = float(record.get("health_timeout", ctx.options.health_timeout))
            wait_healthy(ping_url(installation.settings), target, timeout, ctx.service, on_wait=ctx.say)
            journal.done("health")
        except RECOVERABLE as exc:
            cause = ctx.reporter.redact(str(exc))
            summary = roll_back(ctx, record, cause)
            raise RolledBack(f"{cause}; {summary}.") from None
    commit(ctx, journal.record)
    return result(
        "upgraded",
        0,
        f"The interrupted upgrade had already switched to {new}; {new} is healthy, so the upgrade was "
        "finished.",
        old,
        new,
        backup=record.get("backup"),
    )


def _clean_unstarted(record: dict[str, Any]) -> None:
    """Remove the staged tree and the partial backup; downloads stay so the next attempt resumes."""
    plan = record.get("plan")
    if plan:
        # Best effort: a leftover staging directory is replaced by the next staging anyway.
        with contextlib.suppress(OSError, StageError):
            discard_staged(SwapPlan.from_dict(plan))
    partial = record.get("backup_partial")
    if partial:
        name = Path(partial).name.lstrip(".").removesuffix(".partial")
        BackupWriter(Path(partial).parent, name).discard()
