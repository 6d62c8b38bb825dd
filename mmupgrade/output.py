"""What the admin sees: human lines, progress, and the --json result object.

With --json, stdout carries exactly one JSON object (for Ansible and scripts) and every human line
goes to stderr. Every string passes through the secret filter first.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from .progress import Progress
from .redact import Secrets


class Reporter:
    def __init__(
        self,
        json_mode: bool = False,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        secrets: Secrets | None = None,
    ) -> None:
        self.json_mode = json_mode
        self.stdout = stdout if stdout is not None else sys.stdout
        self.stderr = stderr if stderr is not None else sys.stderr
        self.secrets = secrets if secrets is not None else Secrets()

    @property
    def human(self) -> TextIO:
        return self.stderr if self.json_mode else self.stdout

    def redact(self, text: str) -> str:
        return self.secrets.redact(text)

    def info(self, message: str) -> None:
        self.human.write(self.redact(message) + "\n")
        self.human.flush()

    def warn(self, message: str) -> None:
        self.stderr.write("warning: " + self.redact(message) + "\n")
        self.stderr.flush()

    def error(self, message: str) -> None:
        self.stderr.write("error: " + self.redact(message) + "\n")
        self.stderr.flush()

    def progress(self, label: str, total: int) -> Progress:
        stream = self.human
        return Progress(stream, label, total, tty=_isatty(stream))

    def interactive(self) -> bool:
        return _isatty(sys.stdin) and _isatty(self.stderr)

    def confirm(self, question: str) -> bool:
        self.stderr.write(self.redact(question) + " [y/N] ")
        self.stderr.flush()
        answer = sys.stdin.readline().strip().lower()
        return answer in ("y", "yes")

    def result(self, result: dict[str, Any]) -> None:
        """The final outcome: a JSON object on stdout with --json; the message as a line otherwise."""
        clean = json.loads(self.redact(json.dumps(result)))
        if self.json_mode:
            self.stdout.write(json.dumps(clean, sort_keys=False) + "\n")
            self.stdout.flush()
        message = clean.get("message") or ""
        if not message:
            return
        if clean.get("exit_code", 0) in (0, 10):
            self.info(message)
        else:
            self.error(message)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def result(
    status: str,
    exit_code: int,
    message: str,
    from_version: object = None,
    to_version: object = None,
    *,
    backup: object = None,
    **extra: Any,
) -> dict[str, Any]:
    """The --json object (docs/dev/mmupgrade-design.md): status, from, to, message, backup, exit_code."""
    document: dict[str, Any] = {
        "status": status,
        "from": str(from_version) if from_version is not None else None,
        "to": str(to_version) if to_version is not None else None,
        "message": message,
        "backup": str(backup) if backup is not None else None,
        "exit_code": exit_code,
    }
    document.update(extra)
    return document
