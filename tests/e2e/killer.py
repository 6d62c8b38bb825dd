#!/usr/bin/env python3
"""Run a command and SIGKILL it at a chosen point: a journaled step, or an exact rename(2).

    killer.py --journal FILE --step NAME [--delay S] [--timeout S] --stdout F --stderr F -- COMMAND...
    killer.py --journal FILE --on-rename PATH [--nth N] [--timeout S] --stdout F --stderr F -- COMMAND...

--step: kill the command's whole process group as soon as its journal shows the step started (with
--delay, that many seconds later). The journal is polled every millisecond; mmupgrade replaces it
atomically, and a journal older than the command's start is ignored.
--on-rename: run the command under strace, which delivers SIGKILL when the command (or a child) enters
its Nth rename/renameat/renameat2 naming PATH, before that rename happens: a kill at an exact point
inside a step that takes microseconds (the official layout's switch is a handful of renames).

Test tool copied into the e2e containers; nothing in mmupgrade knows about it. Prints one JSON object:
{"killed": bool, "rc": int, "seconds": float, "journal": <journal at the kill>, "steps_seen": [...]}.
Exit 0 unless it could not run the command (2).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time

RENAMES = "rename,renameat,renameat2"


def load(path: str, not_before: float) -> dict | None:
    try:
        if os.stat(path).st_mtime < not_before:
            return None
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def step_names(journal: dict | None) -> list[str]:
    steps = (journal or {}).get("steps")
    if not isinstance(steps, list):
        return []
    return [str(item.get("step", "")) for item in steps if isinstance(item, dict)]


def kill_at_step(proc: subprocess.Popen, args: argparse.Namespace, not_before: float, deadline: float):
    """Poll the journal until the step shows up, then kill the group. Returns (killed, journal)."""
    journal = None
    while proc.poll() is None and time.monotonic() < deadline:
        current = load(args.journal, not_before)
        if current is not None:
            journal = current
            if args.step in step_names(current):
                if args.delay > 0:
                    time.sleep(args.delay)
                    journal = load(args.journal, not_before) or journal
                if proc.poll() is not None:
                    return False, journal
                os.killpg(proc.pid, signal.SIGKILL)
                return True, journal
        time.sleep(0.001)
    return False, journal


def wait_for_group(pgid: int) -> None:
    """Wait (bounded) until no process of the killed group is left."""
    for _ in range(200):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--journal", required=True)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--step")
    where.add_argument("--on-rename", metavar="PATH")
    parser.add_argument("--nth", type=int, default=1)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait after the step started")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--stdout", required=True)
    parser.add_argument("--stderr", required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command")
    if args.on_rename:
        command = [
            "strace", "-f", "-qq", "-o", "/dev/null", "-P", args.on_rename, "-e", f"trace={RENAMES}",
            "-e", f"inject={RENAMES}:signal=SIGKILL:when={args.nth}", *command,
        ]  # fmt: skip

    # mtime granularity: allow a journal written in the same tick as the start.
    not_before = time.time() - 0.01
    started = time.monotonic()
    deadline = started + args.timeout
    with open(args.stdout, "wb") as out, open(args.stderr, "wb") as err:
        try:
            proc = subprocess.Popen(command, stdout=out, stderr=err, start_new_session=True)
        except OSError as exc:
            print(json.dumps({"error": str(exc)}))
            return 2
    killed, journal = False, None
    if args.step:
        killed, journal = kill_at_step(proc, args, not_before, deadline)
    else:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    if proc.poll() is None:  # timed out: never leave it running
        os.killpg(proc.pid, signal.SIGKILL)
    rc = proc.wait()
    if args.on_rename:
        # strace ends the way its tracee ended; nothing wrote the journal after the kill.
        killed = rc in (-signal.SIGKILL, 128 + signal.SIGKILL)
        journal = load(args.journal, not_before)
    wait_for_group(proc.pid)
    if not killed:
        journal = load(args.journal, not_before)
    report = {
        "killed": killed,
        "rc": rc,
        "seconds": round(time.monotonic() - started, 3),
        "journal": journal,
        "steps_seen": step_names(journal),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
