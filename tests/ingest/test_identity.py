"""Who the patient is, stored at ingest from Patient and updated when the Patient changes."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import select

from discharge_bridge.db import session_scope
from discharge_bridge.ingest.models import PatientSnapshot
from discharge_bridge.ingest.normalise import normalise
from discharge_bridge.ingest.store import upsert_snapshots
from tests.support.factories import make_source
from tests.support.fakefhir import patient

PERSON = {
    "name": [{"use": "official", "family": "Семёнова", "given": ["Анна", "Ивановна"]}],
    "identifier": [{"system": "http://h.example/mrn", "value": "MRN-77"}],
    "telecom": [{"system": "phone", "use": "mobile", "value": "+7 916 000-00-00"}],
    "address": [{"line": ["Lenina 5"], "city": "Moscow"}],
}


def test_normalise_picks_the_identity_columns() -> None:
    columns = normalise(patient("p1", **PERSON)).columns
    assert columns["name"] == "Семёнова Анна Ивановна"
    assert columns["identifiers"] == [{"system": "http://h.example/mrn", "value": "MRN-77", "type": ""}]
    assert columns["phone"] == "+7 916 000-00-00"
    assert columns["address"] == "Lenina 5, Moscow"
    assert columns["search_text"] == "семенова анна ивановна mrn-77"


def test_a_patient_without_identity_stores_nothing_and_is_not_a_problem() -> None:
    row = normalise(patient("p1"))
    assert (row.columns["name"], row.columns["phone"], row.columns["identifiers"]) == (None, None, [])
    assert row.problems == ()


def test_an_overlong_name_is_cut_and_counted_not_dead_lettered() -> None:
    row = normalise(patient("p1", name=[{"text": "x" * 500}], identifier="not a list"))
    assert row.columns["name"] == "x" * 200
    assert ("Patient.name", "longer than its column, cut") in row.problems
    assert ("Patient.identifier", "not a list") in row.problems


def test_identity_is_stored_and_updated_on_a_new_version(engine: Engine) -> None:
    with session_scope(engine) as session:
        source_id = make_source(session).id or 0
        first = patient("p1", meta={"versionId": "1"}, **PERSON)
        upsert_snapshots(session, source_id, [normalise(first)])
    with session_scope(engine) as session:
        moved = {**first, "meta": {"versionId": "2"}, "telecom": [{"system": "phone", "value": "+7 495 1"}]}
        upsert_snapshots(session, source_id, [normalise(moved)])
    with session_scope(engine) as session:
        stored = session.exec(select(PatientSnapshot).where(PatientSnapshot.fhir_id == "p1")).one()
    assert (stored.name, stored.phone) == ("Семёнова Анна Ивановна", "+7 495 1")
    assert stored.identifiers == [{"system": "http://h.example/mrn", "value": "MRN-77", "type": ""}]
