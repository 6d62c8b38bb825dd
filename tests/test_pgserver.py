"""The PostgreSQL test cluster starts, and the mm_database fixture gives a usable database."""

from __future__ import annotations

import os
import subprocess

from tests.conftest import MattermostDatabase
from tests.pgserver import PostgresServer


def test_superuser_can_query(postgres: PostgresServer) -> None:
    assert postgres.psql("SELECT 1").strip() == "1"
    assert postgres.version_num >= 100000


def psql_as(postgres: PostgresServer, dsn: str, sql: str) -> subprocess.CompletedProcess[str]:
    """Run psql as a client with a connection URL, the way an application would connect."""
    return subprocess.run(
        [str(postgres.bin_dir / "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", sql],
        capture_output=True,
        text=True,
        env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
        check=False,
    )


def test_mm_database_accepts_its_user_over_tcp(
    postgres: PostgresServer, mm_database: MattermostDatabase
) -> None:
    result = psql_as(postgres, mm_database.dsn, "SELECT 1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


def test_mm_database_user_can_create_tables(
    postgres: PostgresServer, mm_database: MattermostDatabase
) -> None:
    result = psql_as(postgres, mm_database.dsn, "CREATE TABLE public.probe (id int)")
    assert result.returncode == 0, result.stderr


def test_mm_database_user_owns_database_and_schema(
    postgres: PostgresServer, mm_database: MattermostDatabase
) -> None:
    owners = postgres.psql(
        "SELECT pg_get_userbyid(d.datdba), pg_get_userbyid(n.nspowner) "
        "FROM pg_database d, pg_namespace n "
        "WHERE d.datname = current_database() AND n.nspname = 'public'",
        db=mm_database.name,
    )
    assert owners.strip() == f"{mm_database.user}|{mm_database.user}"


def test_allow_changes_auth_method_immediately(
    postgres: PostgresServer, mm_database: MattermostDatabase
) -> None:
    postgres.allow(mm_database.user, "reject")
    try:
        result = psql_as(postgres, mm_database.dsn, "SELECT 1")
        assert result.returncode != 0
        assert "pg_hba.conf rejects connection" in result.stderr
    finally:
        postgres.reset_hba()
    assert psql_as(postgres, mm_database.dsn, "SELECT 1").returncode == 0
