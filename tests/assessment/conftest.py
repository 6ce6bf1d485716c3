"""Fixtures of the assessment stage's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from discharge_bridge.config import Settings
from discharge_bridge.db import make_engine
from tests.support.db import migrated_sqlite
from tests.support.postgres import PostgresServer


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def two_engines(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Engine, Engine, Settings]]:
    """Two fresh, migrated databases of one kind: one drained in bulk, one per row."""
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        urls = [server.url(server.create_database(migrated=True)) for _ in range(2)]
        settings = Settings(data_dir=tmp_path / "data", database_url=urls[0])
    else:
        settings = migrated_sqlite(tmp_path / "a")
        urls = [settings.sqlalchemy_url, migrated_sqlite(tmp_path / "b").sqlalchemy_url]
    bulk, per_row = make_engine(urls[0]), make_engine(urls[1])
    yield bulk, per_row, settings
    bulk.dispose()
    per_row.dispose()
