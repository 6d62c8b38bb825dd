"""Shared pytest fixtures: a real PostgreSQL server and fresh Mattermost databases on it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.pgserver import PostgresServer


@dataclass(frozen=True)
class MattermostDatabase:
    """A database and its owning login role, as Mattermost's install guide sets them up."""

    name: str
    user: str
    # Kept out of repr so pytest's failure reports do not print credentials.
    password: str = field(repr=False)
    dsn: str = field(repr=False)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the whole test session (127.0.0.1 on a free port, TLS enabled)."""
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mm_database(postgres: PostgresServer) -> Iterator[MattermostDatabase]:
    """A fresh, empty database owned by a fresh user; both are dropped after the test."""
    suffix = secrets.token_hex(4)
    name, user, password = f"mattermost_{suffix}", f"mmuser_{suffix}", secrets.token_urlsafe(18)
    database = MattermostDatabase(name, user, password, postgres.dsn(user, password, name))
    postgres.create_user(database.user, database.password)
    try:
        postgres.create_database(database.name, database.user)
        yield database
    finally:
        postgres.drop_database(database.name)
        postgres.drop_user(database.user)
