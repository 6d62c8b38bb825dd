"""pgwire, the stand-in's PostgreSQL client, against a real PostgreSQL server."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Callable

import pytest

from tests.conftest import MattermostDatabase
from tests.pgserver import PostgresServer, free_port
from tests.standin.mmstandin import pgwire

# A login role made for one test: (user, password).
RoleFactory = Callable[..., "tuple[str, str]"]


@pytest.fixture
def make_role(postgres: PostgresServer) -> Iterator[RoleFactory]:
    """Create login roles with a chosen password hash and pg_hba method; all removed afterwards."""
    created: list[str] = []

    def make(
        password: str | None = None,
        stored_as: str = "scram-sha-256",
        method: str | None = None,
        connection: str = "host",
    ) -> tuple[str, str]:
        user = f"pgwire_{secrets.token_hex(4)}"
        password = password if password is not None else secrets.token_urlsafe(12)
        postgres.create_user(user, password, stored_as=stored_as)
        created.append(user)
        if method:
            postgres.allow(user, method, connection=connection)
        return user, password

    yield make
    postgres.reset_hba()
    for user in created:
        postgres.drop_user(user)


def whoami(conn: pgwire.Connection) -> str:
    return conn.query("SELECT current_user")[0][0]


# Authentication ------------------------------------------------------------------------------------------


def test_scram_login(mm_database: MattermostDatabase) -> None:
    with pgwire.connect(mm_database.dsn) as conn:
        assert whoami(conn) == mm_database.user
        assert conn.query("SELECT current_database()") == [(mm_database.name,)]


def test_md5_login(postgres: PostgresServer, make_role: RoleFactory) -> None:
    user, password = make_role(stored_as="md5", method="md5")
    with pgwire.connect(postgres.dsn(user, password, "postgres")) as conn:
        assert whoami(conn) == user


def test_md5_rule_with_scram_verifier_falls_back_to_scram(
    postgres: PostgresServer, make_role: RoleFactory
) -> None:
    user, password = make_role(stored_as="scram-sha-256", method="md5")
    with pgwire.connect(postgres.dsn(user, password, "postgres")) as conn:
        assert whoami(conn) == user


def test_cleartext_login(postgres: PostgresServer, make_role: RoleFactory) -> None:
    user, password = make_role(method="password")
    with pgwire.connect(postgres.dsn(user, password, "postgres")) as conn:
        assert whoami(conn) == user


def test_trust_login_needs_no_password(postgres: PostgresServer, make_role: RoleFactory) -> None:
    user, _ = make_role(method="trust")
    with pgwire.connect(f"postgresql://{user}@{postgres.host}:{postgres.port}/postgres") as conn:
        assert whoami(conn) == user


@pytest.mark.parametrize("method", ["scram-sha-256", "md5", "password"])
def test_wrong_password_is_refused_without_revealing_it(
    postgres: PostgresServer, make_role: RoleFactory, method: str
) -> None:
    stored_as = "md5" if method == "md5" else "scram-sha-256"
    user, _ = make_role(stored_as=stored_as, method=method)
    wrong = "Wr0ng-" + secrets.token_hex(8)
    with pytest.raises(pgwire.ConnectError) as caught:
        pgwire.connect(postgres.dsn(user, wrong, "postgres"))
    assert caught.value.sqlstate == "28P01"
    for text in (str(caught.value), repr(caught.value), caught.value.message):
        assert wrong not in text
    # Nothing chained either: a traceback must not show the password through another exception.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


def test_password_needed_but_missing(postgres: PostgresServer, make_role: RoleFactory) -> None:
    user, _ = make_role()
    with pytest.raises(pgwire.ConnectError, match="none was given"):
        pgwire.connect(f"postgres://{user}@{postgres.host}:{postgres.port}/postgres")


@pytest.mark.parametrize(
    "password",
    ["p@ss:w/rd%?#&=+ ,'\"\\", "pässwörd", "Ünïcödé\u00a0space", "ﬁ-ligature"],
    ids=["url-reserved", "latin", "nbsp-mapped-by-saslprep", "nfkc-normalized"],
)
def test_unusual_passwords_survive_url_and_saslprep(
    postgres: PostgresServer, make_role: RoleFactory, password: str
) -> None:
    user, password = make_role(password=password)
    with pgwire.connect(postgres.dsn(user, password, "postgres")) as conn:
        assert whoami(conn) == user


def test_unknown_database(postgres: PostgresServer, mm_database: MattermostDatabase) -> None:
    with pytest.raises(pgwire.ConnectError) as caught:
        pgwire.connect(postgres.dsn(mm_database.user, mm_database.password, "no_such_db"))
    assert caught.value.sqlstate == "3D000"


def test_nothing_listening() -> None:
    port = free_port()
    with pytest.raises(pgwire.ConnectError, match=f"127.0.0.1:{port}"):
        pgwire.connect(f"postgres://u:secret@127.0.0.1:{port}/db?connect_timeout=2")


# Transports ----------------------------------------------------------------------------------------------


def test_unix_socket(postgres: PostgresServer, make_role: RoleFactory) -> None:
    # Root is not the role's OS user, so the default "peer" rule for sockets would refuse it.
    user, password = make_role(method="scram-sha-256", connection="local")
    with pgwire.connect(postgres.socket_dsn(user, password, "postgres")) as conn:
        assert whoami(conn) == user
        assert conn.query("SELECT inet_client_addr() IS NULL") == [(True,)]


def test_unix_socket_dir_in_url_host(postgres: PostgresServer, make_role: RoleFactory) -> None:
    user, password = make_role(method="scram-sha-256", connection="local")
    encoded_dir = str(postgres.socket_dir).replace("/", "%2F")
    dsn = f"postgres://{user}:{password}@{encoded_dir}:{postgres.port}/postgres"
    with pgwire.connect(dsn) as conn:
        assert whoami(conn) == user


def ssl_in_use(conn: pgwire.Connection) -> bool:
    return conn.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")[0][0]


def test_sslmode_require_uses_tls(postgres: PostgresServer, mm_database: MattermostDatabase) -> None:
    if not postgres.ssl_enabled:
        pytest.skip("test cluster has no TLS certificate (openssl missing)")
    dsn = postgres.dsn(mm_database.user, mm_database.password, mm_database.name, sslmode="require")
    with pgwire.connect(dsn) as conn:
        assert ssl_in_use(conn) is True
        assert whoami(conn) == mm_database.user


def test_sslmode_disable_stays_plain(mm_database: MattermostDatabase) -> None:
    with pgwire.connect(mm_database.dsn) as conn:
        assert ssl_in_use(conn) is False


def test_hostssl_only_role_needs_sslmode_require(postgres: PostgresServer, make_role: RoleFactory) -> None:
    if not postgres.ssl_enabled:
        pytest.skip("test cluster has no TLS certificate (openssl missing)")
    user, password = make_role(method="reject", connection="hostnossl")
    with pytest.raises(pgwire.ConnectError, match=r"pg_hba\.conf rejects"):
        pgwire.connect(postgres.dsn(user, password, "postgres"))
    with pgwire.connect(postgres.dsn(user, password, "postgres", sslmode="require")) as conn:
        assert ssl_in_use(conn) is True


# Queries -------------------------------------------------------------------------------------------------


@pytest.fixture
def conn(mm_database: MattermostDatabase) -> Iterator[pgwire.Connection]:
    connection = pgwire.connect(mm_database.dsn)
    yield connection
    connection.close()


def test_server_version_num_matches_server(conn: pgwire.Connection) -> None:
    (reported,) = conn.query("SHOW server_version_num")[0]
    assert conn.server_version_num == int(reported)


def test_typed_parameters_round_trip(conn: pgwire.Connection) -> None:
    some_uuid = uuid.uuid4()
    row = conn.query(
        "SELECT $1::int2, $2::int4, $3::int8, $4::bool, $5::bool, $6::float8, $7::float4, $8::numeric,"
        " $9::text, $10::varchar, $11::json, $12::jsonb, $13::uuid, $14::bytea, $15::name, $16::oid",
        [
            -32768,
            2147483647,
            -9223372036854775808,
            True,
            False,
            0.1,
            1.5,
            Decimal("12345678901234567890.123456789"),
            "héllo, wörld ✓",
            "v",
            '{"a": [1, 2]}',
            '{"b": null}',
            some_uuid,
            b"\x00\x01\xfe\xff",
            "pg_class",
            1259,
        ],
    )[0]
    assert row == (
        -32768,
        2147483647,
        -9223372036854775808,
        True,
        False,
        0.1,
        1.5,
        Decimal("12345678901234567890.123456789"),
        "héllo, wörld ✓",
        "v",
        '{"a": [1, 2]}',
        '{"b": null}',
        str(some_uuid),
        b"\x00\x01\xfe\xff",
        "pg_class",
        1259,
    )
    assert [type(value) for value in row[:8]] == [int, int, int, bool, bool, float, float, Decimal]


def test_untyped_parameters_take_the_column_types(conn: pgwire.Connection) -> None:
    conn.execute(
        "CREATE TABLE posts (id varchar(26) PRIMARY KEY, createat bigint, ispinned boolean,"
        " score double precision, props jsonb, fileblob bytea, deleted text)"
    )
    values = ("abcdefghijklmnopqrstuvwxyz", 1700000000123, True, -2.5, '{"k": "v"}', bytes(range(256)), None)
    assert conn.execute("INSERT INTO posts VALUES ($1, $2, $3, $4, $5, $6, $7)", values) == 1
    assert conn.query("SELECT * FROM posts WHERE id = $1", [values[0]]) == [values]


def test_floats_beyond_finite(conn: pgwire.Connection) -> None:
    row = conn.query(
        "SELECT $1::float8, $2::float8, $3::float8", [float("inf"), float("-inf"), float("nan")]
    )[0]
    assert row[0] == float("inf")
    assert row[1] == float("-inf")
    assert row[2] != row[2]


def test_null_parameters_and_columns(conn: pgwire.Connection) -> None:
    assert conn.query("SELECT $1::int4, $2::text, NULL::bytea, NULL", [None, None]) == [
        (None, None, None, None)
    ]
    assert conn.query("SELECT $1::int4 IS NULL", [None]) == [(True,)]


def test_bytea_escape_output_format(conn: pgwire.Connection) -> None:
    conn.execute("SET bytea_output = 'escape'")
    payload = bytes(range(256)) + b"\\\\x"
    assert conn.query("SELECT $1::bytea", [payload]) == [(payload,)]


def test_other_types_come_back_as_text(conn: pgwire.Connection) -> None:
    row = conn.query("SELECT '2024-01-02'::date, ARRAY[1, 2], '10.0.0.1'::inet, 'x'::char(3)")[0]
    assert row == ("2024-01-02", "{1,2}", "10.0.0.1", "x  ")


def test_rows_affected(conn: pgwire.Connection) -> None:
    assert conn.execute("CREATE TABLE teams (id int PRIMARY KEY, name text)") == 0
    assert conn.execute("INSERT INTO teams SELECT g, 'team' || g FROM generate_series(1, 5) g") == 5
    assert conn.execute("UPDATE teams SET name = $1 WHERE id > $2", ["renamed", 2]) == 3
    assert conn.execute("DELETE FROM teams WHERE id = $1", [1]) == 1
    assert conn.execute("SELECT * FROM teams") == 4
    assert conn.query("SELECT count(*) FROM teams WHERE name = $1", ["renamed"]) == [(3,)]


def test_statement_without_rows_returns_empty_list(conn: pgwire.Connection) -> None:
    assert conn.query("CREATE TABLE channels (id int)") == []
    assert conn.query("SELECT * FROM channels") == []
    assert conn.query("") == []


def test_script_of_several_statements_without_params(conn: pgwire.Connection) -> None:
    rows = conn.query("CREATE TABLE a (x int); INSERT INTO a VALUES (1), (2); SELECT x FROM a ORDER BY x")
    assert rows == [(1,), (2,)]


def test_error_then_connection_is_usable(conn: pgwire.Connection) -> None:
    with pytest.raises(pgwire.Error) as caught:
        conn.query("SELECT * FROM no_such_table WHERE id = $1", [1])
    assert caught.value.sqlstate == "42P01"
    assert "no_such_table" in caught.value.message
    assert not isinstance(caught.value, pgwire.ConnectError)
    with pytest.raises(pgwire.Error) as syntax:
        conn.query("SELEKT 1")
    assert syntax.value.sqlstate == "42601"
    assert conn.query("SELECT $1::int4 + 1", [41]) == [(42,)]


def test_unique_violation_carries_detail(conn: pgwire.Connection) -> None:
    conn.execute("CREATE TABLE users (username text UNIQUE)")
    conn.execute("INSERT INTO users VALUES ($1)", ["alice"])
    with pytest.raises(pgwire.Error) as caught:
        conn.execute("INSERT INTO users VALUES ($1)", ["alice"])
    assert caught.value.sqlstate == "23505"
    assert "alice" in caught.value.detail


def test_transaction_commit_rollback_and_failed_state(conn: pgwire.Connection) -> None:
    conn.execute("CREATE TABLE sessions (id int)")
    conn.query("BEGIN")
    assert conn.transaction_status == "T"
    conn.execute("INSERT INTO sessions VALUES ($1)", [1])
    conn.query("ROLLBACK")
    assert conn.transaction_status == "I"
    assert conn.query("SELECT count(*) FROM sessions") == [(0,)]

    conn.query("BEGIN")
    with pytest.raises(pgwire.Error):
        conn.query("SELECT 1/0")
    assert conn.transaction_status == "E"
    with pytest.raises(pgwire.Error) as aborted:
        conn.query("SELECT 1")
    assert aborted.value.sqlstate == "25P02"
    conn.query("ROLLBACK")

    conn.query("BEGIN")
    conn.execute("INSERT INTO sessions VALUES ($1)", [2])
    conn.query("COMMIT")
    assert conn.query("SELECT id FROM sessions") == [(2,)]


def test_large_result(conn: pgwire.Connection) -> None:
    rows = conn.query("SELECT g, repeat('x', 1000) FROM generate_series(1, 5000) g")
    assert len(rows) == 5000
    assert rows[-1] == (5000, "x" * 1000)


def test_copy_from_stdin_is_refused_not_hung(conn: pgwire.Connection) -> None:
    conn.execute("CREATE TABLE files (id int)")
    with pytest.raises(pgwire.Error, match="COPY FROM STDIN is not supported"):
        conn.query("COPY files FROM STDIN")
    assert conn.query("SELECT 1") == [(1,)]


def test_terminated_backend_raises_connect_error(
    conn: pgwire.Connection, mm_database: MattermostDatabase
) -> None:
    with pgwire.connect(mm_database.dsn) as other:
        assert other.query("SELECT pg_terminate_backend($1)", [conn.backend_pid]) == [(True,)]
    with pytest.raises(pgwire.ConnectError):
        conn.query("SELECT 1")
    assert conn.closed
    with pytest.raises(pgwire.ConnectError, match="closed"):
        conn.query("SELECT 1")


def test_unsupported_parameter_type(conn: pgwire.Connection) -> None:
    with pytest.raises(TypeError, match="dict"):
        conn.query("SELECT $1", [{"a": 1}])
    assert conn.query("SELECT 1") == [(1,)]


# Pure functions ------------------------------------------------------------------------------------------


def test_parse_dsn_decodes_credentials_and_defaults() -> None:
    info = pgwire.parse_dsn("postgresql://mm%40user:p%40ss%3Aw%2Frd@db.example:6543/mattermost%20db")
    assert (info.user, info.password, info.host, info.port, info.database) == (
        "mm@user",
        "p@ss:w/rd",
        "db.example",
        6543,
        "mattermost db",
    )
    assert info.sslmode == "disable"
    assert info.connect_timeout is None
    assert "p@ss" not in repr(info)


def test_parse_dsn_options() -> None:
    info = pgwire.parse_dsn("postgres://u:p@/mm?host=/var/run/postgresql&sslmode=require&connect_timeout=10")
    assert info.is_unix_socket
    assert info.socket_path == "/var/run/postgresql/.s.PGSQL.5432"
    assert (info.port, info.sslmode, info.connect_timeout) == (5432, "require", 10.0)
    assert pgwire.parse_dsn("postgres://u@[::1]/d").host == "::1"
    assert pgwire.parse_dsn("postgres://u@h").database == "u"
    assert pgwire.parse_dsn("postgres://u@h?connect_timeout=0").connect_timeout is None


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("mysql://u:s3cr3t@h/d", "postgres://"),
        ("postgres://u:s3cr3t@h:99999/d", "port"),
        ("postgres://u:s3cr3t@h/d?port=0", "out of range"),
        ("postgres://u:s3cr3t@h:port/d", "invalid port"),
        ("postgres://u:s3cr3t@h/d?sslmode=sometimes", "unknown sslmode"),
        ("postgres://u:s3cr3t@h/d?connect_timeout=soon", "invalid connect_timeout"),
        ("postgres://:s3cr3t@h/d", "no user"),
    ],
)
def test_parse_dsn_errors_hide_the_password(dsn: str, message: str) -> None:
    with pytest.raises(pgwire.ConnectError, match=message) as caught:
        pgwire.parse_dsn(dsn)
    assert "s3cr3t" not in str(caught.value)
    assert caught.value.__cause__ is None


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("15.12 (Debian 15.12-0+deb12u2)", 150012),
        ("16.0", 160000),
        ("17beta1", 170000),
        ("13.4", 130004),
        ("9.6.24", 90624),
        ("garbage", 0),
    ],
)
def test_parse_server_version(text: str, number: int) -> None:
    assert pgwire.parse_server_version(text) == number


def test_scram_rfc7677_example() -> None:
    scram = pgwire.ScramClient("pencil", nonce="rOprNGfwEbeRWgbNEkqO", user="user")
    assert scram.client_first() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    assert scram.client_final(server_first) == (
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    )
    scram.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")


def test_scram_rejects_forged_server_signature() -> None:
    scram = pgwire.ScramClient("pencil", nonce="rOprNGfwEbeRWgbNEkqO")
    scram.client_final(b"r=rOprNGfwEbeRWgbNEkqOserver,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
    with pytest.raises(pgwire.ConnectError, match="server signature"):
        scram.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")


def test_scram_rejects_server_nonce_not_extending_ours() -> None:
    scram = pgwire.ScramClient("pencil", nonce="clientnonce")
    with pytest.raises(pgwire.ConnectError, match="nonce"):
        scram.client_final(b"r=othernonce,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")


def test_saslprep() -> None:
    assert pgwire.saslprep("plain ascii\x07") == "plain ascii\x07"
    assert pgwire.saslprep("I\u00adX") == "IX"  # soft hyphen maps to nothing
    assert pgwire.saslprep("a\u00a0b") == "a b"  # non-ASCII space maps to space
    assert pgwire.saslprep("\u2168") == "IX"  # NFKC
    assert pgwire.saslprep("bad\u0007ü") == "bad\u0007ü"  # prohibited: left unchanged, as PostgreSQL does


def test_md5_password_matches_server_md5(conn: pgwire.Connection) -> None:
    expected = conn.query(
        "SELECT 'md5' || md5(convert_to(md5($1 || $2), 'UTF8') || $3::bytea)",
        ["secret", "mmuser", b"\x01\x02\x03\x04"],
    )[0][0]
    assert pgwire.md5_password("mmuser", "secret", b"\x01\x02\x03\x04") == expected.encode("ascii")
