"""The step journal: what an upgrade or rollback has done so far, safe against SIGKILL at any moment.

One JSON document (journal.json in the state directory) is rewritten after every change: written to a
temporary file, fsync'd, renamed over the old one, directory fsync'd. A reader therefore sees either
the previous or the next state, never half of one. Each step is recorded "started" before it begins and
"done" after it ends, so the next run knows exactly how far things got. No secrets go in (the data
source is read again from the installation when needed).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

JOURNAL_NAME = "journal.json"
HISTORY_DIR = "history"
IN_PROGRESS = "in-progress"
COMMITTED = "committed"
ROLLED_BACK = "rolled-back"
ABANDONED = "abandoned"  # interrupted before the service was touched; its leftovers were cleaned up
FAILED = "failed"  # the rollback failed too: the next run tries it again, a human may have to help
# Phases the next run picks up: it finishes the upgrade or (again) rolls it back.
UNFINISHED = (IN_PROGRESS, FAILED)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


HISTORY_KEEP = 20


class Journal:
    def __init__(self, state_dir: Path, redact: Callable[[str], str] | None = None) -> None:
        self.state_dir = state_dir
        self.path = state_dir / JOURNAL_NAME
        self.record: dict[str, Any] = {}
        # Messages in the journal quote errors; whatever they quote passes the secret filter first.
        self._redact = redact or (lambda text: text)

    def load(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            record = json.loads(text)
        except ValueError:
            # Cannot happen with atomic replaces; a hand-edited file is kept for a human to read.
            self.record = {"phase": FAILED, "corrupt": True, "steps": []}
            return self.record
        if not isinstance(record, dict):
            return None
        if record.get("phase") in UNFINISHED:
            # Steps are appended to an unfinished journal; a finished one is only read.
            self.record = record
        return record

    def begin(self, record: dict[str, Any]) -> None:
        """Start a new journal; the previous one (if any) moves to history/."""
        self.archive()
        self.record = {"started": now(), "phase": IN_PROGRESS, "steps": [], **record}
        self.save()

    def archive(self) -> None:
        if not self.path.exists():
            return
        history = self.state_dir / HISTORY_DIR
        history.mkdir(mode=0o700, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = history / f"journal-{stamp}-{os.getpid()}.json"
        os.replace(self.path, target)
        for old in sorted(history.glob("journal-*.json"))[:-HISTORY_KEEP]:
            old.unlink(missing_ok=True)

    def started(self, step: str, **details: Any) -> None:
        self._append(step, "started", details)

    def done(self, step: str, **details: Any) -> None:
        self._append(step, "done", details)

    def _append(self, step: str, state: str, details: dict[str, Any]) -> None:
        entry = {"step": step, "state": state, "at": now(), **details}
        self.record.setdefault("steps", []).append(entry)
        self.save()

    def update(self, **fields: Any) -> None:
        self.record.update(fields)
        self.save()

    def finish(self, phase: str, message: str) -> None:
        self.record.update(phase=phase, message=message, finished=now())
        self.save()

    def save(self) -> None:
        write_atomically(self.path, self._redact(json.dumps(self.record, indent=2)) + "\n")

    # --- reading --------------------------------------------------------------------------------

    def step_state(self, step: str) -> str | None:
        """ "done", "started" or None (never reached) for the latest entry of a step."""
        state = None
        for entry in self.record.get("steps", []):
            if entry.get("step") == step:
                state = entry.get("state")
        return state

    def reached(self, step: str) -> bool:
        return self.step_state(step) is not None

    def last_step(self) -> str | None:
        steps = self.record.get("steps", [])
        return steps[-1]["step"] if steps else None


def write_atomically(path: Path, text: str, mode: int = 0o600) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=str(path.parent), prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(str(directory), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
