"""What the assessment stage does around its batches: no cyclic collection while a batch is in hand,
and fresh planner statistics for tables a first sync fills faster than PostgreSQL's autovacuum
analyses them, and that SQLite otherwise never analyses (bench/scale.py)."""

from __future__ import annotations

import gc
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from discharge_bridge.assessment import drain, stage
from discharge_bridge.cases import batch
from discharge_bridge.cases.models import Case
from discharge_bridge.cases.stays import open_cases_of
from discharge_bridge.config import PROJECT_ROOT, Settings
from discharge_bridge.connections.service import add_source
from discharge_bridge.db import session_scope
from discharge_bridge.ingest.normalise import normalise
from discharge_bridge.ingest.store import upsert_snapshots
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.sources.models import Source
from tests.support.fakefhir import BASE, encounter, patient


@pytest.fixture
def city(engine: Engine, settings: Settings, tmp_path: Path) -> tuple[int, Settings]:
    """A source with stored admissions of ``PATIENTS`` old people living alone, all queued."""
    mappings = tmp_path / "mappings"
    shutil.copytree(PROJECT_ROOT / "mappings", mappings)
    with session_scope(engine) as session:
        source = add_source(session, name="city", hospital="City Hospital", base_url=BASE)
        assert source.id is not None
        rows = []
        for i in range(PATIENTS):
            rows += [patient(f"p{i}", birthDate="1931-02-03"), encounter(f"e{i}", f"p{i}")]
        upsert_snapshots(session, source.id, [normalise(r) for r in rows])
        source_id = source.id
    return source_id, settings.model_copy(update={"mappings_dir": mappings})


PATIENTS = 6


@pytest.fixture
def collecting() -> Iterator[None]:
    """Automatic collection on, as in a fresh process, whatever the test run set before."""
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record whether automatic collection was on while each batch was assessed."""
    seen: list[bool] = []
    real = stage.follow_patients

    def follow(session: Any, source: Source, settings: Settings, ids: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return real(session, source, settings, ids, **kwargs)

    monkeypatch.setattr(stage, "follow_patients", follow)
    return seen


def test_no_automatic_collection_while_a_batch_is_assessed(
    engine: Engine, city: tuple[int, Settings], monkeypatch: pytest.MonkeyPatch, collecting: None
) -> None:
    _, settings = city
    seen = _spy(monkeypatch)
    stats = drain(engine, settings, batch_size=2)
    assert (stats.batches, stats.patients, stats.error) == (3, PATIENTS, None)
    assert seen == [False, False, False]
    assert gc.isenabled()  # on again once the drain is done


def test_collection_is_back_on_after_a_batch_that_failed(
    engine: Engine, city: tuple[int, Settings], monkeypatch: pytest.MonkeyPatch, collecting: None
) -> None:
    _, settings = city
    real = stage.follow_patients
    seen: list[tuple[int, bool]] = []

    def fails(session: Any, source: Source, settings: Settings, ids: Any, **kwargs: Any) -> Any:
        seen.append((len(ids), gc.isenabled()))
        if len(ids) > 1:  # the batch fails; each patient alone (outside the batch) succeeds
            raise ZeroDivisionError("a scoring bug")
        return real(session, source, settings, ids, **kwargs)

    monkeypatch.setattr(stage, "follow_patients", fails)
    stats = drain(engine, settings, batch_size=PATIENTS)
    assert (stats.patients, stats.failed) == (PATIENTS, 0)
    assert seen == [(PATIENTS, False)] + [(1, True)] * PATIENTS  # retried one by one with collection on
    assert gc.isenabled()


def test_a_caller_that_turned_collection_off_keeps_it_off(
    engine: Engine, city: tuple[int, Settings], monkeypatch: pytest.MonkeyPatch, collecting: None
) -> None:
    _, settings = city
    seen = _spy(monkeypatch)
    gc.disable()
    try:
        drain(engine, settings, batch_size=PATIENTS)
        assert seen == [False] and not gc.isenabled()
    finally:
        gc.enable()


def _planner_rows(engine: Engine, table: str) -> float:
    """The rows the planner believes ``table`` holds: -1 (or 0) before any ANALYZE."""
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            query = text("SELECT reltuples FROM pg_class WHERE relname = :t")
            return float(connection.execute(query, {"t": table}).scalar_one())
        if connection.execute(text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")).scalar_one():
            stats = connection.execute(text("SELECT stat FROM sqlite_stat1 WHERE tbl = :t"), {"t": table}).scalars()
            return max((float(stat.split()[0]) for stat in stats), default=-1)
        return -1


def test_statistics_are_refreshed_for_tables_that_outgrew_them(
    engine: Engine, city: tuple[int, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tables holding over twice the rows their statistics say are analysed, on either database;
    analysed once, they are left alone until they double again."""
    monkeypatch.setattr(stage, "STATISTICS_FLOOR", 4)
    assert _planner_rows(engine, "patient_snapshot") <= 0  # never analysed: -1 (0 once vacuumed empty)
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:  # the pool's one connection wrote the rows: count them now
            connection.execute(text("SELECT pg_stat_force_next_flush()"))
            connection.commit()
    analysed = stage.refresh_statistics(engine)
    assert {"patient_snapshot", "encounter_snapshot"} <= set(analysed)
    assert "risk_assessment" not in analysed  # empty: below the floor
    assert _planner_rows(engine, "patient_snapshot") == PATIENTS
    assert stage.refresh_statistics(engine) == []  # up to date: nothing analysed again


