"""mmupgrade's command line: parse the arguments, run the action, map the outcome to an exit code."""

from __future__ import annotations

import argparse
import re
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from .check import run_check
from .context import DEFAULT_BACKUP_DIR, DEFAULT_KEEP_BACKUPS, DEFAULT_STATE_DIR, Context, Options, Runtime
from .errors import EXIT_INTERRUPTED, EXIT_NEEDS_ATTENTION, EXIT_USAGE, MmupgradeError, UsageError
from .health import DEFAULT_TIMEOUT
from .lock import RunLock
from .output import Reporter, result
from .recovery import pending
from .releases import DEFAULT_RELEASE_URL, DEFAULT_RELEASES_API
from .rollback import run_rollback
from .upgrade import run_upgrade
from .versions import Version

EPILOG = """\
examples:
  mmupgrade --check                  is a newer release out? (exit 10 if so)
  mmupgrade --latest --dry-run       run the preflight checks and show the plan; change nothing
  mmupgrade --latest                 upgrade to the newest release
  mmupgrade --to 11.10.0 --signing-key-fingerprint <FPR>   a given version, signing key pinned
  mmupgrade --tarball /root/mattermost-11.10.0-linux-amd64.tar.gz   air-gapped (the .sig beside it)
  mmupgrade --rollback               back to the release and database from before the last upgrade

exit codes:
  0    done: upgraded, already up to date, rolled back on request, or --check found no update
  1    refused before any change (preflight, verification, not root, ...): nothing was changed
  2    usage error
  3    the upgrade failed and was rolled back: the previous version is serving again
  4    the upgrade or the rollback failed: the server needs attention (the message says what to do)
  5    another mmupgrade run holds the lock
  10   --check: an update is available
  130  interrupted: run mmupgrade again, it reads the journal and finishes or rolls back
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mmupgrade",
        description=(
            "Upgrade a Mattermost server safely: preflight checks, verified download, backup,\n"
            "O(1) switch, health check, automatic rollback. Upgrading to the newest release\n"
            "is the default action."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--latest", action="store_true", help="upgrade to the newest release (the default)")
    action.add_argument("--to", metavar="X.Y.Z", help="upgrade to this version")
    action.add_argument(
        "--check",
        action="store_true",
        help="compare the installed and newest versions (exit 10: update available)",
    )
    action.add_argument(
        "--rollback", action="store_true", help="go back to the state before the last upgrade"
    )
    action.add_argument("--version", action="version", version=f"mmupgrade {__version__}")

    where = parser.add_argument_group("installation")
    where.add_argument(
        "--install-dir",
        type=Path,
        metavar="DIR",
        help="Mattermost install directory (default: from the unit, else /opt/mattermost)",
    )
    where.add_argument(
        "--unit",
        default="mattermost",
        metavar="NAME",
        help="systemd unit of the server (default: mattermost)",
    )

    source = parser.add_argument_group("release")
    source.add_argument(
        "--release-url",
        default=DEFAULT_RELEASE_URL,
        metavar="BASE",
        help=f"where releases are downloaded: BASE/X.Y.Z/<tarball> (default: {DEFAULT_RELEASE_URL})",
    )
    source.add_argument(
        "--releases-api",
        default=DEFAULT_RELEASES_API,
        metavar="URL",
        help=(
            "release list in GitHub's JSON shape, for --latest and --check (default: GitHub's API "
            "for mattermost/mattermost)"
        ),
    )
    source.add_argument(
        "--tarball",
        type=Path,
        metavar="FILE",
        help="air-gapped: a local release tarball, with FILE.sig beside it",
    )
    source.add_argument(
        "--edition",
        choices=("auto", "enterprise", "team"),
        default="auto",
        help="edition to install (auto: the installed one)",
    )
    source.add_argument(
        "--signing-key",
        type=Path,
        metavar="FILE",
        help=(
            "release signing key (default: /etc/mattermost/release-signing-key.asc, else "
            "Mattermost's published key, fetched once and cached)"
        ),
    )
    source.add_argument(
        "--signing-key-fingerprint",
        metavar="FPR",
        help="refuse releases unless the signing key has this fingerprint",
    )
    source.add_argument(
        "--sha256",
        metavar="HEX",
        help="also require this SHA-256 of the tarball (from the version archive page)",
    )

    safety = parser.add_argument_group("backup and safety")
    safety.add_argument(
        "--backup-dir",
        type=Path,
        default=DEFAULT_BACKUP_DIR,
        metavar="DIR",
        help=f"where backups go (default: {DEFAULT_BACKUP_DIR})",
    )
    safety.add_argument(
        "--backup-data",
        action="store_true",
        help="also archive the data directory (it is moved, never rewritten, so this is optional)",
    )
    safety.add_argument(
        "--keep-backups",
        type=int,
        default=DEFAULT_KEEP_BACKUPS,
        metavar="N",
        help=f"backups and previous releases to keep (default: {DEFAULT_KEEP_BACKUPS})",
    )
    safety.add_argument(
        "--health-timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=(
            "how long the new version may take to answer healthy, migrations included (default: "
            f"{DEFAULT_TIMEOUT:g})"
        ),
    )
    safety.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        metavar="DIR",
        help=f"journal, lock and downloads (default: {DEFAULT_STATE_DIR})",
    )

    run = parser.add_argument_group("run")
    run.add_argument(
        "--dry-run", action="store_true", help="run the preflight checks and print the plan; change nothing"
    )
    run.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    run.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object with the result on stdout (messages go to stderr)",
    )
    return parser


def parse_options(argv: Sequence[str]) -> Options:
    args = build_parser().parse_args(argv)
    if args.to is not None:
        try:
            Version.parse(args.to)
        except ValueError as exc:
            raise UsageError(f"--to: {exc}") from None
    if args.keep_backups < 1:
        raise UsageError("--keep-backups must be at least 1 (the last backup is what --rollback restores)")
    if args.health_timeout <= 0:
        raise UsageError("--health-timeout must be a positive number of seconds")
    if args.sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", args.sha256.strip()):
        raise UsageError("--sha256 must be 64 hex digits")
    action = "check" if args.check else "rollback" if args.rollback else "upgrade"
    options = Options(
        action=action,
        to=args.to,
        install_dir=args.install_dir,
        unit=args.unit,
        release_url=args.release_url,
        releases_api=args.releases_api,
        signing_key=args.signing_key,
        signing_key_fingerprint=args.signing_key_fingerprint,
        sha256=args.sha256.strip() if args.sha256 else None,
        tarball=args.tarball,
        edition=args.edition,
        backup_dir=args.backup_dir,
        backup_data=args.backup_data,
        keep_backups=args.keep_backups,
        dry_run=args.dry_run,
        yes=args.yes,
        health_timeout=args.health_timeout,
        state_dir=args.state_dir,
    )
    return options


def main(argv: Sequence[str] | None = None, runtime: Runtime | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    wants_json = "--json" in argv
    reporter = runtime.reporter if runtime is not None else Reporter(json_mode=wants_json)
    reporter.json_mode = wants_json
    try:
        options = parse_options(argv)
    except UsageError as exc:
        build_parser().print_usage(sys.stderr)
        reporter.result(result("refused", EXIT_USAGE, str(exc)))
        return EXIT_USAGE
    except SystemExit as exc:  # --help and --version print and exit 0
        return int(exc.code or 0)
    if runtime is None:
        runtime = Runtime(reporter=reporter)
    ctx = Context(options, runtime)
    previous_handler = _terminate_like_interrupt()
    try:
        outcome = dispatch(ctx)
    except MmupgradeError as exc:
        outcome = result(exc.status, exc.exit_code, exc.message, **_versions(ctx))
    except KeyboardInterrupt:
        outcome = result("failed", EXIT_INTERRUPTED, _interrupted_message(ctx), **_versions(ctx))
    except Exception:  # a bug: show it, and still answer in the documented shape
        reporter.error(reporter.redact(traceback.format_exc()))
        outcome = result("failed", EXIT_NEEDS_ATTENTION, _bug_message(ctx), **_versions(ctx))
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    reporter.result(outcome)
    return int(outcome["exit_code"])


def dispatch(ctx: Context) -> dict[str, Any]:
    if ctx.options.action == "check":
        return run_check(ctx)
    ctx.check_root()
    with RunLock(ctx.options.state_dir):
        if ctx.options.action == "rollback":
            return run_rollback(ctx)
        if ctx.options.dry_run:
            unfinished = pending(ctx)
            if unfinished is not None:
                return result(
                    "refused",
                    1,
                    f"Dry run: an upgrade to {unfinished.get('to')} did not finish; a real run would "
                    "first finish or roll it back. Nothing was changed.",
                    unfinished.get("from"),
                    unfinished.get("to"),
                    dry_run=True,
                )
        return run_upgrade(ctx)


def _versions(ctx: Context) -> dict[str, Any]:
    record = ctx.journal.record or {}
    return {
        "from_version": ctx.from_version or record.get("from"),
        "to_version": ctx.to_version or record.get("to"),
        "backup": record.get("backup"),
    }


def _bug_message(ctx: Context) -> str:
    try:
        unfinished = pending(ctx)
    except OSError:
        unfinished = None
    advice = (
        "run mmupgrade again: it reads the journal and finishes the upgrade or rolls it back"
        if unfinished is not None
        else "nothing was left half-done"
    )
    return f"mmupgrade failed unexpectedly (a bug; the traceback is above): {advice}"


def _interrupted_message(ctx: Context) -> str:
    try:
        unfinished = pending(ctx)
    except OSError:
        unfinished = None
    if unfinished is None:
        return "interrupted; nothing was changed"
    return (
        f"interrupted at step {ctx.journal.last_step()}: run mmupgrade again, it reads the journal "
        f"({ctx.journal.path}) and finishes the upgrade or rolls it back"
    )


def _terminate_like_interrupt() -> Any:
    def handler(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)
