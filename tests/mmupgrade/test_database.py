"""The database through psql/pg_dump/pg_restore against a real PostgreSQL, credentials never in argv."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mmupgrade.database import Database, DatabaseError, DataSource, find_tool
from tests.conftest import MattermostDatabase


def test_data_source_url_to_pg_environment() -> None:
    source = DataSource.parse(
        "postgres://mm%40user:p%40ss%3Aword@db.example.com:6432/matter%20most"
        "?sslmode=require&connect_timeout=5&binary_parameters=yes"
    )
    assert source.env == {
        "PGUSER": "mm@user",
        "PGPASSWORD": "p@ss:word",
        "PGHOST": "db.example.com",
        "PGPORT": "6432",
        "PGDATABASE": "matter most",
        "PGSSLMODE": "require",
        "PGCONNECT_TIMEOUT": "5",
    }
    assert "p@ss" not in repr(source) and "p%40ss" not in str(source)
    assert "****" in str(source)


def test_data_source_forms() -> None:
    socket = DataSource.parse("postgres://mmuser:pw@/mattermost?host=/var/run/postgresql&port=5433")
    assert socket.env["PGHOST"] == "/var/run/postgresql" and socket.env["PGPORT"] == "5433"
    ipv6 = DataSource.parse("postgresql://mmuser:pw@[::1]:5432/mattermost")
    assert ipv6.env["PGHOST"] == "::1"
    no_host = DataSource.parse("postgres://mmuser:pw@/mattermost")
    assert no_host.env["PGHOST"] == "localhost"  # what lib/pq, the server's driver, does
    keywords = DataSource.parse("host=db port=5432 user=mm password='it\\'s a secret' dbname=mattermost")
    assert keywords.env["PGHOST"] == "db" and keywords.env["PGDATABASE"] == "mattermost"
    assert keywords.env["PGPASSWORD"] == "it's a secret"
    assert "secret" not in str(keywords)
    with pytest.raises(DatabaseError, match="unsupported database driver"):
        DataSource.parse("mysql://mm:pw@tcp(db:3306)/mattermost")


def test_tool_commands_never_carry_the_password(mm_database: MattermostDatabase, tmp_path: Path) -> None:
    database = Database(DataSource.parse(mm_database.dsn))
    commands = [database.psql_command(), database.dump_command(tmp_path / "x.dump")]
    for argv in commands:
        assert not any(mm_database.password in part for part in argv)
        assert not any(mm_database.dsn in part for part in argv)
    recorded: list[dict[str, Any]] = []

    def runner(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        recorded.append({"argv": argv, **kwargs})
        return subprocess.run(argv, **kwargs)  # noqa: PLW1510 - check passed by the caller

    Database(DataSource.parse(mm_database.dsn), runner=runner).query("SELECT 1;")
    (call,) = recorded
    assert not any(mm_database.password in part for part in call["argv"])
    assert mm_database.password not in call["input"]
    assert call["env"]["PGPASSWORD"] == mm_database.password


def _seed(database: Database) -> None:
    database.query(
        "CREATE TABLE db_migrations (version bigint PRIMARY KEY, name varchar(64) NOT NULL);\n"
        "INSERT INTO db_migrations VALUES (1, 'create_base_tables'), (1109, 'standin_schema_1109');\n"
        "CREATE TABLE posts (id serial PRIMARY KEY, message text NOT NULL);\n"
        "INSERT INTO posts (message) VALUES ('first'), ('second');\n"
        "CREATE TYPE mood AS ENUM ('happy', 'sad');\n"
        "CREATE TABLE configurations (id varchar(26) PRIMARY KEY, value text NOT NULL, createat "
        "bigint, active boolean UNIQUE);\n"
        'INSERT INTO configurations VALUES (\'a\', \'{"SqlSettings": {"DataSource": '
        '"postgres://x"}}\', 1, true);\n'
    )


def test_versions_sizes_and_config(mm_database: MattermostDatabase, postgres: Any) -> None:
    database = Database(DataSource.parse(mm_database.dsn))
    assert database.schema_version() == 0  # empty database
    assert database.active_config() is None
    assert database.server_version_num() == postgres.version_num
    _seed(database)
    assert database.schema_version() == 1109
    assert database.size_bytes() > 0
    assert database.active_config() == {"SqlSettings": {"DataSource": "postgres://x"}}


def test_dump_and_atomic_restore(mm_database: MattermostDatabase, tmp_path: Path) -> None:
    database = Database(DataSource.parse(mm_database.dsn))
    _seed(database)
    dump = tmp_path / "database.dump"
    assert database.dump(dump) > 0
    entries = database.list_dump(dump)
    assert any("TABLE DATA public posts" in line for line in entries)

    # What a failed new version leaves: a migrated schema, new tables, new types, changed rows.
    database.query(
        "INSERT INTO db_migrations VALUES (1110, 'standin_schema_1110');\n"
        "CREATE TABLE new_feature (id int);\n"
        "CREATE TYPE new_enum AS ENUM ('x');\n"
        "CREATE FUNCTION new_function() RETURNS int LANGUAGE sql AS 'SELECT 1';\n"
        "ALTER TABLE posts ADD COLUMN extra int;\n"
        "CREATE INDEX posts_extra ON posts (extra);\n"
        "DELETE FROM posts WHERE message = 'first';\n"
    )
    database.restore(dump)
    assert database.schema_version() == 1109
    assert database.query("SELECT message FROM posts ORDER BY id;").split() == ["first", "second"]
    assert database.query("SELECT to_regclass('new_feature') IS NULL;").strip() == "t"
    assert database.query("SELECT count(*) FROM pg_type WHERE typname = 'new_enum';").strip() == "0"
    assert database.query("SELECT count(*) FROM pg_proc WHERE proname = 'new_function';").strip() == "0"
    assert database.query("SELECT count(*) FROM pg_type WHERE typname = 'mood';").strip() == "1"
    # Sequences come back too: the next post gets the next id.
    assert database.query("INSERT INTO posts (message) VALUES ('third') RETURNING id;").strip() == "3"


def test_restore_of_a_broken_dump_changes_nothing(mm_database: MattermostDatabase, tmp_path: Path) -> None:
    database = Database(DataSource.parse(mm_database.dsn))
    _seed(database)
    dump = tmp_path / "database.dump"
    database.dump(dump)
    database.query("INSERT INTO posts (message) VALUES ('after the dump');")
    data = dump.read_bytes()
    truncated = tmp_path / "truncated.dump"
    truncated.write_bytes(data[: int(len(data) * 0.8)])
    with pytest.raises(DatabaseError):
        database.restore(truncated)
    assert database.query("SELECT count(*) FROM posts;").strip() == "3"
    assert database.schema_version() == 1109


def test_unreachable_database_message_has_no_password(mm_database: MattermostDatabase) -> None:
    dsn = mm_database.dsn.replace(f":{mm_database.password}@", ":wrong-password-123@")
    database = Database(DataSource.parse(dsn))
    with pytest.raises(DatabaseError) as raised:
        database.query("SELECT 1;")
    assert "wrong-password-123" not in str(raised.value)
    assert "did not answer" in str(raised.value)


def test_tools_are_found() -> None:
    for tool in ("psql", "pg_dump", "pg_restore"):
        assert Path(find_tool(tool)).is_file()
    assert "/usr/lib/postgresql/" in find_tool("pg_dump")  # the versioned binary, not the wrapper


def test_dump_is_json_free_of_secrets(mm_database: MattermostDatabase, tmp_path: Path) -> None:
    """pg_restore --list output (what the backup manifest keeps) names no credentials."""
    database = Database(DataSource.parse(mm_database.dsn))
    _seed(database)
    dump = tmp_path / "database.dump"
    database.dump(dump)
    listing = "\n".join(database.list_dump(dump))
    assert mm_database.password not in listing
    json.dumps(listing)
