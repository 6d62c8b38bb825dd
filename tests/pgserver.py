"""A throwaway PostgreSQL cluster for tests: initdb, start, create roles and databases, stop.

The cluster is the distribution's own PostgreSQL (Debian package ``postgresql``), so tests talk to the
same server code, authentication methods and catalogue that the Ansible role installs. It runs as the OS
user ``postgres`` because the server refuses to run as root, listens only on 127.0.0.1 and a unix socket
inside its own temporary directory, and disappears on ``stop()``.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

POSTGRES_ROOT = Path("/usr/lib/postgresql")
OS_USER = "postgres"
SUPERUSER = "postgres"
# Methods a test may ask pg_hba.conf for; "password" is cleartext over the wire.
HBA_METHODS = ("trust", "password", "md5", "scram-sha-256", "peer", "reject")


class PostgresServerError(RuntimeError):
    """The test cluster could not be set up, started or queried."""


def find_bin_dir(root: Path = POSTGRES_ROOT) -> Path:
    """Return the bin directory of the newest installed PostgreSQL major version."""
    candidates = [p for p in root.glob("*/bin") if (p / "initdb").is_file() and p.parent.name.isdigit()]
    if not candidates:
        raise PostgresServerError(
            f"no PostgreSQL server found under {root}/*/bin; install it with: apt-get install postgresql"
        )
    return max(candidates, key=lambda p: int(p.parent.name))


def quote_ident(name: str) -> str:
    """Quote an SQL identifier (role or database name)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """Quote an SQL string literal; standard_conforming_strings is on, so only quotes need doubling."""
    return "'" + value.replace("'", "''") + "'"


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for a currently unused TCP port (small race until the server binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, owned and run by the OS user ``postgres``."""

    def __init__(self, bin_dir: Path | None = None, ssl: bool = True) -> None:
        self.bin_dir = bin_dir or find_bin_dir()
        self.host = "127.0.0.1"
        self.port = 0
        self.superuser = SUPERUSER
        self.superuser_password = secrets.token_urlsafe(18)
        self.version_num = 0
        self.ssl_wanted = ssl
        self.ssl_enabled = False
        self.base_dir: Path | None = None
        self._extra_hba: list[str] = []
        self._base_hba = ""

    # Layout inside the temporary directory -------------------------------------------------------------

    @property
    def _base(self) -> Path:
        if self.base_dir is None:
            raise PostgresServerError("the PostgreSQL test cluster is not started")
        return self.base_dir

    @property
    def data_dir(self) -> Path:
        return self._base / "data"

    @property
    def socket_dir(self) -> Path:
        return self._base / "socket"

    @property
    def log_file(self) -> Path:
        return self._base / "postgresql.log"

    # Lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> PostgresServer:
        """Create the cluster and start it; returns self so ``PostgresServer().start()`` reads naturally."""
        try:
            owner = pwd.getpwnam(OS_USER)
        except KeyError:
            raise PostgresServerError(
                f"OS user {OS_USER!r} does not exist; install the server with: apt-get install postgresql"
            ) from None
        self.base_dir = Path(tempfile.mkdtemp(prefix="pgtest-"))
        try:
            # 0755 so clients running as other users can reach the socket directory.
            self.base_dir.chmod(0o755)
            self.socket_dir.mkdir(mode=0o755)
            for path in (self.base_dir, self.socket_dir):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            self._initdb(owner)
            self._configure(owner)
            self._start_with_free_port()
            self.version_num = int(self.psql("SHOW server_version_num").strip())
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown: running sessions are cut) and remove every file it had."""
        if self.base_dir is None:
            return
        if (self.data_dir / "postmaster.pid").exists():
            self._run_as_postgres(
                [str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w"],
                check=False,
            )
        shutil.rmtree(self.base_dir, ignore_errors=True)
        self.base_dir = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _initdb(self, owner: pwd.struct_passwd) -> None:
        pwfile = self._base / "superuser-password"
        pwfile.write_text(self.superuser_password + "\n")
        pwfile.chmod(0o600)
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        try:
            self._run_as_postgres(
                [
                    str(self.bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "--username",
                    self.superuser,
                    "--pwfile",
                    str(pwfile),
                    "--auth-local=peer",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    # The cluster lives only for one test session: durability buys nothing.
                    "--no-sync",
                ]
            )
        finally:
            pwfile.unlink()
        self._base_hba = (self.data_dir / "pg_hba.conf").read_text()

    def _configure(self, owner: pwd.struct_passwd) -> None:
        settings = {
            "unix_socket_directories": quote_literal(str(self.socket_dir)),
            "listen_addresses": quote_literal(self.host),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "100",
            "log_line_prefix": quote_literal("%m [%p] %u@%d "),
        }
        if self.ssl_wanted and shutil.which("openssl"):
            self._make_certificate(owner)
            settings.update(
                ssl="on",
                ssl_cert_file=quote_literal(str(self.data_dir / "server.crt")),
                ssl_key_file=quote_literal(str(self.data_dir / "server.key")),
            )
            self.ssl_enabled = True
        conf = self.data_dir / "postgresql.conf"
        with conf.open("a") as handle:
            handle.write("\n# Test cluster settings\n")
            for key, value in settings.items():
                handle.write(f"{key} = {value}\n")

    def _make_certificate(self, owner: pwd.struct_passwd) -> None:
        """Self-signed certificate, so sslmode=require can be tested (clients do not verify it)."""
        cert, key = self.data_dir / "server.crt", self.data_dir / "server.key"
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
        )
        for path in (cert, key):
            # The server refuses a key file readable by group or others.
            path.chmod(0o600)
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def _start_with_free_port(self, attempts: int = 5) -> None:
        """Start on a free port; another process may grab the port between probe and bind, so retry."""
        for _ in range(attempts):
            self.port = free_port(self.host)
            result = self._run_as_postgres(
                [
                    str(self.bin_dir / "pg_ctl"),
                    "start",
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    f"-p {self.port}",
                ],
                check=False,
            )
            if result.returncode == 0:
                return
        log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
        raise PostgresServerError(f"PostgreSQL test cluster did not start:\n{result.stderr}\n{log[-4000:]}")

    def _run_as_postgres(
        self, argv: list[str], input_text: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        # cwd: the caller's directory may not be readable by postgres, and psql/initdb complain about it.
        env = {**os.environ, "LC_ALL": "C.UTF-8", "PGTZ": "UTC"}
        for leaked in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD", "PGSERVICE", "PGOPTIONS"):
            env.pop(leaked, None)
        result = subprocess.run(
            ["runuser", "-u", OS_USER, "--", *argv],
            input=input_text,
            capture_output=True,
            text=True,
            cwd="/",
            env=env,
            check=False,
        )
        if check and result.returncode != 0:
            raise PostgresServerError(
                f"{Path(argv[0]).name} failed with exit code {result.returncode}:\n{result.stderr.strip()}"
            )
        return result

    # Working with the running cluster -------------------------------------------------------------------

    def psql(self, sql: str, db: str = "postgres") -> str:
        """Run SQL as the superuser over the unix socket; returns unaligned, tuples-only output.

        The SQL goes through stdin, so statements run one by one (CREATE DATABASE cannot share a
        transaction) and passwords stay out of the process list.
        """
        result = self._run_as_postgres(
            [
                str(self.bin_dir / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                self.superuser,
                "-d",
                db,
                "-f",
                "-",
            ],
            input_text=sql if sql.rstrip().endswith(";") else sql + ";",
            check=False,
        )
        if result.returncode != 0:
            raise PostgresServerError(f"psql failed in database {db!r}: {result.stderr.strip()}")
        return result.stdout

    def dsn(self, user: str, password: str, db: str, sslmode: str = "disable") -> str:
        """A TCP connection URL in the form Mattermost's SqlSettings.DataSource uses."""
        return (
            f"postgres://{quote(user, safe='')}:{quote(password, safe='')}@{self.host}:{self.port}/"
            f"{quote(db, safe='')}?sslmode={sslmode}&connect_timeout=10"
        )

    def socket_dsn(self, user: str, password: str, db: str) -> str:
        """A connection URL through the unix socket (libpq style: empty host, ?host=<dir>)."""
        return (
            f"postgres://{quote(user, safe='')}:{quote(password, safe='')}@:{self.port}/"
            f"{quote(db, safe='')}?host={self.socket_dir}&sslmode=disable&connect_timeout=10"
        )

    def create_user(self, name: str, password: str, stored_as: str = "scram-sha-256") -> None:
        """Create a login role; stored_as="md5" keeps an MD5 hash so md5 authentication can be tested.

        With a SCRAM verifier stored, the server answers an "md5" pg_hba rule with SCRAM instead.
        """
        if stored_as not in ("scram-sha-256", "md5"):
            raise ValueError(f"unknown password hash {stored_as!r}; expected scram-sha-256 or md5")
        self.psql(
            f"SET password_encryption = {quote_literal(stored_as)};\n"
            f"CREATE ROLE {quote_ident(name)} LOGIN PASSWORD {quote_literal(password)};"
        )

    def create_database(self, name: str, owner: str) -> None:
        """Create a database owned by ``owner``, with the PostgreSQL 15+ schema rights Mattermost needs.

        Since PostgreSQL 15 ordinary users may no longer create objects in schema public, so Mattermost's
        install guide makes the application user own both the database and the schema.
        """
        db, role = quote_ident(name), quote_ident(owner)
        self.psql(f"CREATE DATABASE {db} OWNER {role};")
        self.psql(
            f"ALTER DATABASE {db} OWNER TO {role};\n"
            f"ALTER SCHEMA public OWNER TO {role};\n"
            f"GRANT USAGE, CREATE ON SCHEMA public TO {role};",
            db=name,
        )

    def drop_database(self, name: str) -> None:
        # WITH (FORCE) ends sessions a failed test left open (PostgreSQL 13+).
        self.psql(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE);")

    def drop_user(self, name: str) -> None:
        self.psql(f"DROP ROLE IF EXISTS {quote_ident(name)};")

    def allow(self, user: str, method: str, connection: str = "host", database: str = "all") -> None:
        """Put a pg_hba.conf rule for ``user`` ahead of the defaults and reload the server.

        connection is "host" (TCP from 127.0.0.1, TLS or not), "hostssl", "hostnossl" or "local"
        (unix socket). Rules added later are checked first, so a test can override an earlier one.
        """
        if method not in HBA_METHODS:
            raise ValueError(f"unknown pg_hba method {method!r}; expected one of {HBA_METHODS}")
        db = "all" if database == "all" else quote_ident(database)
        if connection == "local":
            rule = f"local {db} {quote_ident(user)} {method}"
        elif connection in ("host", "hostssl", "hostnossl"):
            rule = f"{connection} {db} {quote_ident(user)} 127.0.0.1/32 {method}"
        else:
            raise ValueError(f"unknown pg_hba connection type {connection!r}")
        self._extra_hba.insert(0, rule)
        self._write_hba()

    def reset_hba(self) -> None:
        """Drop every rule added with allow()."""
        self._extra_hba.clear()
        self._write_hba()

    def _write_hba(self) -> None:
        hba = self.data_dir / "pg_hba.conf"
        rules = "# Rules added by tests (first match wins)\n" + "".join(r + "\n" for r in self._extra_hba)
        hba.write_text(rules + "\n" + self._base_hba)
        errors = self.psql("SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL;")
        if errors.strip():
            raise PostgresServerError(f"pg_hba.conf rejected: {errors.strip()}")
        self.reload()

    def reload(self, timeout: float = 10.0) -> None:
        """Reload configuration and wait until new sessions see it.

        pg_reload_conf() only signals the postmaster; a connection opened right after could still get
        the old pg_hba.conf. New backends inherit the postmaster's pg_conf_load_time(), so poll it.
        """
        before = self.psql("SELECT pg_conf_load_time();").strip()
        self.psql("SELECT pg_reload_conf();")
        deadline = time.monotonic() + timeout
        while self.psql("SELECT pg_conf_load_time();").strip() == before:
            if time.monotonic() > deadline:
                raise PostgresServerError("PostgreSQL did not reload its configuration in time")
            time.sleep(0.05)
