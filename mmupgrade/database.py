"""The Mattermost database through PostgreSQL's own tools: psql, pg_dump, pg_restore.

Credentials reach the tools only through PG* environment variables built from the server's data
source: argv is world-readable in /proc, and nothing here ever prints the password. The restore is one
transaction (drop what the user owns, then recreate it from the dump), so it either fully happens or
leaves the database as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qsl, unquote, urlsplit

from .progress import Progress
from .redact import mask_data_source

TOOL_DIRS = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin")
# libpq parameters of a Mattermost data source -> the environment variables libpq reads instead.
_PARAM_ENV = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "options": "PGOPTIONS",
    "channel_binding": "PGCHANNELBINDING",
}

ProgressFactory = Callable[[str, int], Optional[Progress]]


class DatabaseError(Exception):
    pass


@dataclass(frozen=True)
class DataSource:
    """Where the server's database is, as PG* variables; repr and str never show the password."""

    env: dict[str, str] = field(repr=False)
    masked: str

    @property
    def database(self) -> str:
        return self.env.get("PGDATABASE", "")

    @property
    def host(self) -> str:
        return self.env.get("PGHOST", "")

    def __str__(self) -> str:
        return self.masked

    @classmethod
    def parse(cls, dsn: str) -> DataSource:
        """Parse SqlSettings.DataSource: a postgres:// URL or libpq key=value pairs."""
        params = _url_params(dsn) if "://" in dsn else _keyword_params(dsn)
        env = {_PARAM_ENV[key]: value for key, value in params.items() if key in _PARAM_ENV and value != ""}
        # lib/pq (the server's driver) connects to localhost when no host is given; libpq would use the
        # default unix socket instead, which may be another server.
        env.setdefault("PGHOST", "localhost")
        return cls(env, mask_data_source(dsn))

    def same_database(self, other: DataSource) -> bool:
        keys = ("PGHOST", "PGPORT", "PGDATABASE")
        return all(self.env.get(k, "") == other.env.get(k, "") for k in keys)


def _url_params(dsn: str) -> dict[str, str]:
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgres", "postgresql"):
        raise DatabaseError(f"unsupported database driver in the data source {mask_data_source(dsn)}")
    params: dict[str, str] = {}
    userinfo, _, hostport = parts.netloc.rpartition("@")
    if userinfo:
        user, _, password = userinfo.partition(":")
        params["user"] = unquote(user)
        if password:
            params["password"] = unquote(password)
    if hostport:
        if hostport.startswith("["):
            host, _, rest = hostport[1:].partition("]")
            port = rest.lstrip(":")
        else:
            host, _, port = hostport.partition(":")
        if host:
            params["host"] = unquote(host)
        if port:
            params["port"] = port
    database = unquote(parts.path.lstrip("/"))
    if database:
        params["dbname"] = database
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        params[key] = value
    return params


def _keyword_params(dsn: str) -> dict[str, str]:
    params = {}
    for match in re.finditer(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S*)", dsn):
        value = match.group(2)
        if value.startswith("'"):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[match.group(1)] = value
    return params


def find_tool(name: str) -> str:
    """The newest installed PostgreSQL client tool: pg_dump must be at least as new as the server."""
    candidates = []
    for pattern in TOOL_DIRS:
        for directory in Path("/").glob(pattern.lstrip("/")):
            tool = directory / name
            version = re.search(r"(\d+)", directory.parent.name)
            if tool.is_file() and os.access(tool, os.X_OK) and version:
                candidates.append((int(version.group(1)), str(tool)))
    if candidates:
        return max(candidates)[1]
    found = shutil.which(name)
    if found is None:
        raise DatabaseError(
            f"{name} is not installed: install the PostgreSQL client "
            "(apt-get install postgresql-client / dnf install postgresql)"
        )
    return found


