"""Everything checked before the server is touched; any failure here is exit 1 with nothing changed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .context import Context
from .database import DatabaseError, DataSource, find_tool
from .download import DownloadError, remote_size
from .errors import Refused
from .hostfs import check_space, tree_size
from .installation import OFFICIAL, Installation
from .journal import write_atomically
from .releases import tarball_name, tarball_url
from .service import ServiceError
from .stage import plan_paths
from .swap import unmovable_entries
from .verify import Keyring, VerifyError, normalize_fingerprint, resolve_signing_key
from .versions import Version, minimum_postgres_major

# When the server does not say how big the tarball is; real releases are 400-500 MiB.
UNKNOWN_TARBALL_SIZE = 600 * 1024 * 1024
PIN_FILE = "signing-key.fingerprint"
# Unpacked size relative to the tarball (the release's binaries and web app compress about 3:1).
UNPACK_FACTOR = 3


@dataclass
class Preflight:
    tarball_name: str
    tarball_url: str | None  # None when --tarball
    signature_url: str | None
    local_tarball: Path | None
    tarball_size: int
    key_file: Path
    key_origin: str
    fingerprints: list[str]
    pinned: str | None
    postgres_version: int
    schema_version: int
    database_size: int
    notes: list[str] = field(default_factory=list)


def run_preflight(ctx: Context, installation: Installation, target: Version, edition: str) -> Preflight:
    """Check everything that can be checked without changing anything; Refused says what is wrong."""
    ctx.check_root()
    try:
        ctx.service.check()
    except ServiceError as exc:
        raise Refused(str(exc)) from None
    if installation.layout == OFFICIAL:
        unmovable = unmovable_entries(installation.root)
        if unmovable:
            raise Refused(
                f"cannot switch releases in {installation.root}: {', '.join(unmovable)}. mmupgrade moves the "
                "tree and its data by rename, which a mount point cannot be: mount the volume elsewhere and "
                "point FileSettings.Directory at it, or move to the versioned layout of the mattermost role"
            )
    version_num, schema, database_size = _check_database(ctx, installation, target)
    name, url, size = _check_release(ctx, target, edition)
    key_file, origin, fingerprints, pinned = _check_signing_key(ctx)
    _check_space(ctx, installation, size, database_size)
    return Preflight(
        tarball_name=name,
        tarball_url=url,
        signature_url=f"{url}.sig" if url else None,
        local_tarball=ctx.options.tarball,
        tarball_size=size,
        key_file=key_file,
        key_origin=origin,
        fingerprints=fingerprints,
        pinned=pinned,
        postgres_version=version_num,
        schema_version=schema,
        database_size=database_size,
    )


def _check_database(ctx: Context, installation: Installation, target: Version) -> tuple[int, int, int]:
    """Reachable with the server's own credentials, and new enough for the target: (version, schema, size)."""
    database = ctx.database(installation)
    for tool in ("psql", "pg_dump", "pg_restore"):
        try:
            find_tool(tool)
        except DatabaseError as exc:
            raise Refused(str(exc)) from None
    try:
        version_num = database.server_version_num()
        schema = database.schema_version()
        size = database.size_bytes()
    except DatabaseError as exc:
        raise Refused(f"PostgreSQL is not reachable with the server's credentials: {exc}") from None
    minimum = minimum_postgres_major(target)
    if version_num // 10000 < minimum:
        raise Refused(
            f"Mattermost {target} needs PostgreSQL {minimum} or later; the database runs "
            f"{version_num // 10000}.{version_num % 10000}: upgrade PostgreSQL first"
        )
    return version_num, schema, size


def _check_release(ctx: Context, target: Version, edition: str) -> tuple[str, str | None, int]:
    """The release exists (HEAD of the tarball and its signature, or the local files): (name, url, size)."""
    local = ctx.options.tarball
    if local is not None:
        if not local.is_file():
            raise Refused(f"--tarball {local} does not exist")
        if not Path(f"{local}.sig").is_file():
            raise Refused(f"--tarball {local} has no signature {local}.sig beside it")
        return local.name, None, local.stat().st_size
    url = tarball_url(ctx.options.release_url, target, edition, ctx.runtime.arch)
    try:
        size = remote_size(url) or UNKNOWN_TARBALL_SIZE
        remote_size(f"{url}.sig")
    except DownloadError as exc:
        raise Refused(f"release {target} ({edition}) is not available: {exc}") from None
    return tarball_name(target, edition, ctx.runtime.arch), url, size


