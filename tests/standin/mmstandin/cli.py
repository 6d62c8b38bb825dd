"""Command line of `bin/mattermost`: parse, then dispatch to the module that does the work.

    mattermost [--config X]              run the server (same as `mattermost server`)
    mattermost version                   five lines of build information, no database access
    mattermost db version [--all]        the schema version (latest applied migration)
    mattermost db migrate                apply pending migrations and exit

Output and exit codes follow the real server's cobra commands: errors go to stderr as "Error: ...",
exit status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

from . import build as build_info
from . import config, db, pgwire, server


class CommandError(Exception):
    """An expected failure of a command; printed as "Error: <message>", exit status 1."""


def build_parser() -> argparse.ArgumentParser:
    # --config is accepted before or after the subcommand, like cobra's persistent flags.
    config_flag = argparse.ArgumentParser(add_help=False)
    config_flag.add_argument(
        "-c",
        "--config",
        default=argparse.SUPPRESS,
        help="configuration file path or postgres:// URL (default: $MM_CONFIG, else config/config.json)",
    )
    parser = argparse.ArgumentParser(
        prog="mattermost",
        description="Mattermost release stand-in (test infrastructure)",
        parents=[config_flag],
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("server", parents=[config_flag], help="run the Mattermost server")
    commands.add_parser("version", parents=[config_flag], help="display version information")
    db_parser = commands.add_parser("db", parents=[config_flag], help="commands related to the database")
    db_commands = db_parser.add_subparsers(dest="db_command")
    db_version = db_commands.add_parser(
        "version", parents=[config_flag], help="returns the recent applied version number"
    )
    db_version.add_argument("--all", action="store_true", help="returns all applied migrations")
    db_commands.add_parser(
        "migrate", parents=[config_flag], help="migrate the database if there are any unapplied migrations"
    )
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    environment = os.environ if env is None else env
    config_flag = getattr(args, "config", None)
    try:
        if args.command == "version":
            return print_version()
        if args.command == "db":
            if args.db_command == "version":
                return print_db_version(config_flag, environment, show_all=args.all)
            if args.db_command == "migrate":
                return migrate_db(config_flag, environment)
            raise CommandError("missing db subcommand: version or migrate")
        return server.run(config_flag, environment)
    except (CommandError, build_info.BuildInfoError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def print_version() -> int:
    """`mattermost version`: since v6.5 it does not touch the database (facts section 4)."""
    for line in build_info.version_lines(build_info.load()):
        print(line)
    return 0


def _open_data_database(config_flag: str | None, env: Mapping[str, str]) -> db.Database:
    """The database named by the effective SqlSettings.DataSource (stored config + MM_* overrides)."""
    install_dir = server.locate_install_dir(env)
    try:
        loaded = config.load(config.choose_source(config_flag, env), env, install_dir, persist=False)
    except config.ConfigError as exc:
        raise CommandError(f"failed to load configuration: {exc}") from None
    database = db.Database(loaded.effective["SqlSettings"]["DataSource"])
    try:
        database.connect()
    except pgwire.Error as exc:
        raise CommandError(f"failed to connect to the database at {database.masked_dsn}: {exc}") from None
    return database


def print_db_version(config_flag: str | None, env: Mapping[str, str], show_all: bool) -> int:
    database = _open_data_database(config_flag, env)
    try:
        if show_all:
            # "Varsion" is the real command's spelling (server/cmd/mattermost/commands/db.go).
            for version, name in db.applied_migrations(database):
                print(f"Varsion: {version}, Name: {name}")
            return 0
        print(f"Current database schema version is: {db.schema_version(database)}")
        return 0
    except pgwire.Error as exc:
        raise CommandError(f"failed to get schema version: {exc}") from None
    finally:
        database.close()


def migrate_db(config_flag: str | None, env: Mapping[str, str]) -> int:
    build = build_info.load()
    database = _open_data_database(config_flag, env)
    try:
        db.check_postgres_version(database, str(build["version"]))
        db.migrate(database, build)
    except db.DatabaseError as exc:
        raise CommandError(str(exc)) from None
    except pgwire.Error as exc:
        raise CommandError(f"failed to migrate the database: {exc}") from None
    finally:
        database.close()
    print("Database successfully migrated")
    return 0
