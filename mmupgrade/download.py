"""Streamed download with retries and HTTP Range resume, in constant memory.

The file grows as `<name>.part` and is renamed to its final name only when every byte announced by the
server has arrived, so a complete-looking file is never a truncated one. An interrupted run (network
drop, Ctrl-C, SIGKILL) leaves the .part file, and the next attempt asks only for the missing bytes.

The server's validator (ETag, else Last-Modified) is kept in `<name>.validator`: a resume is sent with
If-Range and a file already downloaded is reused only after If-None-Match says it did not change, so a
file that changed on the server (a mirror switched, a release re-published) is fetched again whole.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from .net import NetError, open_url
from .progress import Progress, human_size

CHUNK_SIZE = 1024 * 1024
RETRIES = 5
TIMEOUT = 60.0

ProgressFactory = Callable[[str, int], Optional[Progress]]


class DownloadError(Exception):
    pass


class _Retry(Exception):
    """A failure worth another attempt (network drop, 5xx, short body)."""

    def __init__(self, reason: str, progressed: bool = False) -> None:
        super().__init__(reason)
        # Bytes arrived before the failure: the retry budget is for failures in a row, not in total.
        self.progressed = progressed


def download(
    url: str,
    dest: Path,
    *,
    progress: ProgressFactory | None = None,
    retries: int = RETRIES,
    chunk_size: int = CHUNK_SIZE,
    timeout: float = TIMEOUT,
    sleep: Callable[[float], None] = time.sleep,
    opener: Callable[..., Any] = open_url,
) -> int:
    """Fetch url into dest; returns its size. Raises DownloadError when it cannot be completed."""
    validator = Validator(dest)
    if dest.exists():
        if validator.unchanged_on_server(url, timeout, opener):
            return dest.stat().st_size
        dest.unlink()
    transfer = _Transfer(url, dest, chunk_size=chunk_size, timeout=timeout, opener=opener, progress=progress)
    failures = 0
    while True:
        try:
            size = transfer.attempt()
        except _Retry as exc:
            failures = 0 if exc.progressed else failures + 1
            if failures > retries:
                raise DownloadError(f"download of {url} failed after {retries} retries: {exc}") from None
            sleep(min(2.0 ** max(failures, 1), 30.0))
            continue
        _fsync(transfer.partial)
        os.replace(transfer.partial, dest)
        if transfer.bar is not None:
            transfer.bar.finish(f"downloaded {dest.name} ({human_size(size)})")
        return size


class _Transfer:
    """One file's download, attempt after attempt, appending to the same .part file."""

    def __init__(
        self,
        url: str,
        dest: Path,
        *,
        chunk_size: int,
        timeout: float,
        opener: Callable[..., Any],
        progress: ProgressFactory | None,
    ) -> None:
        self.url = url
        self.label = dest.name
        self.partial = dest.with_name(dest.name + ".part")
        self.chunk_size = chunk_size
        self.timeout = timeout
        self.opener = opener
        self.progress = progress
        self.bar: Progress | None = None
        self.validator = Validator(dest)

    def attempt(self) -> int:
        offset = self.partial.stat().st_size if self.partial.exists() else 0
        headers = {}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            known = self.validator.if_range()
            if known:
                # Only resume if the file on the server is still the one the partial bytes came from.
                headers["If-Range"] = known
        try:
            response = self.opener(self.url, headers=headers, timeout=self.timeout)
        except NetError as exc:
            raise _Retry(str(exc)) from None
        with response:
            status = getattr(response, "status", None) or response.getcode()
            if status == 416 and offset:
                return self._already_complete(response, offset)
            offset, total, mode = self._where_to_write(response, status, offset)
            if mode == "wb":
                self.validator.save(response.headers)
            if self.bar is None and self.progress is not None:
                self.bar = self.progress(f"downloading {self.label}", total or 0)
            done = self._copy(response, offset, mode)
        if total is not None and done < total:
            # urllib returns a short body without an error when the server closes early.
            reason = f"the server closed the connection after {done} of {total} bytes"
            raise _Retry(reason, progressed=done > offset)
        if total is not None and done > total:
            self.partial.unlink()
            raise _Retry(f"received {done} bytes but the server announced {total}; starting over")
        return done

    def _already_complete(self, response: Any, offset: int) -> int:
        """416 to a resume: the partial file is whole already, or does not belong to this file."""
        total = _content_range_total(response.headers.get("Content-Range", ""))
        if total == offset:
            return offset
        self.partial.unlink()
        raise _Retry("the partial download did not match the file on the server; starting over")

    def _where_to_write(self, response: Any, status: int, offset: int) -> tuple[int, int | None, str]:
        """(offset, total size, file mode) for this response, or why it cannot be used."""
        if status == 206:
            start, total = _content_range(response.headers.get("Content-Range", ""))
            if start != offset:
                self.partial.unlink(missing_ok=True)
                raise _Retry("the server resumed at the wrong offset; starting over")
            return offset, total, "ab"
        if status == 200:
            length = response.headers.get("Content-Length")
            return 0, int(length) if length and length.isdigit() else None, "wb"
        if status in (404, 410):
            raise DownloadError(f"{self.url} does not exist (HTTP {status})")
        if status == 429 or status >= 500:
            raise _Retry(f"HTTP {status}")
        raise DownloadError(f"GET {self.url} answered HTTP {status}")

    def _copy(self, response: Any, offset: int, mode: str) -> int:
        """Stream the body into the .part file chunk by chunk; returns the file's size after."""
        done = offset
        try:
            out = open(self.partial, mode)  # noqa: SIM115 - closed in finally; read and write errors differ
        except OSError as exc:
            raise DownloadError(f"cannot write {self.partial}: {exc}") from None
        try:
            while True:
                try:
                    chunk = response.read(self.chunk_size)
                except (OSError, http.client.HTTPException) as exc:
                    reason = f"connection lost after {human_size(done)}: {exc or type(exc).__name__}"
                    raise _Retry(reason, progressed=done > offset) from None
                if not chunk:
                    return done
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise DownloadError(f"cannot write {self.partial}: {exc}") from None
                done += len(chunk)
                if self.bar is not None:
                    self.bar.update(done)
        finally:
            out.close()


