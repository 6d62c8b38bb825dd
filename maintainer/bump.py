"""Move the project to a new Mattermost release: the one-line change maintainers make after each release.

    scripts/bump-mattermost-version [--to X.Y.Z] [--releases-api URL] [--project DIR] [--dry-run]
                                    [--github-output FILE]

`mattermost_version: "X.Y.Z"` in roles/mattermost/defaults/main.yml is what every new install gets. This
reads the same release list as `mmupgrade --check` (mmupgrade.releases) and, when the newest stable release
(or --to) is newer than that line, rewrites the version in that line alone, leaves every other byte of the
file as it was, adds an entry to CHANGELOG.md under "## [Unreleased]", and prints the unified diff of the
line. A dot release (same X.Y) is recorded under "### Security", because that is how Mattermost ships
security fixes; a feature or major release under "### Changed". The subsection is created, in Keep a
Changelog's order, when it does not exist yet.

--to must name a stable release in the list (a typo would break every new install), so --to reads the list
too; point --releases-api at a mirror or a file:// copy of the list where GitHub is out of reach. With
GITHUB_TOKEN set, the token is sent to https://api.github.com and nowhere else (an anonymous client gets
60 requests an hour per address, which shared CI runners use up).

Exit codes:
    0    bumped; or nothing to do (the line is already at the newest release, or at --to); or --dry-run
    1    refused, nothing was changed: --to older than the line (no downgrades) or on a known-bad upgrade
         path, --to not a published stable release, release list unreadable (network error, not JSON, no
         stable release), the version line or "## [Unreleased]" not found
    2    usage error, e.g. a malformed --to
    130  interrupted

--github-output FILE (pass "$GITHUB_OUTPUT" in a workflow) appends three KEY=VALUE lines on exit 0, and
nothing otherwise:
    changed=true|false   true when the two files were rewritten (false: nothing to do, or --dry-run)
    previous=A.B.C       the version in the line before this run
    version=X.Y.Z        the version in the line after this run (with --dry-run: the one it would get)
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TextIO
from urllib.parse import urlsplit

from mmupgrade.net import NetError, get_json
from mmupgrade.releases import DEFAULT_RELEASES_API, ReleaseListError, fetch_release_list, stable_versions
from mmupgrade.versions import Version, known_bad_path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULTS_FILE = Path("roles/mattermost/defaults/main.yml")
CHANGELOG_FILE = Path("CHANGELOG.md")

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_KEY = "mattermost_version:"
# The value's quoting and anything after it (spaces, a comment) are kept exactly as they are.
_VERSION_LINE = re.compile(
    r"mattermost_version:[ \t]+(?P<quote>[\"']?)(?P<version>\d+\.\d+\.\d+)(?P=quote)[ \t]*(?:#.*)?"
)
_UNRELEASED = re.compile(r"## \[Unreleased\][ \t]*")
_SUBSECTION = re.compile(r"### (?P<name>\S.*?)[ \t]*")
# Keep a Changelog 1.1.0 lists the kinds of change in this order.
SECTION_ORDER = ("Added", "Changed", "Deprecated", "Removed", "Fixed", "Security")

EPILOG = """\
examples:
  scripts/bump-mattermost-version                 bump to the newest stable release
  scripts/bump-mattermost-version --dry-run       show the diff; change nothing
  scripts/bump-mattermost-version --to 11.10.1    a given release (never older than the current one)
  scripts/bump-mattermost-version --github-output "$GITHUB_OUTPUT"   in a GitHub workflow

exit codes:
  0    bumped, nothing to do (already at the newest release or at --to), or --dry-run
  1    refused, nothing was changed: downgrade, known-bad upgrade path, --to not a published release,
       release list unreadable, version line or "## [Unreleased]" not found
  2    usage error
  130  interrupted

--github-output FILE appends, on exit 0 only:
  changed=true|false   the files were rewritten (false: nothing to do, or --dry-run)
  previous=A.B.C       the version before this run
  version=X.Y.Z        the version after this run (with --dry-run: the one it would get)
