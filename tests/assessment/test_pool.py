"""Scoring processes (assessment/pool.py): a drain that hands shares of each batch to other
processes writes exactly the rows of a drain that scores everything itself, and a scoring process
killed with SIGKILL costs no batch: its share is scored by the drain, and the next batch starts new
processes."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from sqlalchemy.engine import Engine

from discharge_bridge.assessment import drain
from discharge_bridge.assessment.pool import close_pools, scoring_pool
from discharge_bridge.config import Settings
from discharge_bridge.connections.service import add_source
from discharge_bridge.db import make_engine, session_scope
from discharge_bridge.ingest.normalise import UnusableResource, normalise
from discharge_bridge.ingest.store import upsert_snapshots
from tests.assessment.test_bulk_equivalence import _dump
from tests.support.db import migrated_sqlite
from tests.support.fakefhir import BASE
from tests.support.postgres import PostgresServer
from tests.support.synthetic import generate

NOW = datetime(2025, 1, 20, 9, 0, tzinfo=UTC)  # a fortnight into the synthetic hospital's admissions
RESOURCES = 2500  # about 330 patients: one batch of 500, cut in two shares of more than MIN_SHARE


def _hospital() -> list[Any]:
    rows = []
    for item in generate(RESOURCES).items:
        # The generator's one unusable Encounter in a thousand: a dead letter in a real sync.
        with contextlib.suppress(UnusableResource):
            rows.append(normalise(item.resource))
    return rows


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def two_hospitals(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[list[Engine], Settings, int]]:
    """The same synthetic hospital stored and queued in two fresh databases; settings on the first."""
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        urls = [server.url(server.create_database(migrated=True)) for _ in range(2)]
        settings = Settings(data_dir=tmp_path / "data", database_url=urls[0])
    else:
        settings = migrated_sqlite(tmp_path / "a")
        urls = [settings.sqlalchemy_url, migrated_sqlite(tmp_path / "b").sqlalchemy_url]
    engines = [make_engine(url) for url in urls]
    rows = _hospital()
    source_ids = set()
    for engine in engines:
        with session_scope(engine) as session:
            source = add_source(session, name="city", hospital="City Hospital", base_url=BASE)
            assert source.id is not None
            source_ids.add(source.id)
            upsert_snapshots(session, source.id, rows)
    assert len(source_ids) == 1
    yield engines, settings, source_ids.pop()
    close_pools()
    for engine in engines:
        engine.dispose()


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _with_processes(settings: Settings, engine: Engine, n: int) -> Settings:
    return settings.model_copy(update={"scoring_processes": n, "database_url": _url(engine)})


@pytest.mark.clock
def test_a_drain_with_a_scoring_process_writes_the_rows_of_one_without(
    two_hospitals: tuple[list[Engine], Settings, int], caplog: pytest.LogCaptureFixture
) -> None:
    (shared, alone), settings, source_id = two_hospitals
    pooled = _with_processes(settings, shared, 1)
    pool = scoring_pool(pooled)
    assert pool is not None and scoring_pool(settings) is None  # 0 processes (the default): no pool
    handed: list[int] = []
    call = type(pool).__call__

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        shares = call(self, *args, **kwargs)
        handed.extend(len(part) for part, _ in shares)
        return shares

    with time_machine.travel(NOW, tick=False), caplog.at_level(logging.WARNING):
        type(pool).__call__ = counting  # type: ignore[method-assign]
        try:
            with_pool = drain(shared, pooled)
        finally:
            type(pool).__call__ = call  # type: ignore[method-assign]
        without = drain(alone, settings.model_copy(update={"database_url": _url(alone)}))
    assert handed and sum(handed) >= 150  # the process scored about half of the ~330 patients
    assert with_pool.patients == without.patients > 300
    assert (with_pool.assessed, with_pool.flagged, with_pool.cases_opened) == (
        without.assessed,
        without.flagged,
        without.cases_opened,
    )
    assert without.cases_opened > 50
    got, want = _dump(shared, source_id), _dump(alone, source_id)
    for table in ("cases", "tasks", "risks", "events"):
        assert got[table] == want[table], table
    assert "scoring process failed" not in caplog.text


@pytest.mark.clock
def test_a_scoring_process_killed_costs_no_batch(
    two_hospitals: tuple[list[Engine], Settings, int], caplog: pytest.LogCaptureFixture
) -> None:
    (shared, alone), settings, source_id = two_hospitals
    pooled = _with_processes(settings, shared, 1)
    pool = scoring_pool(pooled)
    assert pool is not None
    first = pool.pids()
    for pid in first:
        os.kill(pid, signal.SIGKILL)
    with time_machine.travel(NOW, tick=False), caplog.at_level(logging.WARNING):
        stats = drain(shared, pooled)
        drain(alone, settings.model_copy(update={"database_url": _url(alone)}))
    assert stats.failed == 0 and stats.error is None and stats.patients > 300
    assert "scoring process" in caplog.text  # said, and the share scored here instead
    got, want = _dump(shared, source_id), _dump(alone, source_id)
    for table in ("cases", "tasks", "risks", "events"):
        assert got[table] == want[table], table
    second = pool.pids()  # the next batches have processes again
    assert second and not set(second) & set(first)
