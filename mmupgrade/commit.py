"""Make a healthy upgrade final: remove what only a rollback needed, apply the retention count.

The previous release tree and the newest backups stay (--keep-backups of each), so --rollback works
after the upgrade as well.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from . import backup as backups
from .context import Context
from .installation import OFFICIAL
from .journal import COMMITTED
from .swap import SwapPlan


def commit(ctx: Context, record: dict[str, Any]) -> list[Path]:
    """Finish the journal as committed; returns the paths retention removed."""
    journal = ctx.journal
    plan = SwapPlan.from_dict(record["plan"])
    journal.started("commit")
    removed: list[Path] = []
    if plan.shipped_aside and os.path.lexists(plan.shipped_aside):
        shutil.rmtree(plan.shipped_aside, ignore_errors=True)
    downloads = record.get("downloads")
    if downloads and os.path.isdir(downloads):
        shutil.rmtree(downloads, ignore_errors=True)
    keep = max(1, ctx.options.keep_backups)
    backup = Path(record["backup"]) if record.get("backup") else None
    removed += backups.prune(ctx.options.backup_dir, keep, protect=backup)
    removed += prune_previous_releases(plan, keep)
    journal.done("commit", removed=[str(p) for p in removed])
    journal.finish(COMMITTED, f"upgraded from {record['from']} to {record['to']}")
    return removed


def prune_previous_releases(plan: SwapPlan, keep: int) -> list[Path]:
    """Keep the `keep` newest earlier release trees (always the one just replaced); delete older ones."""
    if plan.layout == OFFICIAL:
        root = Path(plan.root)
        candidates = [
            p for p in root.parent.glob(f"{root.name}.previous-*") if p.is_dir() and not p.is_symlink()
        ]
        just_replaced = Path(plan.previous)
    else:
        releases = Path(plan.root) / "releases"
        current = os.path.realpath(plan.current_link)
        candidates = [
            p
            for p in releases.iterdir()
            if p.is_dir() and not p.name.startswith(".") and os.path.realpath(p) != current
        ]
        old = plan.old_target
        just_replaced = Path(old if os.path.isabs(old) else os.path.join(plan.root, old))
    candidates.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    kept = [just_replaced]
    removed = []
    for path in candidates:
        if os.path.realpath(path) == os.path.realpath(just_replaced):
            continue
        if len(kept) < keep:
            kept.append(path)
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
