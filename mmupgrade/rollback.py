"""Put the previous release back: after a failed upgrade (automatically) or on request (--rollback).

stop -> switch back -> restore the database from the backup only if the schema moved -> put the
config file back -> start -> confirm the old version answers healthy. Each step is journaled and
idempotent, so a rollback that is itself interrupted is simply run again by the next mmupgrade.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from .backup import BackupError, BackupSet, restore_config_file
from .context import Context
from .database import DatabaseError
from .errors import NeedsAttention, Refused, StepFailed
from .health import ping_url, wait_healthy
from .hostfs import HostError
from .installation import OFFICIAL, Installation
from .journal import COMMITTED, FAILED, IN_PROGRESS, ROLLED_BACK, UNFINISHED
from .output import result
from .service import ServiceError
from .stage import StageError, discard_staged
from .swap import SwapError, SwapPlan, swap_back
from .versions import Version

RECOVERABLE = (
    StepFailed,
    ServiceError,
    DatabaseError,
    BackupError,
    SwapError,
    HostError,
    StageError,
    Refused,
    OSError,
)


def roll_back(ctx: Context, record: dict[str, Any], reason: str) -> str:
    """Roll back what the journal record describes; returns what happened, raises NeedsAttention."""
    journal = ctx.journal
    plan = SwapPlan.from_dict(record["plan"])
    old = Version.parse(record["from"])
    journal.update(rollback_reason=reason)
    notes = []
    try:
        _step(ctx, "rollback-stop", ctx.service.stop)
        _step(ctx, "rollback-swap", lambda: swap_back(plan))
        installation = ctx.discover(Path(record["root"]))
        if installation.version != old:
            raise StepFailed(
                f"after switching back, {installation.root} holds {installation.version}, not {old}"
            )
        backup = BackupSet.load(Path(record["backup"])) if record.get("backup") else None
        if backup is not None:
            journal.started("rollback-database")
            database = ctx.database(installation)
            before, now = backup.schema_version, database.schema_version()
            if before is not None and now != before and backup.database_dump is not None:
                ctx.say(
                    f"the database schema moved from {before} to {now}: restoring the database from "
                    f"{backup.path}"
                )
                database.restore(backup.database_dump)
                notes.append(
                    f"the database was restored from the backup (the schema had moved from {before} to {now})"
                )
            journal.done("rollback-database")
            journal.started("rollback-config")
            if restore_config_file(backup):
                notes.append("config.json was put back as it was before the upgrade")
            journal.done("rollback-config")
        _step(ctx, "rollback-start", ctx.service.start)
        url = ping_url(installation.settings)
        timeout = float(record.get("health_timeout", ctx.options.health_timeout))
        _step(ctx, "rollback-health", lambda: wait_healthy(url, old, timeout, ctx.service, on_wait=ctx.say))
    except RECOVERABLE as exc:
        cause = ctx.reporter.redact(str(exc))
        message = f"{reason}; rolling back to {old} failed as well: {cause}. {manual_steps(ctx, record)}"
        journal.finish(FAILED, message)
        raise NeedsAttention(message) from None
    try:
        discard_staged(plan)
    except (OSError, StageError) as exc:
        notes.append(f"could not remove the failed release tree {plan.staged}: {exc}")
    downloads = record.get("downloads")
    if downloads:
        # The release that failed is not kept: a retry fetches (and verifies) it afresh.
        shutil.rmtree(downloads, ignore_errors=True)
    partial = record.get("backup_partial")
    if partial and not record.get("backup"):
        # A backup interrupted before it completed is worthless: the old version never changed the database.
        shutil.rmtree(partial, ignore_errors=True)
    summary = f"rolled back to {old}, which is serving"
    if notes:
        summary += "; " + "; ".join(notes)
    journal.finish(ROLLED_BACK, f"{reason}; {summary}")
    return summary


def _step(ctx: Context, name: str, action: Any) -> None:
    ctx.journal.started(name)
    action()
    ctx.journal.done(name)


def manual_steps(ctx: Context, record: dict[str, Any]) -> str:
    """What an admin does by hand when the automatic rollback could not finish."""
    plan = SwapPlan.from_dict(record["plan"])
    unit = ctx.service.name
    if plan.layout == OFFICIAL:
        switch = (
            f"make {plan.root} the old tree again ({plan.previous} holds it until moved back; move config, "
            f"logs, plugins, client/plugins, data and custom directories back from {plan.staged} if "
            "they are there)"
        )
    else:
        link, old_target = plan.current_link, plan.old_target
        switch = f"point {link} back at {old_target} (ln -sfn {old_target} {link})"
    restore = ""
    if record.get("backup"):
        restore = (
            f", restore the database from {record['backup']}/database.dump (pg_restore --clean --if-exists "
            "--no-owner -d <database>, as the database owner) if `mattermost db version` shows a "
            "newer schema"
        )
    return (
        f"To recover by hand: systemctl stop {unit}, {switch}{restore}, then systemctl start {unit}. "
        f"Running mmupgrade again retries the rollback; once the server is fixed by hand, move "
        f"{ctx.journal.path} aside."
    )


def run_rollback(ctx: Context) -> dict[str, Any]:
    """--rollback: undo the last upgrade recorded in the journal."""
    record = _last_upgrade(ctx)
    if record.get("phase") in UNFINISHED:
        return _roll_back_interrupted(ctx, record)
    ctx.check_root()
    installation = ctx.discover(Path(record["root"]))
    if str(installation.version) != record["to"]:
        raise Refused(
            f"{installation.root} runs {installation.version}, not {record['to']} as the last upgrade left "
            "it: it was changed since; roll back by hand from the backup"
        )
    plan = SwapPlan.from_dict(record["plan"])
    old_tree = plan.previous if plan.layout == OFFICIAL else _old_release(plan)
    if not os.path.lexists(old_tree):
        raise Refused(f"the previous release tree {old_tree} is gone: roll back by hand from the backup")
    lines = [f"roll back Mattermost {record['to']} to {record['from']} ({plan.layout} layout in {plan.root})"]
    data_loss = _database_restore_note(ctx, installation, record)
    if data_loss:
        lines.append(data_loss)
    for line in lines:
        ctx.say(line)
    versions = {"from_version": record["to"], "to_version": record["from"], "backup": record.get("backup")}
    if ctx.options.dry_run:
        return result("rolled-back", 0, "Dry run: nothing was changed.", dry_run=True, plan=lines, **versions)
    if data_loss:
        _confirm(ctx, data_loss)
    rollback_record = {**record, "action": "rollback", "phase": IN_PROGRESS, "steps": []}
    for key in ("finished", "message", "started"):
        rollback_record.pop(key, None)
    ctx.journal.begin(rollback_record)
    summary = roll_back(ctx, ctx.journal.record, f"rollback of {record['to']} requested")
    return result("rolled-back", 0, f"Rolled back from {record['to']}: {summary}.", **versions)


def _last_upgrade(ctx: Context) -> dict[str, Any]:
    """The journal record to roll back, or Refused saying why there is none."""
    record = ctx.journal.load()
    if not record or record.get("action") not in ("upgrade", "rollback") or "plan" not in record:
        raise Refused(f"nothing to roll back: no upgrade is recorded in {ctx.journal.path}")
    phase = record.get("phase")
    if phase in UNFINISHED:
        return record
    if phase == ROLLED_BACK or record.get("action") == "rollback":
        raise Refused(
            f"the last upgrade ({record['from']} -> {record['to']}) was already rolled back; "
            f"{record['from']} is installed"
        )
    if phase != COMMITTED:
        raise Refused(
            f"the last upgrade ({record['from']} -> {record['to']}) ended as {phase!r}: nothing to roll back"
        )
    return record


def _database_restore_note(ctx: Context, installation: Installation, record: dict[str, Any]) -> str:
    """What restoring the database will cost, when the schema moved since the backup; "" otherwise."""
    backup = BackupSet.load(Path(record["backup"])) if record.get("backup") else None
    if backup is None or backup.schema_version is None:
        return ""
    now = ctx.database(installation).schema_version()
    if now == backup.schema_version:
        return ""
    return (
        f"The database schema moved ({backup.schema_version} -> {now}), so the database is restored from the "
        f"backup taken {backup.manifest.get('created')}: changes made since then are lost."
    )


def _confirm(ctx: Context, data_loss: str) -> None:
    if ctx.options.yes:
        return
    if not ctx.reporter.interactive():
        raise Refused(data_loss + " Rerun with --yes to confirm.")
    if not ctx.reporter.confirm("Roll back and restore the database?"):
        raise Refused("rollback cancelled; nothing was changed")


def _old_release(plan: SwapPlan) -> str:
    old = plan.old_target
    return old if os.path.isabs(old) else os.path.join(plan.root, old)


def _roll_back_interrupted(ctx: Context, record: dict[str, Any]) -> dict[str, Any]:
    """--rollback while an interrupted upgrade is in the journal: undo it, whatever step it reached."""
    ctx.check_root()
    journal = ctx.journal
    if ctx.options.dry_run:
        return result(
            "rolled-back",
            0,
            f"Dry run: would roll back the interrupted upgrade to {record['to']}.",
            record["to"],
            record["from"],
            backup=record.get("backup"),
            dry_run=True,
        )
    if not journal.reached("stop"):
        from .recovery import recover  # noqa: PLC0415 - recovery imports this module

        recover(ctx)  # it had not touched the server: only its leftovers go
        return result(
            "rolled-back",
            0,
            f"The interrupted upgrade to {record['to']} had changed nothing; "
            f"{record['from']} is still installed.",
            record["to"],
            record["from"],
        )
    summary = roll_back(ctx, record, f"rollback of the interrupted upgrade to {record['to']} requested")
    return result(
        "rolled-back",
        0,
        f"Rolled back the interrupted upgrade: {summary}.",
        record["to"],
        record["from"],
        backup=record.get("backup"),
    )
