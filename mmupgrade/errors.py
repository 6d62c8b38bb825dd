"""The one error type for expected failures, and the exit code each kind of failure maps to.

A traceback means a bug; every failure an admin can meet is one of these, printed as one line that
says what happened and what to do, with the documented exit code (README, "mmupgrade").
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_REFUSED = 1  # refused before any change
EXIT_USAGE = 2
EXIT_ROLLED_BACK = 3  # the upgrade failed and was rolled back: the previous version is serving
EXIT_NEEDS_ATTENTION = 4  # the upgrade or rollback failed: a human must look
EXIT_LOCKED = 5  # another run holds the lock
EXIT_UPDATE_AVAILABLE = 10  # --check found a newer release
EXIT_INTERRUPTED = 130


class MmupgradeError(Exception):
    """An expected failure; str(error) is the message shown to the admin."""

    exit_code = EXIT_REFUSED
    status = "refused"

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code


class Refused(MmupgradeError):
    """Preflight or verification said no; nothing was changed on the server."""


class UsageError(MmupgradeError):
    exit_code = EXIT_USAGE


class RolledBack(MmupgradeError):
    """The upgrade failed after changes began and the previous version is serving again."""

    exit_code = EXIT_ROLLED_BACK
    status = "rolled-back"


class NeedsAttention(MmupgradeError):
    """Neither the new nor the old version is known to be serving; the message says what to do."""

    exit_code = EXIT_NEEDS_ATTENTION
    status = "failed"


class Locked(MmupgradeError):
    exit_code = EXIT_LOCKED


class StepFailed(Exception):
    """A step of the pipeline failed (download, backup, start...); the orchestrator decides what follows.

    Steps raise it with a message naming the cause; upgrade.py turns it into Refused, RolledBack or
    NeedsAttention depending on how far the upgrade had gone.
    """
