"""The server's database: one shared PostgreSQL session, schema migrations and the checks made before them.

Like the real server, the stand-in refuses to start on a PostgreSQL older than its release supports and on
a schema written by a newer release (a downgrade needs `mattermost db downgrade` or a restore), and it
waits a while for a database that is not up yet.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

from . import pgwire, store
from .build import version_tuple

# Any constant works; all stand-in processes sharing a database must agree on it (multi-node installs).
MIGRATION_LOCK_KEY = 0x6D6D_7374  # "mmst"
BASE_MIGRATION = (1, "create_base_tables")
CONNECT_WAIT_SECONDS = 30.0
CONNECT_RETRY_INTERVAL = 2.0


class DatabaseError(Exception):
    """An expected database failure, worded for the log and the terminal."""


def mask_data_source(dsn: str) -> str:
    """The data source with its password replaced by ****, for logs (the real server masks it too)."""
    if "://" not in dsn:
        # libpq key=value form: "host=... password=secret ..."
        return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1****", dsn)
    try:
        parts = urlsplit(dsn)
        if parts.password is not None:
            host = parts.netloc.rpartition("@")[2]
            parts = parts._replace(netloc=f"{parts.username}:****@{host}")
    except ValueError:
        return "(unparseable data source)"
    query = re.sub(r"(^|&)(password=)[^&]*", r"\1\2****", parts.query)
    return urlunsplit(parts._replace(query=query))


class Database:
    """A thread-safe wrapper around one pgwire connection that reconnects when the session was lost.

    HTTP handler threads share it; the lock serialises their statements on the single session.
    """

    def __init__(self, dsn: str, timeout: float = 10.0) -> None:
        self._dsn = dsn
        self._timeout = timeout
        self._lock = threading.RLock()
        self._conn: pgwire.Connection | None = None

    @property
    def masked_dsn(self) -> str:
        return mask_data_source(self._dsn)

    def connect(self) -> None:
        """Open the session now (the first statement would otherwise do it)."""
        with self._lock:
            self._connection()

    def _connection(self) -> pgwire.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = pgwire.connect(self._dsn, timeout=self._timeout)
        return self._conn

    @property
    def server_version_num(self) -> int:
        with self._lock:
            return self._connection().server_version_num

    def query(self, sql: str, params: Sequence[object] | None = None) -> list[tuple[Any, ...]]:
        return self._run(lambda conn: conn.query(sql, params))

    def execute(self, sql: str, params: Sequence[object] | None = None) -> int:
        return self._run(lambda conn: conn.execute(sql, params))

    def _run(self, statement: Callable[[pgwire.Connection], Any]) -> Any:
        with self._lock:
            in_transaction = self._conn is not None and self._conn.transaction_status != "I"
            try:
                return statement(self._connection())
            except pgwire.ConnectError:
                # A lost session inside a transaction lost the transaction too: retrying would run the
                # rest of it in autocommit, so only standalone statements are retried.
                self._drop()
                if in_transaction:
                    raise
                return statement(self._connection())

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """BEGIN ... COMMIT on the shared session, holding the lock so no other thread interleaves."""
        with self._lock:
            self.execute("BEGIN")
            try:
                yield self
            except BaseException:
                try:
                    self.execute("ROLLBACK")
                except pgwire.Error:
                    self._drop()
                raise
            self.execute("COMMIT")

    def ping(self) -> bool:
        """True when the database answers; what /api/v4/system/ping?get_server_status=true reports."""
        try:
            return self.query("SELECT 1") == [(1,)]
        except (pgwire.Error, OSError):
            return False

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._drop()


def wait_for_database(
    database: Database,
    wait_seconds: float = CONNECT_WAIT_SECONDS,
    on_retry: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> bool:
    """Connect, retrying for up to wait_seconds like the real server's "Pinging SQL" loop.

    Returns False when stop was set while waiting; raises DatabaseError when the time is up.
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            database.connect()
            return True
        except pgwire.Error as exc:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DatabaseError(
                    f"failed to connect to the database at {database.masked_dsn} "
                    f"after {wait_seconds:g} seconds: {exc}"
                ) from None
            if on_retry is not None:
                on_retry(f"failed to ping the database, retrying in {CONNECT_RETRY_INTERVAL:g} s: {exc}")
            pause = min(CONNECT_RETRY_INTERVAL, remaining)
            if stop is not None:
                if stop.wait(pause):
                    return False
            else:
                time.sleep(pause)


