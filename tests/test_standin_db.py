"""The stand-in server's database layer: migrations, downgrade refusal, PostgreSQL minimums, masking."""

from __future__ import annotations

import threading
import time

import pytest

from tests.conftest import MattermostDatabase
from tests.pgserver import PostgresServer, free_port
from tests.standin.mmstandin import db


@pytest.fixture
def database(mm_database: MattermostDatabase):
    handle = db.Database(mm_database.dsn)
    yield handle
    handle.close()


def build(schema_version: int, version: str = "11.10.0") -> dict:
    return {"version": version, "schema_version": schema_version}


# PostgreSQL minimum version -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("app_version", "minimum"),
    [
        ("11.10.0", 14),
        ("11.0.1", 14),
        ("12.0.0", 14),
        ("10.11.23", 13),
        ("10.6.0", 13),
        ("10.5.14", 11),
        ("9.11.0", 11),
        ("0.0.0-dev", 11),
    ],
)
def test_minimum_postgres_major(app_version: str, minimum: int) -> None:
    assert db.minimum_postgres_major(app_version) == minimum


def test_postgres_13_is_refused_by_v11_and_named_minimum() -> None:
    problem = db.postgres_version_problem(130014, "11.7.9")
    assert problem is not None
    assert "14" in problem
    assert "13.14" in problem


def test_postgres_12_is_refused_by_v10_6_but_accepted_by_v10_5() -> None:
    assert db.postgres_version_problem(120020, "10.6.0") is not None
    assert db.postgres_version_problem(120020, "10.5.14") is None


def test_supported_postgres_passes() -> None:
    assert db.postgres_version_problem(140000, "11.10.0") is None
    assert db.postgres_version_problem(170002, "11.10.0") is None


def test_test_cluster_passes_the_check(database: db.Database) -> None:
    db.check_postgres_version(database, "11.10.0")


# Migrations ---------------------------------------------------------------------------------------------


def test_empty_database_has_schema_version_zero(database: db.Database) -> None:
    assert db.schema_version(database) == 0
    assert db.applied_migrations(database) == []


def test_first_migration_creates_tables_and_records_versions(database: db.Database) -> None:
    assert db.migrate(database, build(1007)) == (0, 1007)
    assert db.schema_version(database) == 1007
    assert db.applied_migrations(database) == [(1, "create_base_tables"), (1007, "standin_schema_1007")]
    tables = {row[0] for row in database.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"db_migrations", "users", "sessions"} <= tables


def test_migration_forward_and_idempotent(database: db.Database) -> None:
    db.migrate(database, build(1007, "10.7.0"))
    assert db.migrate(database, build(1110)) == (1007, 1110)
    assert db.migrate(database, build(1110)) == (1110, 1110)
    assert [version for version, _ in db.applied_migrations(database)] == [1, 1007, 1110]


def test_newer_schema_is_refused(database: db.Database) -> None:
    db.migrate(database, build(1110))
    with pytest.raises(db.DatabaseError) as refused:
        db.migrate(database, build(1007, "10.7.0"))
    message = str(refused.value)
    assert "database schema version 1110 is newer than this server supports (1007)" in message
    assert "mattermost db downgrade" in message
    assert db.schema_version(database) == 1110


def test_concurrent_migrations_apply_once(mm_database: MattermostDatabase) -> None:
    handles = [db.Database(mm_database.dsn) for _ in range(3)]
    errors: list[BaseException] = []

    def migrate(handle: db.Database) -> None:
        try:
            db.migrate(handle, build(1110))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(handle,)) for handle in handles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        assert errors == []
        assert db.applied_migrations(handles[0]) == [(1, "create_base_tables"), (1110, "standin_schema_1110")]
    finally:
        for handle in handles:
            handle.close()


# Connection handling ------------------------------------------------------------------------------------


def test_reconnects_after_the_session_is_killed(postgres: PostgresServer, database: db.Database) -> None:
    pid = database.query("SELECT pg_backend_pid()")[0][0]
    postgres.psql(f"SELECT pg_terminate_backend({int(pid)})")
    assert database.query("SELECT 1") == [(1,)]
    assert database.query("SELECT pg_backend_pid()")[0][0] != pid


def test_ping(database: db.Database) -> None:
    assert database.ping()
    unreachable = db.Database(f"postgres://u:p@127.0.0.1:{free_port()}/db?connect_timeout=2")
    assert not unreachable.ping()


def test_transaction_rolls_back_on_error(database: db.Database) -> None:
    database.execute("CREATE TABLE probe (id int)")
    with pytest.raises(RuntimeError), database.transaction():
        database.execute("INSERT INTO probe VALUES (1)")
        raise RuntimeError("abort")
    assert database.query("SELECT count(*) FROM probe") == [(0,)]


def test_wait_for_database_gives_up_with_a_masked_message() -> None:
    dsn = f"postgres://mmuser:hunter2secret@127.0.0.1:{free_port()}/mattermost?connect_timeout=2"
    retries: list[str] = []
    started = time.monotonic()
    with pytest.raises(db.DatabaseError) as failed:
        db.wait_for_database(db.Database(dsn), wait_seconds=1.0, on_retry=retries.append)
    assert time.monotonic() - started < 10
    assert "hunter2secret" not in str(failed.value)
    assert "mmuser:****@127.0.0.1" in str(failed.value)
    assert retries


def test_wait_for_database_stops_when_asked() -> None:
    stop = threading.Event()
    stop.set()
    dsn = f"postgres://u:p@127.0.0.1:{free_port()}/db?connect_timeout=2"
    assert db.wait_for_database(db.Database(dsn), wait_seconds=30, stop=stop) is False


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        (
            "postgres://mmuser:s3cret@db:5432/mm?sslmode=disable",
            "postgres://mmuser:****@db:5432/mm?sslmode=disable",
        ),
        ("postgres://mmuser@db/mm", "postgres://mmuser@db/mm"),
        ("postgres://u:p%40ss@db/mm?password=x", "postgres://u:****@db/mm?password=****"),
        ("host=db user=mmuser password=s3cret dbname=mm", "host=db user=mmuser password=**** dbname=mm"),
    ],
)
def test_mask_data_source(dsn: str, masked: str) -> None:
    assert db.mask_data_source(dsn) == masked
