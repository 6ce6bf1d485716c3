"""Shared fixtures: settings on a temp folder, and a migrated database on SQLite or PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from discharge_bridge.clock import start_from_environment
from discharge_bridge.config import Settings
from discharge_bridge.db import make_engine
from tests.support.db import migrated_sqlite
from tests.support.postgres import PostgresServer, _pg_bin

pytest_plugins = ["tests.support.fixtures"]


def pytest_configure(config: pytest.Config) -> None:
    """CI's clock-shifted runs set DISCHARGE_BRIDGE_CLOCK_START: the whole run starts at that instant."""
    start_from_environment()


# Packages whose tests never read the date or the time of day (the HTTP client's retries and paging).
CLOCK_FREE = ("tests/fhir/",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything else is ``clock``: CI runs it again with the wall clock moved (.ci/run)."""
    root = Path(str(config.rootpath))
    for item in items:
        where = Path(str(item.path)).relative_to(root).as_posix()
        if not where.startswith(CLOCK_FREE):
            item.add_marker(pytest.mark.clock)


_POSTGRES: list[PostgresServer] = []  # the session's server, once started


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if _pg_bin() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries are missing on CI: .ci/run must apt-get install postgresql")
        pytest.skip("PostgreSQL binaries not installed (apt-get install postgresql)")
    server = PostgresServer()
    server.start()
    _POSTGRES.append(server)
    yield server
    _POSTGRES.remove(server)
    server.stop()


@pytest.fixture(autouse=True)
def _drop_test_databases() -> Iterator[None]:
    """Every PostgreSQL database a test created is dropped after it (after its other fixtures' teardown)."""
    before = {id(server): len(server.created) for server in _POSTGRES}
    yield
    for server in _POSTGRES:
        server.drop_created(since=before.get(id(server), 0))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings whose database is a fresh, migrated SQLite file or PostgreSQL database.

    Both are copies of a template migrated once per session with Alembic (tests/support/db.py).
    """
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.url(server.create_database(migrated=True))
        return Settings(data_dir=tmp_path / "data", database_url=url)
    return migrated_sqlite(tmp_path / "data")


@pytest.fixture
def settings(db_settings: Settings) -> Settings:
    return db_settings


@pytest.fixture
def engine(db_settings: Settings) -> Iterator[Engine]:
    engine = make_engine(db_settings.sqlalchemy_url)
    yield engine
    engine.dispose()
