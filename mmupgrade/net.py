"""HTTP(S) requests with the standard library: one place for the User-Agent, timeouts and error wording."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

from . import __version__

USER_AGENT = f"mmupgrade/{__version__} (+https://github.com/mattermost)"


class NetError(Exception):
    """The request failed; the message names the URL and the reason."""


def open_url(
    url: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
    verify_tls: bool = True,
) -> Any:
    """urlopen with mmupgrade's headers; returns the response (HTTP errors are returned, not raised)."""
    if not url.startswith(("http://", "https://", "file://")):
        raise NetError(f"unsupported URL {url!r}: use http://, https:// or file://")
    headers = {"User-Agent": USER_AGENT, **(headers or {})}
    request = urllib.request.Request(url, method=method, headers=headers)  # noqa: S310 - scheme checked
    context = None
    if url.startswith("https://") and not verify_tls:
        # Only for talking to the local server's own TLS listener (health check), never for releases.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        # The scheme was checked above: http(s) for releases, file:// for a list on local disk.
        return urllib.request.urlopen(request, timeout=timeout, context=context)  # noqa: S310
    except urllib.error.HTTPError as exc:
        return exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NetError(f"{method} {url} failed: {reason}") from None


def get_json(url: str, timeout: float = 60.0, headers: dict[str, str] | None = None) -> tuple[Any, Any]:
    """GET url and decode JSON; returns (document, response headers)."""
    response = open_url(url, headers={"Accept": "application/json", **(headers or {})}, timeout=timeout)
    with response:
        status = getattr(response, "status", None) or response.getcode()
        if status is not None and status >= 400:
            raise NetError(f"GET {url} answered HTTP {status}")
        try:
            body = response.read()
        except OSError as exc:
            raise NetError(f"GET {url} failed while reading: {exc}") from None
        try:
            return json.loads(body.decode("utf-8")), response.headers
        except ValueError as exc:
            raise NetError(f"GET {url} did not return JSON: {exc}") from None
