"""The assessment queue and the stage that drains it: written with the rows, drained in batches,
idempotent, never losing a change made while a drain runs, one bad patient never holding back
the rest, a broken rule file stopping (and saying so) without losing the queue; visible to IT."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from discharge_bridge.assessment import drain, stage
from discharge_bridge.cli import app
from discharge_bridge.config import PROJECT_ROOT, Settings
from discharge_bridge.connections.service import add_source
from discharge_bridge.db import session_scope
from discharge_bridge.ingest.changes import enqueue_patients, queue_depths
from discharge_bridge.ingest.deadletters import replay
from discharge_bridge.ingest.models import AssessmentQueueEntry, DeadLetter, PatientSnapshot
from discharge_bridge.ingest.normalise import normalise
from discharge_bridge.ingest.store import record_dead_letter, upsert_snapshots
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.sources.models import Source, SourceMode
from tests.support.factories import api_client
from tests.support.fakefhir import BASE, encounter, patient


@pytest.fixture
def city(engine: Engine, settings: Settings, tmp_path: Path) -> tuple[int, Settings]:
    """A source with three stored admissions (two of them old people living alone: flagged)."""
    mappings = tmp_path / "mappings"
    shutil.copytree(PROJECT_ROOT / "mappings", mappings)
    with session_scope(engine) as session:
        source = add_source(session, name="city", hospital="City Hospital", base_url=BASE)
        assert source.id is not None
        rows = [
            patient("p1", birthDate="1931-02-03", meta={"versionId": "1", "lastUpdated": "2026-03-01T10:00:00Z"}),
            encounter("e1", "p1"),
            patient("p2", birthDate="1934-05-06"),
            encounter("e2", "p2"),
            patient("p3", birthDate="1990-01-01", contact=[{"relationship": [{"coding": [{"code": "N"}]}]}]),
            encounter("e3", "p3"),
        ]
        upsert_snapshots(session, source.id, [normalise(r) for r in rows])
        source_id = source.id
    return source_id, settings.model_copy(update={"mappings_dir": mappings})


def _queue(engine: Engine) -> dict[str, tuple[int, int]]:
    with Session(engine) as session:
        return {q.patient_fhir_id: (q.generation, q.attempts) for q in session.exec(select(AssessmentQueueEntry))}


def _assessed(engine: Engine) -> set[str]:
    with Session(engine) as session:
        return set(session.exec(select(RiskAssessment.encounter_fhir_id)))


def test_stored_rows_queue_their_patients_in_the_same_transaction(engine: Engine, city: tuple[int, Settings]) -> None:
    assert _queue(engine) == {"p1": (1, 0), "p2": (1, 0), "p3": (1, 0)}
    source_id, _ = city
    with session_scope(engine) as session:  # the same version again: nothing changed, nothing queued again
        stored = session.exec(select(PatientSnapshot.raw).where(PatientSnapshot.fhir_id == "p1")).one()
        upsert_snapshots(session, source_id, [normalise(dict(stored))])
    assert _queue(engine)["p1"] == (1, 0)
    with session_scope(engine) as session:  # a rolled-back page queues nothing either
        upsert_snapshots(session, source_id, [normalise(encounter("e9", "p9"))])
        session.rollback()
    assert "p9" not in _queue(engine)


def test_a_drain_assesses_in_batches_and_empties_the_queue(engine: Engine, city: tuple[int, Settings]) -> None:
    _, settings = city
    stats = drain(engine, settings, batch_size=2)
    assert (stats.batches, stats.patients, stats.cases_opened, stats.error) == (2, 3, 2, None)
    assert _queue(engine) == {} and _assessed(engine) == {"e1", "e2", "e3"}
    again = drain(engine, settings)
    assert (again.batches, again.patients) == (0, 0)


def test_an_entry_queued_again_after_it_was_claimed_is_not_deleted(engine: Engine, city: tuple[int, Settings]) -> None:
    """A drain deletes what it claimed at the generation it read: a newer change waits for the next one."""
    source_id, _ = city
    with session_scope(engine) as session:
        claimed = stage._claim(session, source_id, 10)
        enqueue_patients(session, source_id, ["p1"])  # a page stored after the claim raised p1 to 2
        stage._done(session, claimed)
    assert _queue(engine) == {"p1": (2, 0)}


def test_one_patient_that_fails_does_not_hold_back_the_rest(
    engine: Engine, city: tuple[int, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, settings = city
    real = stage.follow_patients

    def fails_for_p2(session: Any, source: Source, settings: Settings, ids: Any, **kwargs: Any) -> Any:
        if "p2" in ids:
            raise ZeroDivisionError("a scoring bug")
        return real(session, source, settings, ids, **kwargs)

    monkeypatch.setattr(stage, "follow_patients", fails_for_p2)
    stats = drain(engine, settings)
    assert (stats.patients, stats.failed) == (2, 1)
    assert _assessed(engine) == {"e1", "e3"}
    with Session(engine) as session:
        (left,) = session.exec(select(AssessmentQueueEntry)).all()
    assert (left.patient_fhir_id, left.attempts) == ("p2", 1) and "ZeroDivisionError" in (left.last_error or "")
    for _ in range(stage.MAX_ATTEMPTS):
        drain(engine, settings)
    assert _queue(engine) == {"p2": (1, stage.MAX_ATTEMPTS)}  # waits for a person, still counted
    monkeypatch.setattr(stage, "follow_patients", real)
    with session_scope(engine) as session:  # new data for p2 gives it a fresh start
        enqueue_patients(session, city[0], ["p2"])
    drain(engine, settings)
    assert _queue(engine) == {} and _assessed(engine) == {"e1", "e2", "e3"}


def test_a_broken_rule_file_stops_the_drain_and_keeps_the_queue(engine: Engine, city: tuple[int, Settings]) -> None:
    source_id, settings = city
    (settings.mappings_dir / "rules.yaml").write_text("rules: [this is not a rule set", encoding="utf-8")
    stats = drain(engine, settings)
    assert stats.error is not None and stats.error.startswith("data stored, but risk scoring stopped")
    assert set(_queue(engine)) == {"p1", "p2", "p3"} and _assessed(engine) == set()
    with Session(engine) as session:
        source = session.get(Source, source_id)
        assert source is not None and source.last_error == stats.error


def test_a_replayed_dead_letter_queues_its_patient(engine: Engine, city: tuple[int, Settings]) -> None:
    source_id, settings = city
    drain(engine, settings)
    with session_scope(engine) as session:
        record_dead_letter(session, source_id, encounter("e4", "p1"), "a reason since fixed on our side")
    with session_scope(engine) as session:
        letter = session.exec(select(DeadLetter)).one()
        source = session.get(Source, source_id)
        assert source is not None
        source.mode = SourceMode.file  # re-parse the stored payload rather than re-read it from the EHR
        assert replay(session, letter, source, None).resolved
    assert _queue(engine) == {"p1": (1, 0)}
    drain(engine, settings)
    assert "e4" in _assessed(engine)


def test_the_queue_depth_is_shown_to_hospital_it(
    engine: Engine, city: tuple[int, Settings], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source_id, settings = city
    with Session(engine) as session:
        assert queue_depths(session) == {source_id: 3}
    client = api_client(settings)
    assert client.get("/api/v1/sources/city").json()["assessment_queue"] == 3
    metrics = client.get("/metrics").text
    assert 'discharge_bridge_assessment_queue{source="city"} 3.0' in metrics
    if engine.dialect.name == "sqlite":  # the CLI reads the settings from the environment
        monkeypatch.setenv("DISCHARGE_BRIDGE_DATA_DIR", str(settings.data_dir))
        monkeypatch.delenv("DISCHARGE_BRIDGE_DATABASE_URL", raising=False)
        from discharge_bridge.config import get_settings

        get_settings.cache_clear()
        result = CliRunner().invoke(app, ["sources", "list", "--format", "json"])
        get_settings.cache_clear()
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)[0]["assessment_queue"] == 3