"""


class BumpError(Exception):
    """An expected failure; str(error) is the one-line message, and nothing was changed."""


class UsageError(BumpError):
    pass


@dataclass(frozen=True)
class Outcome:
    previous: Version
    version: Version
    changed: bool


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bump-mattermost-version",
        description=(
            "Set mattermost_version in roles/mattermost/defaults/main.yml to the newest stable Mattermost\n"
            "release (or --to X.Y.Z), add a CHANGELOG.md entry under [Unreleased], print the diff."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--to", metavar="X.Y.Z", help="this release instead of the newest")
    parser.add_argument(
        "--releases-api",
        default=DEFAULT_RELEASES_API,
        metavar="URL",
        help=(
            "release list in GitHub's JSON shape, the one mmupgrade --check reads (default: GitHub's API "
            "for mattermost/mattermost; also a mirror or a file:// copy)"
        ),
    )
    parser.add_argument(
        "--project",
        type=Path,
        default=PROJECT_ROOT,
        metavar="DIR",
        help="the checkout to change (default: the one this command is in)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the diff and the entry; change nothing")
    parser.add_argument(
        "--github-output",
        type=Path,
        metavar="FILE",
        help="append changed=, previous=, version= lines to FILE on success (GitHub's $GITHUB_OUTPUT)",
    )
    return parser


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None) -> int:
    out = stdout if stdout is not None else sys.stdout
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        target = _parse_target(args.to)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help prints and exits 0
        return int(exc.code or 0)
    try:
        outcome = bump(args.project, args.releases_api, target, dry_run=args.dry_run, out=out)
        if args.github_output is not None:
            write_github_output(args.github_output, outcome)
    except BumpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        print("interrupted: `git status` shows whether a file was already written", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


def bump(project: Path, releases_api: str, target: Version | None, dry_run: bool, out: TextIO) -> Outcome:
    defaults_path, changelog_path = project / DEFAULTS_FILE, project / CHANGELOG_FILE
    defaults = _read(defaults_path)
    changelog = _read(changelog_path)
    line_number, current = find_version(defaults, DEFAULTS_FILE)
    # Checked before the release list is read: a CHANGELOG.md without [Unreleased] fails fast.
    unreleased_section(changelog.splitlines(keepends=True))

    newest = _target_version(current, target, releases_api, out)
    if newest is None:
        return Outcome(current, current, changed=False)

    new_defaults = set_version(defaults, line_number, newest)
    section = changelog_section(current, newest)
    entry = changelog_entry(current, newest)
    new_changelog = changelog_with_entry(changelog, section, entry)

    out.write(version_diff(defaults, new_defaults, DEFAULTS_FILE))
    out.write(f"{CHANGELOG_FILE}, under ## [Unreleased] / ### {section}:\n+{entry}\n")
    if dry_run:
        out.write("Dry run: nothing was changed.\n")
        return Outcome(current, newest, changed=False)
    _replace(defaults_path, new_defaults, "nothing was changed")
    _replace(
        changelog_path,
        new_changelog,
        f"{DEFAULTS_FILE} was already changed: add the entry above by hand, or restore it with git",
    )
    out.write(
        f"mattermost_version {current} -> {newest}: {DEFAULTS_FILE} and {CHANGELOG_FILE} changed; "
        "review them with `git diff` and open a pull request.\n"
    )
    return Outcome(current, newest, changed=True)


def _target_version(
    current: Version, target: Version | None, releases_api: str, out: TextIO
) -> Version | None:
    """The version to move to, or None (after saying why) when there is nothing to do."""
    if target is None:
        return _newest_release(current, releases_api, out)
    if target == current:
        out.write(f"mattermost_version is already {current}; nothing to do.\n")
        return None
    # Both refusals come before the release list is read: they need no network.
    if target < current:
        raise BumpError(
            f"--to {target} is older than mattermost_version {current}: the default version is never "
            "lowered (hosts cannot downgrade; the database schema of a newer release does not go back); "
            "nothing was changed"
        )
    _refuse_known_bad_path(current, target)
    published = _stable_versions(releases_api)
    if target not in published:
        raise BumpError(
            f"--to {target} is not a published stable release in the list at {releases_api} (newest: "
            f"{published[0]}); nothing was changed"
        )
    return target


def _newest_release(current: Version, releases_api: str, out: TextIO) -> Version | None:
    newest = _stable_versions(releases_api)[0]
    if newest == current:
        out.write(f"mattermost_version is already {current}, the newest stable release; nothing to do.\n")
        return None
    if newest < current:
        out.write(
            f"mattermost_version is {current}, newer than the newest stable release in the list at "
            f"{releases_api} ({newest}); nothing to do.\n"
        )
        return None
    _refuse_known_bad_path(current, newest)
    out.write(f"Newest stable Mattermost release: {newest} (was {current})\n")
    return newest


def _refuse_known_bad_path(current: Version, target: Version) -> None:
    # Hosts installed at the current default would be upgraded along this path; mmupgrade refuses it there.
    problem = known_bad_path(current, target)
    if problem is not None:
        raise BumpError(f"{problem}; nothing was changed")


def _stable_versions(releases_api: str) -> list[Version]:
    try:
        versions = stable_versions(fetch_release_list(releases_api, _fetch_json))
    except ReleaseListError as exc:
        raise BumpError(f"{exc}; nothing was changed") from None
    if not versions:
        raise BumpError(
            f"the release list at {releases_api} has no stable vX.Y.Z release; nothing was changed"
        )
    return versions


def _fetch_json(url: str) -> tuple[Any, Any]:
    try:
        return get_json(url, headers=github_headers(url))
    except NetError as exc:
        # Raised here rather than by fetch_release_list: its wording advises --to, which reads the list too.
        raise BumpError(
            f"cannot read the release list: {exc}; nothing was changed (--releases-api can name a mirror "
            "or a file:// copy of the list)"
        ) from None


def github_headers(url: str) -> dict[str, str]:
    """Authorization for GitHub's API when GITHUB_TOKEN is set: to api.github.com over HTTPS only."""
    token = os.environ.get("GITHUB_TOKEN", "").strip()
    parts = urlsplit(url)
    if token and parts.scheme == "https" and parts.hostname == "api.github.com":
        return {"Authorization": f"Bearer {token}"}
    return {}


