"""A minimal PostgreSQL client speaking the frontend/backend protocol version 3.

The release stand-in runs inside test containers with nothing but the Python standard library
(3.9 to 3.13), yet has to reach PostgreSQL the way Mattermost does: from a ``postgres://`` data source,
with SCRAM-SHA-256, MD5, cleartext or trust authentication, optionally over TLS. Only what the stand-in
needs is here: connect, run a statement with ``$n`` parameters in text format, decode the common types.

Protocol reference: https://www.postgresql.org/docs/current/protocol.html
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import re
import socket
import ssl
import stringprep
import struct
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, urlsplit
from uuid import UUID

DEFAULT_PORT = 5432
PROTOCOL_VERSION = 3 << 16
SSL_REQUEST_CODE = 80877103
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# libpq would try TLS first for "allow" and "prefer"; the stand-in keeps them plain (see the contract),
# which only matters for servers that insist on TLS, and those are met with sslmode=require.
PLAIN_SSLMODES = ("disable", "allow", "prefer")

# Authentication request codes in the 'R' message.
AUTH_OK = 0
AUTH_CLEARTEXT = 3
AUTH_MD5 = 5
AUTH_SASL = 10
AUTH_SASL_CONTINUE = 11
AUTH_SASL_FINAL = 12
SCRAM_MECHANISM = "SCRAM-SHA-256"

BYTEA_OID = 17
# Parameters are sent untyped (OID 0) so the server infers the type from context, as it does for
# literals; only bytea is declared, because its text form ("\x...") would otherwise be taken for text.
UNTYPED_OID = 0


class Error(Exception):
    """A server ErrorResponse, or a client-side failure; never contains the password."""

    def __init__(self, message: str, sqlstate: str = "", fields: dict[str, str] | None = None) -> None:
        super().__init__(f"{message} (SQLSTATE {sqlstate})" if sqlstate else message)
        self.message = message
        self.sqlstate = sqlstate
        # All ErrorResponse fields by code: S severity, D detail, H hint, P position, ...
        self.fields = fields or {}

    @property
    def detail(self) -> str:
        return self.fields.get("D", "")


class ConnectError(Error):
    """The connection could not be opened, authenticated, or was lost."""


# Data source --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnInfo:
    """Where and how to connect, parsed from a postgres:// URL."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str
    sslmode: str = "disable"
    connect_timeout: float | None = None
    application_name: str = ""
    sslrootcert: str = ""

    @property
    def is_unix_socket(self) -> bool:
        return self.host.startswith("/")

    @property
    def socket_path(self) -> str:
        return os.path.join(self.host, f".s.PGSQL.{self.port}")

    def describe(self) -> str:
        """Where we connect, for messages (no credentials)."""
        if self.is_unix_socket:
            return f'socket "{self.socket_path}"'
        return f"{self.host}:{self.port}"


def parse_dsn(dsn: str) -> ConnInfo:
    """Parse a libpq-style URL: postgres[ql]://user:pass@host:port/db?sslmode=...&host=/socket/dir."""
    # Messages never echo the URL itself: it carries the password.
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ConnectError("data source must start with postgres:// or postgresql://")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    user = unquote(parts.username or "") or options.get("user", "")
    if not user:
        raise ConnectError("data source names no user")
    password = unquote(parts.password or "") or options.get("password", "")
    host = options.get("host") or _url_host(parts.netloc) or "localhost"
    try:
        port = int(options.get("port") or parts.port or DEFAULT_PORT)
    except ValueError:
        raise ConnectError("data source has an invalid port") from None
    if not 0 < port < 65536:
        raise ConnectError(f"data source port {port} is out of range")
    database = unquote(parts.path.lstrip("/")) or options.get("dbname", "") or user
    sslmode = options.get("sslmode", "disable") or "disable"
    if sslmode not in SSLMODES:
        raise ConnectError(f"unknown sslmode {sslmode!r}; expected one of {', '.join(SSLMODES)}")
    connect_timeout: float | None = None
    if options.get("connect_timeout"):
        try:
            connect_timeout = float(options["connect_timeout"])
        except ValueError:
            raise ConnectError("data source has an invalid connect_timeout") from None
        # libpq: zero or less means wait forever; it also never waits less than two seconds.
        connect_timeout = max(connect_timeout, 2.0) if connect_timeout > 0 else None
    return ConnInfo(
        host=host,
        port=port,
        user=user,
        password=password,
        database=database,
        sslmode=sslmode,
        connect_timeout=connect_timeout,
        application_name=options.get("application_name", ""),
        sslrootcert=options.get("sslrootcert", ""),
    )


