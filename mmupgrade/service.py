"""Stopping and starting the Mattermost service.

upgrade.py talks to a ServiceController, not to systemctl, so the whole pipeline runs in tests with a
controller that starts the server as a plain process.
"""

from __future__ import annotations

import subprocess
from typing import Protocol

from .unit import service_name


class ServiceError(Exception):
    pass


class ServiceController(Protocol):
    name: str

    def check(self) -> None:
        """Raise ServiceError if the service cannot be managed at all (checked before any change)."""

    def stop(self) -> None: ...

    def start(self) -> None:
        """Ask for a start and return without waiting for readiness (health.py waits)."""

    def is_active(self) -> bool: ...

    def failure(self) -> str | None:
        """Why the service is not coming up (it exited, keeps restarting), or None while it may still."""


class SystemdService:
    def __init__(self, unit: str = "mattermost") -> None:
        self.name = service_name(unit)

    def _systemctl(self, *args: str, timeout: float = 900.0) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(  # noqa: S603 - fixed argv, no shell
                ["systemctl", *args],  # noqa: S607 - systemctl from PATH
                capture_output=True,
                text=True,
                check=False,
                timeout=timeout,
            )
        except FileNotFoundError:
            raise ServiceError("systemctl is not available: mmupgrade manages a systemd service") from None
        except subprocess.TimeoutExpired:
            raise ServiceError(f"systemctl {' '.join(args)} did not return within {timeout:.0f} s") from None

    def check(self) -> None:
        proc = self._systemctl("show", "-p", "LoadState", self.name, timeout=60)
        if proc.returncode != 0:
            raise ServiceError(
                f"systemd does not answer (systemctl show {self.name}): {_last_line(proc.stderr)}"
            )
        if proc.stdout.strip() != "LoadState=loaded":
            raise ServiceError(
                f"systemd has no unit {self.name}: pass --unit with the name of the Mattermost service"
            )

    def stop(self) -> None:
        proc = self._systemctl("stop", self.name)
        if proc.returncode != 0:
            raise ServiceError(f"systemctl stop {self.name} failed: {_last_line(proc.stderr)}")

    def start(self) -> None:
        # Failure counters from an earlier crash must not stop this start (StartLimitBurst).
        self._systemctl("reset-failed", self.name)
        # --no-block: a Type=notify unit with long migrations would block for up to TimeoutStartSec;
        # health.py waits with its own timeout and watches for failure meanwhile.
        proc = self._systemctl("start", "--no-block", self.name)
        if proc.returncode != 0:
            raise ServiceError(f"systemctl start {self.name} failed: {_last_line(proc.stderr)}")

    def is_active(self) -> bool:
        return self._systemctl("is-active", "--quiet", self.name).returncode == 0

    def failure(self) -> str | None:
        proc = self._systemctl("show", "-p", "ActiveState,SubState,Result,ExecMainStatus", self.name)
        state = dict(line.partition("=")[::2] for line in proc.stdout.splitlines())
        if state.get("ActiveState") == "failed" or state.get("SubState") == "auto-restart":
            status = state.get("ExecMainStatus", "?")
            return (
                f"{self.name} exited with status {status} ({state.get('Result', 'failed')}); "
                f"see: journalctl -u {self.name} -n 50"
            )
        return None


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no error message"
