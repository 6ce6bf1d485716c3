"""A migrated PostgreSQL database a test has finished with is handed to the next test as new
(tests/support/postgres.py ``recycle``): nothing of the first test can be seen or reach it."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text

from discharge_bridge.connections.service import add_source
from discharge_bridge.db import make_engine, session_scope
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.postgres


def _databases(server: PostgresServer) -> set[str]:
    with psycopg.connect(server.dsn("postgres")) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 't\\_%'")}


def _add(server: PostgresServer, name: str, source: str) -> int:
    engine = make_engine(server.url(name))
    try:
        with session_scope(engine) as session:
            row = add_source(session, name=source, hospital="H", base_url="http://ehr.test/fhir")
            assert row.id is not None
            return row.id
    finally:
        engine.dispose()


def test_a_used_database_comes_back_empty_with_its_sequences_restarted(postgres_server: PostgresServer) -> None:
    before = len(postgres_server.created)
    first = postgres_server.create_database(migrated=True)
    pooled = list(postgres_server.recycled)  # what earlier tests of this worker left in the pool
    assert _add(postgres_server, first, "one") == 1
    assert _add(postgres_server, first, "two") == 2
    with psycopg.connect(postgres_server.dsn(first)) as conn:  # a number handed out, its row rolled back
        conn.execute("SELECT nextval('case_event_id_seq')")
        conn.rollback()
    left_behind = psycopg.connect(postgres_server.dsn(first))  # as a pooled engine or a killed child's session
    left_behind.execute("SELECT count(*) FROM source")  # ... inside a transaction, holding a lock

    postgres_server.drop_created(since=before)
    [recycled] = [name for name in postgres_server.recycled if name not in pooled]
    assert first not in _databases(postgres_server) and recycled in _databases(postgres_server)
    with pytest.raises(psycopg.OperationalError):
        left_behind.execute("SELECT 1")  # its session was ended; and the old name is gone for good
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(postgres_server.dsn(first))

    second = postgres_server.create_database(migrated=True)
    assert second == recycled and postgres_server.recycled == pooled
    engine = make_engine(postgres_server.url(second))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM source")).scalar() == 0
            assert conn.execute(text("SELECT nextval('case_event_id_seq')")).scalar() == 1
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
    assert _add(postgres_server, second, "three") == 1


def test_a_database_whose_schema_a_test_changed_is_dropped(postgres_server: PostgresServer) -> None:
    before = len(postgres_server.created)
    name = postgres_server.create_database(migrated=True)
    with psycopg.connect(postgres_server.dsn(name), autocommit=True) as conn:
        conn.execute("CREATE INDEX source_by_hospital ON source (hospital)")
    pooled, databases = list(postgres_server.recycled), _databases(postgres_server)

    postgres_server.drop_created(since=before)

    assert postgres_server.recycled == pooled
    assert _databases(postgres_server) == databases - {name}


def test_an_empty_database_is_dropped_not_recycled(postgres_server: PostgresServer) -> None:
    before = len(postgres_server.created)
    pooled = list(postgres_server.recycled)
    name = postgres_server.create_database()
    databases = _databases(postgres_server)

    postgres_server.drop_created(since=before)

    assert postgres_server.recycled == pooled
    assert _databases(postgres_server) == databases - {name}