def _url_host(netloc: str) -> str:
    """The host part of user:pass@host:port, percent-decoded (libpq allows %2Fsocket%2Fdir).

    Not urlsplit's .hostname: that lowercases, and a socket directory path is case-sensitive.
    """
    host_port = netloc.rpartition("@")[2]
    if host_port.startswith("["):
        return host_port[1:].partition("]")[0]
    return unquote(host_port.partition(":")[0])


def parse_server_version(text: str) -> int:
    """Turn server_version ("15.12 (Debian 15.12-0+deb12u2)", "9.6.24", "17beta1") into server_version_num."""
    match = re.match(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", text.strip())
    if not match:
        return 0
    major, second, third = (int(g) if g else 0 for g in match.groups())
    if major >= 10:
        return major * 10000 + second
    return major * 10000 + second * 100 + third


# SCRAM-SHA-256 (RFC 5802, RFC 7677) -----------------------------------------------------------------------


def saslprep(password: str) -> str:
    """Normalize a password as RFC 4013 says, falling back to it unchanged as PostgreSQL does.

    The server builds its SCRAM verifier from the SASLprep'd password when that succeeds and from the raw
    string when it does not, so the client must make the same choice or valid passwords would fail.
    """
    if password.isascii():
        return password
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch for ch in password if not stringprep.in_table_b1(ch)
    )
    prepared = unicodedata.normalize("NFKC", mapped)
    prohibited: tuple[Callable[[str], bool], ...] = (
        stringprep.in_table_a1,
        stringprep.in_table_c12,
        stringprep.in_table_c21_c22,
        stringprep.in_table_c3,
        stringprep.in_table_c4,
        stringprep.in_table_c5,
        stringprep.in_table_c6,
        stringprep.in_table_c7,
        stringprep.in_table_c8,
        stringprep.in_table_c9,
    )
    if not prepared or any(check(ch) for ch in prepared for check in prohibited):
        return password
    if any(stringprep.in_table_d1(ch) for ch in prepared):
        right_to_left_ok = stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1])
        if not right_to_left_ok or any(stringprep.in_table_d2(ch) for ch in prepared):
            return password
    return prepared


class ScramClient:
    """One SCRAM-SHA-256 exchange without channel binding (gs2 header "n,,")."""

    GS2_HEADER = "n,,"

    def __init__(self, password: str, nonce: str | None = None, user: str = "") -> None:
        self._password = saslprep(password).encode("utf-8")
        self.client_nonce = nonce or base64.b64encode(os.urandom(18)).decode("ascii")
        # PostgreSQL takes the user from the startup message and ignores this one, so libpq sends it
        # empty; the parameter exists for the RFC 7677 test vector. "=" and "," must be escaped.
        escaped_user = user.replace("=", "=3D").replace(",", "=2C")
        self.client_first_bare = f"n={escaped_user},r={self.client_nonce}"
        self._server_signature = b""

    def client_first(self) -> bytes:
        return (self.GS2_HEADER + self.client_first_bare).encode("ascii")

    def client_final(self, server_first: bytes) -> bytes:
        text = server_first.decode("utf-8")
        attrs = _scram_attributes(text)
        nonce, salt_b64, iterations = attrs.get("r", ""), attrs.get("s", ""), attrs.get("i", "")
        if not nonce.startswith(self.client_nonce) or len(nonce) == len(self.client_nonce):
            raise ConnectError("SCRAM: server nonce does not extend the client nonce")
        if not salt_b64 or not iterations.isdigit() or int(iterations) < 1:
            raise ConnectError("SCRAM: malformed server-first-message")
        salted = hashlib.pbkdf2_hmac("sha256", self._password, base64.b64decode(salt_b64), int(iterations))
        client_key = _hmac(salted, b"Client Key")
        stored_key = hashlib.sha256(client_key).digest()
        channel_binding = base64.b64encode(self.GS2_HEADER.encode("ascii")).decode("ascii")
        final_without_proof = f"c={channel_binding},r={nonce}"
        auth_message = f"{self.client_first_bare},{text},{final_without_proof}".encode()
        client_signature = _hmac(stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, client_signature))
        self._server_signature = _hmac(_hmac(salted, b"Server Key"), auth_message)
        return f"{final_without_proof},p={base64.b64encode(proof).decode('ascii')}".encode("ascii")

    def verify_server_final(self, server_final: bytes) -> None:
        """Check the server proved it knows the verifier too (mutual authentication)."""
        attrs = _scram_attributes(server_final.decode("utf-8"))
        if "e" in attrs:
            raise ConnectError(f"SCRAM: server reported error {attrs['e']!r}")
        try:
            signature = base64.b64decode(attrs.get("v", ""), validate=True)
        except ValueError:
            signature = b""
        if not self._server_signature or not hmac.compare_digest(signature, self._server_signature):
            raise ConnectError("SCRAM: server signature is wrong; the server may not be who it claims")


