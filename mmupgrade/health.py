"""Is the server up, on the expected version? /api/v4/system/ping plus the X-Version-Id header.

Healthy means HTTP 200, {"status": "OK"}, and X-Version-Id whose version is the one expected:
"<version>.<build number>.<config hash>.<licensed>" (facts section 4). Old dot releases put X.Y.0 first
and the patch in the build number, so that form is accepted too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import StepFailed
from .net import NetError, open_url
from .service import ServiceController
from .settings import Settings
from .versions import Version

DEFAULT_TIMEOUT = 600.0
POLL_SECONDS = 2.0
REPORT_EVERY = 30.0


def ping_url(settings: Settings) -> str:
    """The ping URL on this host, from ServiceSettings.ListenAddress (and TLS when the server does it)."""
    host, _, port = settings.listen_address.rpartition(":")
    host = host.strip()
    if host in ("", "0.0.0.0"):  # noqa: S104 - a wildcard listener is probed on loopback
        host = "127.0.0.1"
    elif host in ("[::]", "::"):
        host = "[::1]"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    scheme = "https" if settings.tls else "http"
    return f"{scheme}://{host}:{port or '8065'}/api/v4/system/ping"


def version_matches(header: str, expected: Version) -> bool:
    parts = header.split(".")
    if len(parts) < 3:
        return False
    first = Version.find(".".join(parts[:3]))
    if first == expected:
        return True
    if (
        first is not None
        and first.patch == 0
        and (first.major, first.minor) == (expected.major, expected.minor)
    ):
        return Version.find(".".join(parts[3:6])) == expected
    return False


@dataclass
class Observation:
    healthy: bool
    description: str  # what the last probe saw, for the failure message


def probe(url: str, expected: Version, timeout: float = 10.0) -> Observation:
    try:
        response = open_url(url, timeout=timeout, verify_tls=False)
    except NetError as exc:
        return Observation(False, f"no answer from {url} ({_reason(exc)})")
    with response:
        status = getattr(response, "status", None) or response.getcode()
        header = response.headers.get("X-Version-Id", "") or ""
        try:
            body = json.loads(response.read(65536).decode("utf-8", "replace"))
        except (ValueError, OSError):
            body = {}
    body_status = body.get("status", "?") if isinstance(body, dict) else "?"
    if status != 200 or body_status != "OK":
        return Observation(False, f"ping answered {status} {body_status}")
    if not version_matches(header, expected):
        shown = ".".join(header.split(".")[:3]) or "no X-Version-Id"
        return Observation(False, f"ping answered OK but from version {shown}, not {expected}")
    return Observation(True, f"ping OK, version {expected}")


def wait_healthy(
    url: str,
    expected: Version,
    timeout: float,
    service: ServiceController | None = None,
    *,
    poll: float = POLL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_wait: Callable[[str], None] | None = None,
) -> None:
    """Return once healthy on `expected`; StepFailed naming the cause otherwise."""
    started = clock()
    deadline = started + timeout
    reported = started
    while True:
        last = probe(url, expected, timeout=min(10.0, max(1.0, timeout)))
        if last.healthy:
            return
        if service is not None:
            failure = service.failure()
            if failure is not None:
                raise StepFailed(f"{expected} did not start: {failure}")
        now = clock()
        if now >= deadline:
            raise StepFailed(f"{expected} did not become healthy within {timeout:g} s: {last.description}")
        if on_wait is not None and now - reported >= REPORT_EVERY:
            # Migrations run at start, before the server listens: silence is normal for a while.
            reported = now
            on_wait(f"still waiting for {expected} after {now - started:.0f} s ({last.description})")
        sleep(min(poll, max(0.0, deadline - now)))


def _reason(exc: NetError) -> str:
    text = str(exc)
    return text.rsplit(": ", 1)[-1] if ": " in text else text