# --- the version line ------------------------------------------------------------------------------


def find_version(text: str, label: Path) -> tuple[int, Version]:
    """(index, version) of the one top-level `mattermost_version: "X.Y.Z"` line in the defaults file."""
    found = [i for i, line in enumerate(text.splitlines()) if line.startswith(_KEY)]
    if len(found) != 1:
        raise BumpError(
            f"{label} must have exactly one top-level `{_KEY}` line, it has {len(found)}; nothing was changed"
        )
    line = text.splitlines()[found[0]]
    match = _VERSION_LINE.fullmatch(line)
    if match is None:
        raise BumpError(f'{label} line {found[0] + 1} is not `{_KEY} "X.Y.Z"`: {line!r}; nothing was changed')
    return found[0], Version.parse(match.group("version"))


def set_version(text: str, index: int, version: Version) -> str:
    """text with the version in line `index` replaced; quoting, comment, line ending and the rest kept."""
    lines = text.splitlines(keepends=True)
    line = lines[index]
    match = _VERSION_LINE.match(line)
    if match is None:  # find_version checked this line; a caller passing another index is a bug
        raise ValueError(f"line {index + 1} is not a version line: {line!r}")
    lines[index] = line[: match.start("version")] + str(version) + line[match.end("version") :]
    return "".join(lines)


def version_diff(old: str, new: str, label: Path) -> str:
    """The unified diff, without context: the version line only."""
    diff = difflib.unified_diff(
        old.splitlines(), new.splitlines(), f"a/{label}", f"b/{label}", n=0, lineterm=""
    )
    return "".join(line + "\n" for line in diff)