def _scram_attributes(message: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for item in message.split(","):
        key, sep, value = item.partition("=")
        if sep and len(key) == 1:
            attrs.setdefault(key, value)
    return attrs


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def md5_password(user: str, password: str, salt: bytes) -> bytes:
    """The answer to AuthenticationMD5Password: "md5" + md5(md5(password + user) + salt).

    The protocol fixes MD5; usedforsecurity=False lets it run on FIPS-mode hosts, where a plain
    hashlib.md5() is refused.
    """
    inner = hashlib.md5(password.encode("utf-8") + user.encode("utf-8"), usedforsecurity=False)
    outer = hashlib.md5(inner.hexdigest().encode("ascii") + salt, usedforsecurity=False)
    return b"md5" + outer.hexdigest().encode("ascii")


# Values --------------------------------------------------------------------------------------------------


def encode_param(value: object) -> tuple[int, bytes | None]:
    """A Python value as (type OID, text-format bytes) for Bind; None is SQL NULL."""
    if value is None:
        return UNTYPED_OID, None
    if isinstance(value, bool):
        return UNTYPED_OID, b"true" if value else b"false"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return BYTEA_OID, b"\\x" + bytes(value).hex().encode("ascii")
    if isinstance(value, float):
        # repr round-trips exactly; the server reads "inf", "-inf" and "nan" as well.
        return UNTYPED_OID, repr(value).encode("ascii")
    if isinstance(value, (int, str, Decimal, UUID)):
        return UNTYPED_OID, str(value).encode("utf-8")
    if isinstance(value, (datetime, date, time)):
        return UNTYPED_OID, value.isoformat().encode("ascii")
    raise TypeError(f"cannot send a {type(value).__name__} as a query parameter")


def decode_bytea(raw: bytes) -> bytes:
    """bytea in text format: hex ("\\x0a0b", the default since 9.0) or the older escape format."""
    if raw.startswith(b"\\x"):
        return bytes.fromhex(raw[2:].decode("ascii"))
    # Escape format: printable ASCII as is, "\\\\" for a backslash, "\\nnn" (octal) for other bytes.
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == 0x5C and raw[i + 1 : i + 2] == b"\\":
            out.append(0x5C)
            i += 2
        elif raw[i] == 0x5C:
            out.append(int(raw[i + 1 : i + 4], 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return bytes(out)


# Column types (OIDs from pg_type.dat) read back as Python values; every other type stays str.
TEXT_DECODERS: dict[int, Callable[[str], Any]] = {
    16: lambda text: text == "t",  # bool
    20: int,  # int8
    21: int,  # int2
    23: int,  # int4
    26: int,  # oid
    28: int,  # xid
    700: float,  # float4
    701: float,  # float8
    1700: Decimal,  # numeric
}


def decode_value(type_oid: int, raw: bytes | None) -> Any:
    """A text-format column value as the Python value for its type."""
    if raw is None:
        return None
    if type_oid == BYTEA_OID:
        return decode_bytea(raw)
    text = raw.decode("utf-8")
    decoder = TEXT_DECODERS.get(type_oid)
    return decoder(text) if decoder else text


def rows_affected(command_tag: str) -> int:
    """Row count from a CommandComplete tag ("INSERT 0 3", "UPDATE 2", "SELECT 5"); 0 for DDL."""
    last = command_tag.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


# Wire format ---------------------------------------------------------------------------------------------


def _cstring(text: str) -> bytes:
    data = text.encode("utf-8")
    if b"\x00" in data:
        raise Error("query text and names cannot contain NUL characters")
    return data + b"\x00"


def _message(kind: bytes, payload: bytes = b"") -> bytes:
    return kind + struct.pack("!I", len(payload) + 4) + payload


def _error_fields(payload: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in payload.split(b"\x00"):
        if item:
            fields[chr(item[0])] = item[1:].decode("utf-8", errors="replace")
    return fields


def _error_from(payload: bytes, error_type: type[Error] = Error) -> Error:
    fields = _error_fields(payload)
    return error_type(fields.get("M", "unknown server error"), fields.get("C", ""), fields)


class Connection:
    """An open, authenticated session. Not thread-safe: the caller serializes use."""

    def __init__(self, sock: socket.socket, info: ConnInfo) -> None:
        self._sock: socket.socket | None = sock
        self._buffer = bytearray()
        self.info = info
        self.parameters: dict[str, str] = {}
        self.backend_pid = 0
        # 'I' idle, 'T' in a transaction, 'E' in a failed transaction (from ReadyForQuery).
        self.transaction_status = "I"

    @property
    def server_version_num(self) -> int:
        return parse_server_version(self.parameters.get("server_version", ""))

    @property
    def closed(self) -> bool:
        return self._sock is None

    # Startup and authentication

    def _startup(self) -> None:
        params = {"user": self.info.user, "database": self.info.database, "client_encoding": "UTF8"}
        if self.info.application_name:
            params["application_name"] = self.info.application_name
        body = struct.pack("!I", PROTOCOL_VERSION)
        body += b"".join(_cstring(k) + _cstring(v) for k, v in params.items()) + b"\x00"
        self._send(struct.pack("!I", len(body) + 4) + body)
        scram: ScramClient | None = None
        while True:
            kind, payload = self._receive()
            if kind == b"R":
                scram = self._authenticate(payload, scram)
            elif kind == b"E":
                raise _error_from(payload, ConnectError)
            elif kind == b"S":
                self._parameter_status(payload)
            elif kind == b"K":
                self.backend_pid = struct.unpack("!I", payload[:4])[0]
            elif kind == b"Z":
                self.transaction_status = chr(payload[0])
                return
            # NoticeResponse and anything else during startup carries nothing we need.

    def _authenticate(self, payload: bytes, scram: ScramClient | None) -> ScramClient | None:
        (code,) = struct.unpack("!I", payload[:4])
        data = payload[4:]
        if code == AUTH_OK:
            return scram
        if code in (AUTH_CLEARTEXT, AUTH_MD5, AUTH_SASL) and not self.info.password:
            raise ConnectError(f'server asks for a password for user "{self.info.user}" but none was given')
        if code == AUTH_CLEARTEXT:
            self._send(_message(b"p", _cstring(self.info.password)))
            return scram
        if code == AUTH_MD5:
            self._send(_message(b"p", md5_password(self.info.user, self.info.password, data[:4]) + b"\x00"))
            return scram
        if code == AUTH_SASL:
            mechanisms = [m.decode("ascii", "replace") for m in data.split(b"\x00") if m]
            if SCRAM_MECHANISM not in mechanisms:
                raise ConnectError(f"server offers no supported SASL mechanism: {', '.join(mechanisms)}")
            scram = ScramClient(self.info.password)
            first = scram.client_first()
            body = _cstring(SCRAM_MECHANISM) + struct.pack("!I", len(first)) + first
            self._send(_message(b"p", body))
            return scram
        if code == AUTH_SASL_CONTINUE and scram is not None:
            self._send(_message(b"p", scram.client_final(data)))
            return scram
        if code == AUTH_SASL_FINAL and scram is not None:
            scram.verify_server_final(data)
            return scram
        raise ConnectError(f"server asks for an unsupported authentication method (code {code})")

    # Queries

    def query(self, sql: str, params: Sequence[object] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement and return its rows (empty for statements that return none).

        With params, the statement goes through the extended protocol with $1, $2, ... bound in text
        format. Without, it goes as a simple Query, so a script of several ';'-separated statements
        works too (they run as one implicit transaction); the rows are the last result set's.
        """
        return self._run(sql, params)[0]

    def execute(self, sql: str, params: Sequence[object] | None = None) -> int:
        """Run a statement and return the number of rows it affected (0 for DDL)."""
        return self._run(sql, params)[1]

    def _run(self, sql: str, params: Sequence[object] | None) -> tuple[list[tuple[Any, ...]], int]:
        if self._sock is None:
            raise ConnectError("connection is closed")
        if params is None:
            self._send(_message(b"Q", _cstring(sql)))
        else:
            self._send(self._extended_query(sql, params))
        return self._collect_results()

    @staticmethod
    def _extended_query(sql: str, params: Sequence[object]) -> bytes:
        encoded = [encode_param(value) for value in params]
        type_oids = [type_oid for type_oid, _ in encoded]
        parse = _cstring("") + _cstring(sql) + struct.pack(f"!H{len(type_oids)}I", len(type_oids), *type_oids)
        bind = bytearray(_cstring("") + _cstring(""))
        # No parameter format codes: all text. Then each value, length -1 meaning NULL.
        bind += struct.pack("!HH", 0, len(encoded))
        for _, value in encoded:
            if value is None:
                bind += struct.pack("!i", -1)
            else:
                bind += struct.pack("!i", len(value)) + value
        # No result format codes: all columns in text format.
        bind += struct.pack("!H", 0)
        return b"".join(
            (
                _message(b"P", parse),
                _message(b"B", bytes(bind)),
                _message(b"D", b"P" + _cstring("")),
                _message(b"E", _cstring("") + struct.pack("!I", 0)),
                _message(b"S"),
            )
        )

    def _collect_results(self) -> tuple[list[tuple[Any, ...]], int]:
        """Read until ReadyForQuery, so the connection is usable again even after an error."""
        rows: list[tuple[Any, ...]] = []
        column_types: list[int] = []
        affected = 0
        error: Error | None = None
        while True:
            kind, payload = self._receive()
            if kind == b"T":
                column_types = self._row_description(payload)
                rows = []
            elif kind == b"D":
                rows.append(self._data_row(payload, column_types))
            elif kind == b"C":
                affected = rows_affected(payload.rstrip(b"\x00").decode("ascii", "replace"))
            elif kind == b"E":
                error = error or _error_from(payload)
            elif kind == b"S":
                self._parameter_status(payload)
            elif kind == b"G":
                # COPY ... FROM STDIN: the server would wait for data forever; refuse it cleanly.
                self._send(_message(b"f", _cstring("COPY FROM STDIN is not supported by this client")))
            elif kind == b"Z":
                self.transaction_status = chr(payload[0])
                if error is not None:
                    raise error
                return rows, affected
            # ParseComplete, BindComplete, NoData, EmptyQueryResponse, COPY OUT data, notices and
            # notifications carry nothing the caller asked for.

    @staticmethod
    def _row_description(payload: bytes) -> list[int]:
        (count,) = struct.unpack("!H", payload[:2])
        types, offset = [], 2
        for _ in range(count):
            offset = payload.index(b"\x00", offset) + 1
            # table OID (I), column number (h), type OID (I), type size (h), modifier (i), format (h)
            types.append(struct.unpack("!IhIhih", payload[offset : offset + 18])[2])
            offset += 18
        return types

    @staticmethod
    def _data_row(payload: bytes, column_types: list[int]) -> tuple[Any, ...]:
        (count,) = struct.unpack("!H", payload[:2])
        values, offset = [], 2
        for index in range(count):
            (length,) = struct.unpack("!i", payload[offset : offset + 4])
            offset += 4
            raw = None if length < 0 else payload[offset : offset + length]
            offset += max(length, 0)
            values.append(decode_value(column_types[index] if index < len(column_types) else 0, raw))
        return tuple(values)

    def _parameter_status(self, payload: bytes) -> None:
        # name NUL value NUL; the value may be empty (application_name).
        name, _, value = payload[:-1].partition(b"\x00")
        self.parameters[name.decode("utf-8")] = value.decode("utf-8", "replace")

    # Transport

    def _send(self, data: bytes) -> None:
        if self._sock is None:
            raise ConnectError("connection is closed")
        try:
            self._sock.sendall(data)
        except OSError as exc:
            self._abort()
            raise ConnectError(f"connection to {self.info.describe()} lost: {exc}") from None

    def _receive(self) -> tuple[bytes, bytes]:
        """The next backend message as (type byte, payload)."""
        self._fill(5)
        kind = bytes(self._buffer[:1])
        (length,) = struct.unpack("!I", self._buffer[1:5])
        self._fill(1 + length)
        payload = bytes(self._buffer[5 : 1 + length])
        del self._buffer[: 1 + length]
        return kind, payload

    def _fill(self, size: int) -> None:
        while len(self._buffer) < size:
            if self._sock is None:
                raise ConnectError("connection is closed")
            try:
                chunk = self._sock.recv(max(65536, size - len(self._buffer)))
            except OSError as exc:
                self._abort()
                raise ConnectError(f"connection to {self.info.describe()} lost: {exc}") from None
            if not chunk:
                self._abort()
                raise ConnectError(f"server at {self.info.describe()} closed the connection")
            self._buffer += chunk

    def _abort(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def close(self) -> None:
        """Say goodbye (Terminate) and close the socket; safe to call twice."""
        if self._sock is None:
            return
        with contextlib.suppress(OSError):
            self._sock.sendall(_message(b"X"))
        self._abort()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# Opening a connection ------------------------------------------------------------------------------------


def _open_socket(info: ConnInfo, timeout: float | None) -> socket.socket:
    try:
        if info.is_unix_socket:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(info.socket_path)
            except BaseException:
                sock.close()
                raise
            return sock
        sock = socket.create_connection((info.host, info.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    except OSError as exc:
        raise ConnectError(f"cannot connect to {info.describe()}: {exc}") from None


def _tls_context(info: ConnInfo) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=info.sslrootcert or None)
    if info.sslmode == "require" and not info.sslrootcert:
        # libpq's "require": encrypt, but trust any certificate.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif info.sslmode in ("require", "verify-ca"):
        # With a root certificate, libpq's "require" behaves like "verify-ca": chain yes, name no.
        context.check_hostname = False
    return context


def _start_tls(sock: socket.socket, info: ConnInfo) -> socket.socket:
    try:
        sock.sendall(struct.pack("!II", 8, SSL_REQUEST_CODE))
        answer = sock.recv(1)
    except OSError as exc:
        sock.close()
        raise ConnectError(f"TLS negotiation with {info.describe()} failed: {exc}") from None
    if answer != b"S":
        sock.close()
        raise ConnectError(f"server at {info.describe()} does not support TLS (sslmode={info.sslmode})")
    try:
        return _tls_context(info).wrap_socket(sock, server_hostname=info.host)
    except (OSError, ssl.SSLError) as exc:
        sock.close()
        raise ConnectError(f"TLS handshake with {info.describe()} failed: {exc}") from None


def connect(dsn: str, timeout: float = 10.0) -> Connection:
    """Open and authenticate a session from a postgres:// URL.

    The URL's connect_timeout, when present, bounds connecting and logging in; ``timeout`` bounds every
    later network wait. A query that outlives it breaks the connection (ConnectError); reconnect then.
    """
    info = parse_dsn(dsn)
    connect_timeout = info.connect_timeout if info.connect_timeout is not None else timeout
    sock = _open_socket(info, connect_timeout)
    # libpq never uses TLS on unix sockets; neither do we.
    if info.sslmode not in PLAIN_SSLMODES and not info.is_unix_socket:
        sock = _start_tls(sock, info)
    conn = Connection(sock, info)
    try:
        conn._startup()
    except Error:
        conn._abort()
        raise
    except (OSError, ValueError, struct.error) as exc:
        conn._abort()
        # A malformed or cut-off server reply; these messages never include the password.
        raise ConnectError(f"login to {info.describe()} failed: {type(exc).__name__}: {exc}") from None
    sock.settimeout(timeout)
    return conn