# PostgreSQL version -------------------------------------------------------------------------------------


def minimum_postgres_major(app_version: str) -> int:
    """The oldest PostgreSQL major a release supports (facts section 5: v10.6 -> 13, v11.0 -> 14)."""
    major_minor = version_tuple(app_version)[:2]
    if major_minor >= (11, 0):
        return 14
    if major_minor >= (10, 6):
        return 13
    return 11


def postgres_version_problem(server_version_num: int, app_version: str) -> str | None:
    """Why this PostgreSQL is too old for this release, or None when it is supported."""
    minimum = minimum_postgres_major(app_version)
    found_major = server_version_num // 10000
    if found_major >= minimum:
        return None
    return (
        f"minimum Postgres version requirements not met: found {found_major}.{server_version_num % 10000}, "
        f"Mattermost {app_version} requires PostgreSQL {minimum}.0 or later"
    )


def check_postgres_version(database: Database, app_version: str) -> None:
    problem = postgres_version_problem(database.server_version_num, app_version)
    if problem is not None:
        raise DatabaseError(problem)


# Migrations ---------------------------------------------------------------------------------------------


def schema_version(database: Database) -> int:
    """The latest applied migration (what `mattermost db version` prints); 0 for an empty database."""
    if not _migrations_table_exists(database):
        return 0
    rows = database.query("SELECT COALESCE(MAX(Version), 0) FROM db_migrations")
    return int(rows[0][0])


def applied_migrations(database: Database) -> list[tuple[int, str]]:
    if not _migrations_table_exists(database):
        return []
    rows = database.query("SELECT Version, Name FROM db_migrations ORDER BY Version")
    return [(int(version), str(name)) for version, name in rows]


def _migrations_table_exists(database: Database) -> bool:
    rows = database.query("SELECT to_regclass('db_migrations') IS NOT NULL")
    return bool(rows[0][0])


def downgrade_problem(current: int, supported: int) -> str | None:
    if current <= supported:
        return None
    return (
        f"database schema version {current} is newer than this server supports ({supported}); "
        "downgrades need `mattermost db downgrade` or a restore of the database backup"
    )


def migrate(database: Database, build: dict) -> tuple[int, int]:
    """Bring the schema forward to build["schema_version"]; returns (version before, version after).

    The first migration creates the tables; later ones only record the new schema version, which is
    all an installer or upgrader can observe from outside.
    """
    target = int(build["schema_version"])
    # Nodes of a multi-node install start at the same time; the advisory lock lets one migrate at a time.
    database.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK_KEY])
    try:
        database.execute(
            "CREATE TABLE IF NOT EXISTS db_migrations "
            "(Version bigint NOT NULL PRIMARY KEY, Name varchar(64) NOT NULL)"
        )
        current = schema_version(database)
        problem = downgrade_problem(current, target)
        if problem is not None:
            raise DatabaseError(problem)
        if current < target:
            with database.transaction():
                if current < BASE_MIGRATION[0]:
                    store.create_tables(database)
                    _record(database, *BASE_MIGRATION)
                if target > BASE_MIGRATION[0]:
                    _record(database, target, f"standin_schema_{target}")
        return current, max(current, target)
    finally:
        database.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY])


def _record(database: Database, version: int, name: str) -> None:
    database.execute(
        "INSERT INTO db_migrations (Version, Name) VALUES ($1, $2) ON CONFLICT (Version) DO NOTHING",
        [version, name],
    )