# --- CHANGELOG.md -----------------------------------------------------------------------------------


def changelog_section(current: Version, new: Version) -> str:
    same_line = (current.major, current.minor) == (new.major, new.minor)
    return "Security" if same_line else "Changed"


def changelog_entry(current: Version, new: Version) -> str:
    return (
        f"- Mattermost Server {new} (was {current}): default `mattermost_version` of the `mattermost` role."
    )


def changelog_with_entry(text: str, section: str, entry: str) -> str:
    """text with `entry` at the end of "### section" under "## [Unreleased]", creating the subsection."""
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    start, end = unreleased_section(lines)
    headings = {}
    for i in range(start + 1, end):
        match = _SUBSECTION.fullmatch(lines[i].rstrip("\r\n"))
        if match:
            headings[match.group("name")] = i

    if section in headings:
        following = [i for i in headings.values() if i > headings[section]]
        at = _after_last_text(lines, headings[section], min(following, default=end))
        block = [entry + newline]
    else:
        later = [i for name, i in headings.items() if _order(name) > _order(section)]
        if later:
            at = min(later)
            block = [f"### {section}{newline}", newline, entry + newline, newline]
        else:
            at = _after_last_text(lines, start, end)
            block = [newline, f"### {section}{newline}", newline, entry + newline]
    if at > 0 and not lines[at - 1].endswith(("\n", "\r")):
        lines[at - 1] += newline  # the file ended without a newline
    return "".join(lines[:at] + block + lines[at:])


def unreleased_section(lines: list[str]) -> tuple[int, int]:
    """(index of the "## [Unreleased]" heading, index of the next "## " heading or the end)."""
    start = next((i for i, line in enumerate(lines) if _UNRELEASED.fullmatch(line.rstrip("\r\n"))), None)
    if start is None:
        raise BumpError(f'{CHANGELOG_FILE} has no "## [Unreleased]" section; nothing was changed')
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return start, end


def _after_last_text(lines: list[str], first: int, end: int) -> int:
    """The index after the last non-blank line in lines[first:end] (a list and its continuation lines)."""
    last = first
    for i in range(first, end):
        if lines[i].strip():
            last = i
    return last + 1


def _order(section: str) -> int:
    return SECTION_ORDER.index(section) if section in SECTION_ORDER else -1


# --- files and the workflow's output ---------------------------------------------------------------


def write_github_output(path: Path, outcome: Outcome) -> None:
    lines = [
        f"changed={'true' if outcome.changed else 'false'}",
        f"previous={outcome.previous}",
        f"version={outcome.version}",
    ]
    try:
        with path.open("a", encoding="utf-8") as output:
            output.write("".join(line + "\n" for line in lines))
    except OSError as exc:
        done = "the files were changed" if outcome.changed else "nothing was changed"
        raise BumpError(f"cannot append to --github-output {path}: {exc.strerror} ({done})") from None


def _parse_target(text: str | None) -> Version | None:
    if text is None:
        return None
    try:
        return Version.parse(text)
    except ValueError as exc:
        raise UsageError(f"--to: {exc}") from None


def _read(path: Path) -> str:
    try:
        # Bytes decoded by hand: read_text would turn CRLF into LF, and the file must stay byte for byte.
        return path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise BumpError(f"cannot read {path}: {exc.strerror}; is --project this repository?") from None
    except UnicodeDecodeError as exc:
        raise BumpError(f"{path} is not UTF-8 ({exc.reason}); nothing was changed") from None


def _replace(path: Path, text: str, if_failed: str) -> None:
    """Write beside the file and rename over it: an interrupted run leaves the old file or the new one."""
    staged = path.with_name(f".{path.name}.bump")
    try:
        staged.write_bytes(text.encode("utf-8"))
        shutil.copymode(path, staged)
        os.replace(staged, path)
    except OSError as exc:
        staged.unlink(missing_ok=True)
        raise BumpError(f"cannot write {path}: {exc.strerror}; {if_failed}") from None


if __name__ == "__main__":
    raise SystemExit(main())