class Database:
    """One Mattermost database, reached with the server's own credentials."""

    def __init__(self, source: DataSource, runner: Callable[..., Any] = subprocess.run) -> None:
        self.source = source
        self._run = runner

    def tool_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(self.source.env)
        env["PGAPPNAME"] = "mmupgrade"
        # A pg_dump waiting for a password prompt would hang an unattended run.
        env.setdefault("PGCONNECT_TIMEOUT", "10")
        return env

    def psql_command(self, *extra: str) -> list[str]:
        """psql reading SQL from stdin (never from argv), stopping at the first error."""
        base = [find_tool("psql"), "-X", "-q", "-A", "-t", "--no-password", "-v", "ON_ERROR_STOP=1"]
        return [*base, *extra, "-f", "-"]

    def query(self, sql: str, timeout: float = 60.0) -> str:
        proc = self._run(
            self.psql_command(),
            input=sql,
            capture_output=True,
            text=True,
            env=self.tool_env(),
            check=False,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise DatabaseError(f"the database at {self.source} did not answer: {_last_line(proc.stderr)}")
        return proc.stdout

    def server_version_num(self) -> int:
        return int(self.query("SHOW server_version_num;").strip())

    def has_table(self, name: str) -> bool:
        return self.query(f"SELECT to_regclass('{name}') IS NOT NULL;").strip() == "t"

    def schema_version(self) -> int:
        """The newest applied migration, as `mattermost db version` prints it; 0 for an empty database."""
        if not self.has_table("db_migrations"):
            return 0
        return int(self.query("SELECT COALESCE(MAX(version), 0) FROM db_migrations;").strip() or 0)

    def size_bytes(self) -> int:
        return int(self.query("SELECT pg_database_size(current_database());").strip())

    def active_config(self) -> dict[str, Any] | None:
        """The configuration stored in the database (MM_CONFIG=postgres://...), or None."""
        if not self.has_table("configurations"):
            return None
        text = self.query("SELECT value FROM configurations WHERE active LIMIT 1;").strip()
        if not text:
            return None
        try:
            document = json.loads(text)
        except ValueError:
            raise DatabaseError("the active configuration stored in the database is not valid JSON") from None
        return document if isinstance(document, dict) else None

    # --- dump and restore ------------------------------------------------------------------------

    def dump_command(self, path: Path) -> list[str]:
        return [find_tool("pg_dump"), "--format=custom", "--no-password", f"--file={path}"]

    def dump(self, path: Path, progress: ProgressFactory | None = None, expected_size: int = 0) -> int:
        """pg_dump -Fc into path; returns the dump's size. The progress shows bytes written."""
        temp = path.with_name(path.name + ".part")
        # The size on the server is an upper bound: the dump is compressed, so the bar may end early.
        bar = progress(f"backing up database {self.source.database}", expected_size) if progress else None
        proc = subprocess.Popen(  # noqa: S603 - argv from find_tool, credentials in env
            self.dump_command(temp),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self.tool_env(),
        )
        try:
            while True:
                try:
                    proc.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    if bar is not None and temp.exists():
                        bar.update(temp.stat().st_size)
        except BaseException:
            proc.kill()
            proc.wait()
            temp.unlink(missing_ok=True)
            raise
        stderr = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
        if proc.returncode != 0:
            temp.unlink(missing_ok=True)
            raise DatabaseError(f"pg_dump of {self.source.database} failed: {_last_line(stderr)}")
        _fsync(temp)
        os.replace(temp, path)
        size = path.stat().st_size
        if bar is not None:
            bar.finish(f"backed up database {self.source.database} ({size // 1024} KiB dump)")
        return size

    def list_dump(self, path: Path) -> list[str]:
        """The dump's table of contents (pg_restore --list): reading it proves the dump is readable."""
        proc = self._run(
            [find_tool("pg_restore"), "--list", str(path)],
            capture_output=True,
            text=True,
            check=False,
            env=self.tool_env(),
        )
        if proc.returncode != 0:
            raise DatabaseError(f"the dump {path} is not readable: {_last_line(proc.stderr)}")
        return [line for line in proc.stdout.splitlines() if line and not line.startswith(";")]

    def restore(self, path: Path) -> None:
        """Replace the database's contents with the dump, in one transaction.

        psql gets BEGIN and the drops first, then pg_restore's script, which ends in COMMIT only when
        pg_restore read the whole dump; if pg_restore or any statement fails, psql ends without a
        COMMIT and PostgreSQL rolls everything back.
        """
        entries = self.list_dump(path)
        listing = path.with_name(path.name + ".restore-list")
        # Schemas are not dropped, so they must not be created again either.
        listing.write_text("\n".join(line for line in entries if not _SCHEMA_ENTRY.match(line)) + "\n")
        # stderr goes to files: a pipe nobody reads while the script streams could fill up and stall.
        with tempfile.TemporaryFile() as dump_log, tempfile.TemporaryFile() as psql_log:
            try:
                self._restore_through_psql(path, listing, dump_log, psql_log)
            finally:
                listing.unlink(missing_ok=True)

    def _restore_through_psql(self, path: Path, listing: Path, dump_log: Any, psql_log: Any) -> None:
        script = subprocess.Popen(  # noqa: S603 - argv from find_tool, credentials in env
            [
                find_tool("pg_restore"),
                "--no-owner",
                "--single-transaction",
                f"--use-list={listing}",
                "--file=-",
                str(path),
            ],
            stdout=subprocess.PIPE,
            stderr=dump_log,
            env=self.tool_env(),
        )
        psql = subprocess.Popen(  # noqa: S603
            self.psql_command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=psql_log,
            env=self.tool_env(),
        )
        self._feed(script, psql)
        dump_err, psql_err = _read_log(dump_log), _read_log(psql_log)
        if script.returncode != 0:
            raise DatabaseError(
                f"pg_restore could not read {path}, nothing was changed: {_last_line(dump_err)}"
            )
        if psql.returncode != 0:
            raise DatabaseError(
                f"restoring {path} into {self.source.database} failed and was undone: {_last_line(psql_err)}"
            )

    @staticmethod
    def _feed(script: subprocess.Popen[bytes], psql: subprocess.Popen[bytes]) -> None:
        """Stream pg_restore's script into psql after BEGIN and the drops; constant memory."""
        stdin, stdout = psql.stdin, script.stdout
        if stdin is None or stdout is None:
            raise DatabaseError("internal error: restore pipes are missing")
        try:
            stdin.write(b"SET client_min_messages = warning;\nBEGIN;\n" + DROP_OWNED_OBJECTS.encode())
            for chunk in iter(lambda: stdout.read(1024 * 1024), b""):
                stdin.write(chunk)
        except BrokenPipeError:
            pass  # psql stopped at an error; its stderr says which
        finally:
            with contextlib.suppress(BrokenPipeError):
                stdin.close()
        script.wait()
        psql.wait()


_SCHEMA_ENTRY = re.compile(r"^\d+;\s+\d+\s+\d+\s+(SCHEMA\s|(COMMENT|ACL)\s+-\s+SCHEMA\s)")

# Everything the connecting user owns outside the system schemas: tables (with their indexes, sequences
# and constraints), views, sequences, types, functions. The statements are collected first and run
# after, since dropping a table with CASCADE removes objects a live cursor would still list.
DROP_OWNED_OBJECTS = r"""
DO $mmupgrade$
DECLARE
    statements text[];
    statement text;
BEGIN
    SELECT coalesce(array_agg(s ORDER BY ord), '{}') INTO statements FROM (
        SELECT 1 AS ord, format('DROP %s IF EXISTS %I.%I CASCADE',
               CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                              WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
               n.nspname, c.relname) AS s
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
          AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
          AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                          AND d.objid = c.oid AND d.deptype = 'e')
        UNION ALL
        SELECT 2, format('DROP %s IF EXISTS %s CASCADE',
               CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END,
               p.oid::regprocedure)
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE p.proowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
          AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                          AND d.objid = p.oid AND d.deptype = 'e')
        UNION ALL
        SELECT 3, format('DROP TYPE IF EXISTS %I.%I CASCADE', n.nspname, t.typname)
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE t.typowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
          AND (t.typtype IN ('e', 'd', 'r', 'm')
               OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
          AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                          AND d.objid = t.oid AND d.deptype = 'e')
    ) AS owned;
    FOREACH statement IN ARRAY statements LOOP
        EXECUTE statement;
    END LOOP;
END
$mmupgrade$;
"""


def _read_log(handle: Any) -> str:
    handle.seek(0)
    return handle.read().decode("utf-8", "replace")


def _last_line(text: str) -> str:
    """The line that says what went wrong: the first ERROR/FATAL one, else the last one."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for line in lines:
        if re.search(r"\b(ERROR|FATAL|error)\b", line):
            return line
    return lines[-1] if lines else "no error message"


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
