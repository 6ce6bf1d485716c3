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
from typing import Any

import pytest
import time_machine
from sqlalchemy.engine import Engine

from discharge_bridge.assessment import drain
from discharge_bridge.assessment.pool import close_pools, scoring_pool
from discharge_bridge.config import Settings
from discharge_bridge.connections.service import add_source
from discharge_bridge.db import session_scope
from discharge_bridge.ingest.normalise import UnusableResource, normalise
from discharge_bridge.ingest.store import upsert_snapshots
from tests.assessment.test_bulk_equivalence import _dump
from tests.support.fakefhir import BASE
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


@pytest.fixture
def two_hospitals(two_engines: tuple[Engine, Engine, Settings]) -> Iterator[tuple[list[Engine], Settings, int]]:
    """The same synthetic hospital stored and queued in two fresh databases; settings on the first."""
    shared, alone, settings = two_engines
    rows = _hospital()
    source_ids = set()
    for engine in (shared, alone):
        with session_scope(engine) as session:
            source = add_source(session, name="city", hospital="City Hospital", base_url=BASE)
            assert source.id is not None
            source_ids.add(source.id)
            upsert_snapshots(session, source.id, rows)
    assert len(source_ids) == 1
    yield [shared, alone], settings, source_ids.pop()
    close_pools()


def _same_rows(shared: Engine, alone: Engine, source_id: int) -> None:
    got, want = _dump(shared, source_id), _dump(alone, source_id)
    for table in ("cases", "tasks", "risks", "events"):
        assert got[table] == want[table], table


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _with_processes(settings: Settings, engine: Engine, n: int) -> Settings:
    return settings.model_copy(update={"scoring_processes": n, "database_url": _url(engine)})


@pytest.mark.clock
def test_a_drain_with_a_scoring_process_writes_the_rows_of_one_without(
    two_hospitals: tuple[list[Engine], Settings, int],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
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

    monkeypatch.setattr(type(pool), "__call__", counting)
    with time_machine.travel(NOW, tick=False), caplog.at_level(logging.WARNING):
        with_pool = drain(shared, pooled)
        without = drain(alone, settings.model_copy(update={"database_url": _url(alone)}))
    assert handed and sum(handed) >= 150  # the process scored about half of the ~330 patients
    assert with_pool.patients == without.patients > 300
    assert (with_pool.assessed, with_pool.flagged, with_pool.cases_opened) == (
        without.assessed,
        without.flagged,
        without.cases_opened,
    )
    assert without.cases_opened > 50
    _same_rows(shared, alone, source_id)
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
    _same_rows(shared, alone, source_id)
    second = pool.pids()  # the next batches have processes again
    assert second and not set(second) & set(first)
