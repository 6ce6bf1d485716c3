"""Snapshot upserts: idempotent by (source, type, id, version), whatever form the raw resource has."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from discharge_bridge.db import session_scope
from discharge_bridge.fhir.fields import zone
from discharge_bridge.ingest.models import ClinicalSnapshot, DeadLetter, EncounterSnapshot, PatientSnapshot
from discharge_bridge.ingest.normalise import normalise
from discharge_bridge.ingest.store import padded, record_dead_letter, record_dead_letters, upsert_snapshots
from tests.support.factories import make_source
from tests.support.fakefhir import condition, encounter, patient

MOSCOW = zone("Europe/Moscow")


def _versioned(resource: dict[str, Any], version: int, stamp: str = "2026-11-01T08:00:00Z") -> dict[str, Any]:
    return {**resource, "meta": {"versionId": str(version), "lastUpdated": stamp}}


def _source_id(engine: Engine) -> int:
    with session_scope(engine) as session:
        source = make_source(session)
        assert source.id is not None
        return source.id


def _upsert(engine: Engine, source_id: int, resources: list[dict[str, Any]], *, encode: bool) -> Any:
    with session_scope(engine) as session:
        return upsert_snapshots(session, source_id, [normalise(r, MOSCOW, encode=encode) for r in resources])


@pytest.mark.parametrize("encode", [False, True], ids=["dict", "text"])
def test_rows_are_idempotent_by_version_in_either_raw_form(engine: Engine, encode: bool) -> None:
    source_id = _source_id(engine)
    enc = encounter("e1", "p1", period={"start": "2026-11-01T09:30:00", "end": "2026-11-03T12:00:00+03:00"})
    first = [_versioned(patient("p1"), 1), _versioned(enc, 1), _versioned(condition("c1", "p1"), 1)]

    created = _upsert(engine, source_id, first, encode=encode)
    again = _upsert(engine, source_id, first, encode=encode)
    newer = _upsert(engine, source_id, [_versioned({**enc, "status": "finished"}, 2)], encode=encode)
    older = _upsert(engine, source_id, [_versioned({**enc, "status": "planned"}, 1)], encode=encode)

    assert (created.created, created.updated, created.unchanged) == (3, 0, 0)
    assert created.changed_keys == {("Patient", "p1"), ("Encounter", "e1"), ("Condition", "c1")}
    assert (again.created, again.updated, again.unchanged, again.changed_keys) == (0, 0, 3, set())
    assert (newer.updated, newer.changed_keys) == (1, {("Encounter", "e1")})
    assert (older.updated, older.unchanged) == (0, 1)
    with Session(engine) as session:
        stay = session.exec(select(EncounterSnapshot)).one()
        person = session.exec(select(PatientSnapshot)).one()
        fact = session.exec(select(ClinicalSnapshot)).one()
    assert (stay.status, stay.version_id) == ("finished", "2")
    assert stay.raw == _versioned({**enc, "status": "finished"}, 2)  # the raw JSON reads back the same
    # a zone-less start is read in the hospital's zone; datetimes come back aware, in UTC
    assert stay.period_start is not None and stay.period_start.isoformat() == "2026-11-01T06:30:00+00:00"
    assert stay.period_end is not None and stay.period_end.isoformat() == "2026-11-03T09:00:00+00:00"
    assert stay.last_updated is not None and stay.last_updated.isoformat() == "2026-11-01T08:00:00+00:00"
    assert (person.birth_date, fact.resource_type, fact.patient_fhir_id) == ("1940-03-02", "Condition", "p1")


def test_a_batch_larger_than_a_statement_chunk_is_stored_whole(engine: Engine) -> None:
    source_id = _source_id(engine)
    conditions = [_versioned(condition(f"c{i}", f"p{i % 7}"), 1) for i in range(1234)]

    stats = _upsert(engine, source_id, conditions, encode=True)
    repeat = _upsert(engine, source_id, [*conditions[:900], _versioned(condition("c5", "p5", "Z59.0"), 2)], encode=True)

    assert stats.created == 1234
    assert (repeat.unchanged, repeat.updated) == (899, 1)  # the batch's newest copy of c5 wins
    with Session(engine) as session:
        assert len(session.exec(select(ClinicalSnapshot.fhir_id)).all()) == 1234
        c5 = session.exec(select(ClinicalSnapshot).where(ClinicalSnapshot.fhir_id == "c5")).one()
    assert c5.raw["code"]["coding"][0]["code"] == "Z59.0"


def test_in_lists_are_padded_to_a_few_lengths() -> None:
    assert padded([]) == []
    assert padded(["a"]) == ["a"] * 16
    ids = [f"id{i}" for i in range(300)]
    assert len(padded(ids)) == 512 and padded(ids)[:300] == ids and set(padded(ids)) == set(ids)
    assert {len(padded(ids[:n])) for n in range(1, 501)} == {16, 32, 64, 128, 256, 512}


def test_dead_letters_in_one_statement_count_repeats_like_one_by_one(engine: Engine) -> None:
    source_id = _source_id(engine)
    bad = {"resourceType": "Encounter", "id": "bad1", "status": "in-progress"}
    other = {"resourceType": "Condition", "id": "c9"}
    with session_scope(engine) as session:
        record_dead_letters(session, source_id, [(bad, "no subject"), (other, "no subject"), (bad, "still no subject")])
    with session_scope(engine) as session:
        record_dead_letter(session, source_id, bad, "no subject, again")
        record_dead_letters(session, source_id, [])
    with Session(engine) as session:
        letters = {letter.fhir_id: letter for letter in session.exec(select(DeadLetter))}
    assert set(letters) == {"bad1", "c9"}
    assert (letters["bad1"].count, letters["bad1"].error, letters["bad1"].resource_type) == (
        3,
        "no subject, again",
        "Encounter",
    )
    assert letters["c9"].count == 1
