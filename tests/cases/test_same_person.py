"""Patient.link seealso: another record that may be the same person is shown on the case; once the
coordinator confirms it (page or API), both records are read as one person (here: the other
record's earlier stay makes this admission a readmission). A pair the EHR never named is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import time_machine
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from discharge_bridge.assessment import drain
from discharge_bridge.cases.models import Case, CaseEvent
from discharge_bridge.config import Settings
from discharge_bridge.connections.service import add_source
from discharge_bridge.db import session_scope
from discharge_bridge.ingest.normalise import normalise
from discharge_bridge.ingest.store import upsert_snapshots
from discharge_bridge.risk.models import RiskAssessment
from tests.support.factories import api_client
from tests.support.fakefhir import BASE

SCENARIO = Path(__file__).resolve().parents[2] / "fhir_fixtures" / "stays" / "seealso_possible_duplicate" / "sync1.json"
NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


def _readmission(engine: Engine) -> bool:
    with Session(engine) as session:
        rows = session.exec(
            select(RiskAssessment).where(RiskAssessment.encounter_fhir_id == "st-sa-1", col(RiskAssessment.current))
        ).all()
    return any(f["concept"] == "readmission" for r in rows for f in r.facts)


def test_confirming_the_same_person_reads_both_records(engine: Engine, settings: Settings) -> None:
    resources = [e["resource"] for e in json.loads(SCENARIO.read_text())["entry"]]
    with time_machine.travel(NOW, tick=False):
        with session_scope(engine) as session:
            source = add_source(session, name="city", hospital="City", base_url=BASE)
            assert source.id is not None
            upsert_snapshots(session, source.id, [normalise(r) for r in resources])
        drain(engine, settings)
        with Session(engine) as session:
            case = session.exec(select(Case)).one()
        api = api_client(settings)
        detail = api.get(f"/api/v1/cases/{case.id}").json()
        assert detail["possibly_same_person"] == ["st-sa-2"] and not _readmission(engine)

        refused = api.patch(f"/api/v1/cases/{case.id}", json={"same_person": "st-nobody"})
        assert refused.status_code == 422 and "same_person" in refused.text

        assert api.patch(f"/api/v1/cases/{case.id}", json={"same_person": "st-sa-2"}).status_code == 200
        drain(engine, settings)  # as the scheduler's assessment job does
    assert _readmission(engine)
    with Session(engine) as session:
        assert [c.patient_fhir_id for c in session.exec(select(Case))] == ["st-sa"]
        kinds = [e.kind for e in session.exec(select(CaseEvent).where(CaseEvent.case_id == case.id))]
    assert "same_person" in kinds
    assert api.get(f"/api/v1/cases/{case.id}").json()["possibly_same_person"] == []


def test_a_merged_records_relatives_are_the_persons(engine: Engine, settings: Settings) -> None:
    """The daughter on the old record counts for the person: no "no contacts" flag after the merge."""
    daughter = {
        "resourceType": "RelatedPerson",
        "id": "rp-daughter",
        "patient": {"reference": "Patient/pm-old"},
        "relationship": [{"coding": [{"code": "DAU"}]}],
    }
    old = {
        "resourceType": "Patient",
        "id": "pm-old",
        "active": False,
        "link": [{"other": {"reference": "Patient/pm"}, "type": "replaced-by"}],
    }
    survivor = {"resourceType": "Patient", "id": "pm", "birthDate": "1939-01-01"}
    stay = {
        "resourceType": "Encounter",
        "id": "pm-e",
        "status": "in-progress",
        "class": {"code": "IMP"},
        "subject": {"reference": "Patient/pm"},
        "period": {"start": "2026-03-09T08:00:00Z"},
    }

    def concepts() -> set[str]:
        with Session(engine) as session:
            row = session.exec(select(RiskAssessment).where(RiskAssessment.encounter_fhir_id == "pm-e")).one()
        return {f["concept"] for f in row.facts}

    with time_machine.travel(NOW, tick=False):
        with session_scope(engine) as session:
            source = add_source(session, name="city", hospital="City", base_url=BASE)
            assert source.id is not None
            source_id = source.id
            upsert_snapshots(session, source_id, [normalise(r) for r in (survivor, stay, daughter)])
        drain(engine, settings)
        assert "no_contacts" in concepts()  # the daughter is on a record not yet known as the person's
        with session_scope(engine) as session:
            upsert_snapshots(session, source_id, [normalise(old)])
        drain(engine, settings)
    assert "no_contacts" not in concepts()