def _check_signing_key(ctx: Context) -> tuple[Path, str, list[str], str | None]:
    """The signing key at hand (fetched once if needed), agreeing with the pin when there is one.

    A pin given with --signing-key-fingerprint is remembered in the state directory once the key
    matches it, and every later run enforces it until another pin replaces it.
    """
    options = ctx.options
    remembered = options.state_dir / PIN_FILE
    pinned = None
    if options.signing_key_fingerprint:
        try:
            pinned = normalize_fingerprint(options.signing_key_fingerprint)
        except ValueError as exc:
            raise Refused(f"--signing-key-fingerprint: {exc}") from None
    elif remembered.is_file():
        pinned = remembered.read_text().strip() or None
    try:
        key_file, origin = resolve_signing_key(options.signing_key, options.state_dir)
        with Keyring(key_file) as keyring:
            keyring.check_pin(pinned)
            fingerprints = keyring.fingerprints
    except VerifyError as exc:
        if pinned and not options.signing_key_fingerprint:
            raise Refused(
                f"{exc} (pinned by an earlier --signing-key-fingerprint, kept in {remembered}; if the "
                "release key really changed, pass its new fingerprint)"
            ) from None
        raise Refused(str(exc)) from None
    if options.signing_key_fingerprint and pinned and not options.dry_run:
        write_atomically(remembered, pinned + "\n", mode=0o644)
    return key_file, origin, fingerprints, pinned


def _check_space(ctx: Context, installation: Installation, tarball_size: int, database_size: int) -> None:
    """Disk space, summed per filesystem: download, unpacked release, backup (and data, if asked)."""
    options = ctx.options
    # The new tree is staged next to the old one: in releases/, or beside the official tree.
    staging = installation.releases_dir if installation.layout != OFFICIAL else installation.root.parent
    needs = [
        ("download", options.state_dir, tarball_size),
        ("unpacked release", staging, tarball_size * UNPACK_FACTOR),
        ("database backup", options.backup_dir, database_size),
    ]
    data_dir = installation.settings.data_dir
    if options.backup_data and data_dir is not None and data_dir.is_dir():
        needs.append(("data backup", options.backup_dir, tree_size(data_dir)))
    problem = check_space(needs)
    if problem is not None:
        raise Refused(problem + "; free some space or use --backup-dir on another filesystem")


def describe_plan(
    ctx: Context, installation: Installation, target: Version, edition: str, pre: Preflight
) -> list[str]:
    """The plan as the admin reads it (printed before a run, and as the whole output of --dry-run)."""
    plan = plan_paths(installation, target, edition)
    source = str(pre.local_tarball) if pre.local_tarball else pre.tarball_url
    settings = installation.settings
    lines = [
        f"upgrade Mattermost {installation.version} ({installation.edition}) to {target} ({edition}), "
        f"{installation.layout} layout in {installation.root}",
        f"release: {source} (+ .sig)",
        f"signing key: {pre.key_origin}, fingerprint {', '.join(pre.fingerprints)}"
        + (
            " (pinned)"
            if pre.pinned
            else "; compare it with one you trust, then pin it with --signing-key-fingerprint"
        ),
        f"database: {database_label(settings.data_source)} on PostgreSQL {pre.postgres_version // 10000}, "
        f"schema version {pre.schema_version}",
        f"backup to {ctx.options.backup_dir}: database dump, configuration, env file, unit"
        + (", data directory" if ctx.options.backup_data else ""),
        f"stage the new release at {plan.staged}",
        f"stop {ctx.service.name}, switch "
        + (
            f"{plan.current_link} to {plan.new_target}"
            if plan.current_link
            else f"{plan.root} to the new tree "
            f"(old tree kept as {plan.previous}; config, logs, plugins, client/plugins, data and custom "
            "directories move over by rename)"
        ),
        f"start {ctx.service.name} and wait up to {ctx.options.health_timeout:g} s for "
        "/api/v4/system/ping with "
        f"version {target}; roll back automatically if it does not come up",
    ]
    return lines


def database_label(data_source: str) -> str:
    """database@host, for messages: never the user or password."""
    try:
        source = DataSource.parse(data_source)
    except DatabaseError:
        return "(unparsable data source)"
    return f"{source.database or '?'}@{source.host}"
