"""Which releases exist: the release list (GitHub "list releases" shape) and the tarball URLs.

The default list is GitHub's API for mattermost/mattermost; any URL answering the same JSON (a mirror,
a static file) works. GitHub's own "latest" is the most recently *published* release, which can be an
older ESR patch, so the newest version is chosen by version order instead (facts section 3).
"""

from __future__ import annotations

import platform
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .net import NetError, get_json
from .versions import Version

DEFAULT_RELEASES_API = "https://api.github.com/repos/mattermost/mattermost/releases"
DEFAULT_RELEASE_URL = "https://releases.mattermost.com"
PER_PAGE = 100
MAX_PAGES = 30  # 3000 releases; the list grows by about 40 a year
_STABLE_TAG = re.compile(r"v?\d+\.\d+\.\d+")
_ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}

FetchJson = Callable[[str], "tuple[Any, Any]"]


class ReleaseListError(Exception):
    pass


def architecture(machine: str | None = None) -> str:
    machine = (machine or platform.machine()).lower()
    return _ARCHITECTURES.get(machine, machine)


def tarball_name(version: Version, edition: str, arch: str | None = None) -> str:
    """The file names releases.mattermost.com uses (facts section 3)."""
    arch = arch or architecture()
    prefix = "mattermost-team-" if edition == "team" else "mattermost-"
    return f"{prefix}{version}-linux-{arch}.tar.gz"


def tarball_url(base_url: str, version: Version, edition: str, arch: str | None = None) -> str:
    return f"{base_url.rstrip('/')}/{version}/{tarball_name(version, edition, arch)}"


def parse_tarball_name(name: str) -> tuple[Version, str] | None:
    """(version, edition) from a release file name, or None when it is not one."""
    match = re.fullmatch(r"mattermost-(team-|enterprise-)?(\d+\.\d+\.\d+)-linux-[a-z0-9_]+\.tar\.gz", name)
    if not match:
        return None
    edition = "team" if match.group(1) == "team-" else "enterprise"
    return Version.parse(match.group(2)), edition


def stable_versions(releases: list[Any]) -> list[Version]:
    """Versions of published, non-prerelease releases whose tag is vX.Y.Z, newest first."""
    found: set[Version] = set()
    for release in releases:
        if not isinstance(release, dict):
            continue
        if release.get("draft") or release.get("prerelease"):
            continue
        tag = str(release.get("tag_name") or "")
        if not _STABLE_TAG.fullmatch(tag):
            continue
        found.add(Version.parse(tag))
    return sorted(found, reverse=True)


def fetch_release_list(api_url: str, fetch_json: FetchJson = get_json) -> list[Any]:
    """Every release object, following pagination.

    GitHub pages with ?per_page=&page= and a Link header; a static file ignores the query and answers
    the same list again, so paging stops at the first page that brings nothing new.
    """
    releases: list[Any] = []
    seen: set[str] = set()
    url: str | None = _with_query(api_url, {"per_page": str(PER_PAGE)})
    page = 1
    while url and page <= MAX_PAGES:
        try:
            document, headers = fetch_json(url)
        except NetError as exc:
            raise ReleaseListError(
                f"cannot read the release list: {exc}; name the version with --to X.Y.Z, or point "
                "--releases-api at a mirror of the list"
            ) from None
        if isinstance(document, dict) and "tag_name" in document:
            document = [document]  # a single release object (".../releases/latest")
        if not isinstance(document, list):
            raise ReleaseListError(f"the release list at {api_url} is not a JSON list of releases")
        new = [r for r in document if isinstance(r, dict) and str(r.get("tag_name")) not in seen]
        if not new:
            break
        for release in new:
            seen.add(str(release.get("tag_name")))
        releases.extend(new)
        next_url = _next_link(headers)
        if next_url is None:
            if len(document) < PER_PAGE:
                break
            page += 1
            next_url = _with_query(api_url, {"per_page": str(PER_PAGE), "page": str(page)})
        else:
            page += 1
        url = next_url
    return releases


def newest_version(api_url: str, fetch_json: FetchJson = get_json) -> Version:
    versions = stable_versions(fetch_release_list(api_url, fetch_json))
    if not versions:
        raise ReleaseListError(f"the release list at {api_url} has no stable vX.Y.Z release")
    return versions[0]


def _with_query(url: str, params: dict[str, str]) -> str:
    if url.startswith("file://"):
        return url
    parts = urlsplit(url)
    kept = [p for p in parts.query.split("&") if p and p.split("=", 1)[0] not in params]
    query = "&".join([*kept, *(f"{k}={v}" for k, v in params.items())])
    return urlunsplit(parts._replace(query=query))


def _next_link(headers: Any) -> str | None:
    link = headers.get("Link") if headers is not None else None
    if not link:
        return None
    for part in link.split(","):
        match = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', part)
        if match:
            return match.group(1)
    return None
