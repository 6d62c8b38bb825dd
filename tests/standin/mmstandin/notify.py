"""sd_notify: tell systemd (Type=notify units) that the server is ready or stopping.

The official unit is Type=notify, so `systemctl start mattermost` returns only after READY=1; the real
server sends it once it listens (server/cmd/mattermost/commands/server.go, notifyReady).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

READY = "READY=1"
STOPPING = "STOPPING=1"


class NotifyError(Exception):
    """$NOTIFY_SOCKET is set but the message could not be delivered."""


def socket_address(value: str) -> str | None:
    """$NOTIFY_SOCKET as an AF_UNIX address: a path, or '@name' for the abstract namespace."""
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # vsock: and other transports are not for a server under test


def notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send one state line; False when no notification socket is configured."""
    value = (env if env is not None else os.environ).get("NOTIFY_SOCKET", "")
    if not value:
        return False
    address = socket_address(value)
    if address is None:
        raise NotifyError(f"unsupported NOTIFY_SOCKET address {value!r}")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
    except OSError as exc:
        raise NotifyError(f"failed to notify systemd via {value}: {exc.strerror or exc}") from None
    return True