def _plan(engine: Engine, query: Any) -> str:
    with engine.connect() as connection:
        compiled = query.compile(connection, compile_kwargs={"literal_binds": True})
        return " ".join(row[3] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))


def test_with_statistics_sqlite_finds_a_batch_by_its_keys(engine: Engine, city: tuple[int, Settings]) -> None:
    """Without statistics SQLite looked a batch's flagged admissions up through the worklist's index
    (rules version, flagged, current): a scan of every flagged admission of the city per batch, so
    a 1M-resource backfill's drain slowed from 0.6 to 1.1 s per 1,000 patients. Analysed, the lookup
    goes by (source, admission); a batch's open cases are found by (source, patient) (0020), not
    among every open case of the hospital."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's planner, without statistics")
    source_id, _ = city
    at = datetime(2026, 12, 1, tzinfo=UTC)
    same = {"source_id": source_id, "priority": "high", "priority_rank": 3}
    risks, cases = [], []
    for i in range(10 * stage.STATISTICS_FLOOR):
        ids = {"encounter_fhir_id": f"e{i}", "patient_fhir_id": f"p{i}"}
        risks.append(
            same
            | ids
            | {"rules_version": "v1", "score": i % 7, "flagged": True, "current": True, "reasons": [], "facts": []}
            | {"inputs_digest": "x", "assessed_at": at}
        )
        cases.append(
            same | ids | {"status": "open", "opened_at": at, "opened_by": "system", "updated_at": at, "version": 1}
        )
    with engine.begin() as connection:
        connection.execute(RiskAssessment.__table__.insert(), risks)  # type: ignore[attr-defined]
        connection.execute(Case.__table__.insert(), cases)  # type: ignore[attr-defined]
    flagged = batch._flagged_without_case_query(source_id, "v1", ["e1", "e2", "e3"])
    by_key = (
        "SEARCH risk_assessment USING INDEX sqlite_autoindex_risk_assessment_1 (source_id=? AND encounter_fhir_id=?"
    )
    assert by_key not in _plan(engine, flagged)  # the worklist's index, as it was
    assert {"risk_assessment", "coordination_case"} <= set(stage.refresh_statistics(engine))
    assert by_key in _plan(engine, flagged)
    by_patient = "USING INDEX ix_coordination_case_patient (source_id=? AND patient_fhir_id=?)"
    assert by_patient in _plan(engine, open_cases_of(source_id, ["p1", "p2", "p3"]))
    # A batch's cases by admission, not every open case of the hospital: with statistics from a
    # 1,000-row sample SQLite took (source, status) for a batch of 500 among 91,000 open cases, 48 ms a
    # batch on a 1M backfill (here 500 among 10,000).
    priorities = batch._priorities_query(source_id, "v1", [f"e{i}" for i in range(0, 10_000, 20)])
    case_by_key = (
        "coordination_case USING INDEX sqlite_autoindex_coordination_case_1 (source_id=? AND encounter_fhir_id=?)"
    )
    assert case_by_key in _plan(engine, priorities)


def test_statistics_are_looked_at_after_each_batch(
    engine: Engine, city: tuple[int, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, settings = city
    calls: list[Engine] = []
    monkeypatch.setattr(stage, "refresh_statistics", calls.append)
    stats = drain(engine, settings, batch_size=2)
    assert stats.batches == 3 and calls == [engine] * 3