class Validator:
    """The server's ETag / Last-Modified for a download, kept beside it."""

    def __init__(self, dest: Path) -> None:
        self.path = dest.with_name(dest.name + ".validator")

    def save(self, headers: Any) -> None:
        known = {"etag": headers.get("ETag"), "last_modified": headers.get("Last-Modified")}
        self.path.write_text(json.dumps(known))

    def load(self) -> dict[str, str | None]:
        try:
            known = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return known if isinstance(known, dict) else {}

    def if_range(self) -> str | None:
        known = self.load()
        etag = known.get("etag")
        # A weak ETag may not be used in If-Range (RFC 9110 13.1.5).
        if etag and not etag.startswith("W/"):
            return etag
        return known.get("last_modified")

    def unchanged_on_server(self, url: str, timeout: float, opener: Callable[..., Any]) -> bool:
        """True when the server answers 304 to a conditional GET; anything else means fetch again."""
        known = self.load()
        headers = {}
        if known.get("etag"):
            headers["If-None-Match"] = str(known["etag"])
        elif known.get("last_modified"):
            headers["If-Modified-Since"] = str(known["last_modified"])
        else:
            return False
        try:
            response = opener(url, headers=headers, timeout=timeout)
        except NetError:
            return False
        with response:
            return (getattr(response, "status", None) or response.getcode()) == 304

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _content_range(header: str) -> tuple[int, int | None]:
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", header)
    if not match:
        raise _Retry(f"the server sent an unreadable Content-Range {header!r}")
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), total


def _content_range_total(header: str) -> int | None:
    match = re.fullmatch(r"\s*bytes\s+\*/(\d+)\s*", header)
    return int(match.group(1)) if match else None


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def remote_size(url: str, timeout: float = 30.0, opener: Callable[..., Any] = open_url) -> int | None:
    """Size of the file at url if it exists (HEAD); None when the server does not say. Raises when missing."""
    try:
        response = opener(url, method="HEAD", timeout=timeout)
    except NetError as exc:
        raise DownloadError(str(exc)) from None
    with response:
        status = getattr(response, "status", None) or response.getcode()
        if status in (404, 410):
            raise DownloadError(f"{url} does not exist (HTTP {status})")
        if status == 405:
            return None  # no HEAD support: the download will tell
        if status >= 400:
            raise DownloadError(f"HEAD {url} answered HTTP {status}")
        length = response.headers.get("Content-Length")
        return int(length) if length and length.isdigit() else None
