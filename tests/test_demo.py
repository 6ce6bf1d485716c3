"""The demo on the embedded default: users of every role, cases assigned, work in progress, a morning list."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from discharge_bridge.app import create_app
from discharge_bridge.config import Settings
from discharge_bridge.db import get_engine, session_scope
from discharge_bridge.demo import DEMO_SOURCE, prepare_demo
from discharge_bridge.demo.activity import STORIES, seed_demo_activity
from discharge_bridge.sources.service import get_source
from discharge_bridge.worklists.morning import latest_for


def test_the_demo_has_people_work_in_progress_and_a_morning_list(tmp_path: Path) -> None:
    settings, result = prepare_demo(Settings(data_dir=tmp_path / "data"))
    assert result.status == "ok" and result.dead_letters == 2
    token = settings.api_token.get_secret_value() if settings.api_token else ""
    api = TestClient(create_app(settings), headers={"Authorization": f"Bearer {token}"})
    cases = api.get("/api/v1/cases?limit=500").json()["items"]
    assert {c["coordinator"] for c in cases} == {"anna", "dmitry"}  # round robin over the two coordinators
    details = [api.get(f"/api/v1/cases/{c['id']}").json() for c in cases]
    ready = [d for d in details if d["medically_ready"]["at"]]
    assert len(ready) == len(STORIES)
    assert all(d["medically_ready"]["source"] == "person" and d["bed_days_lost"] > 0 for d in ready)
    handoffs = [api.get(f"/api/v1/cases/{d['id']}/handoffs").json() for d in ready]
    assert sorted(h[0]["status"] for h in handoffs) == ["accepted", "proposed", "referred", "referred", "scheduled"]
    assert all(api.get(f"/api/v1/cases/{d['id']}/barriers").json() for d in ready)
    # a second start changes nothing: the stories are written once
    with session_scope(get_engine(settings)) as session:
        source_id = get_source(session, DEMO_SOURCE).id or 0
        (morning,) = latest_for(session, [source_id])
        assert morning.items["counts"]["new_flags"] == len(cases) and morning.generated_by == "demo"
    assert seed_demo_activity(settings, source_id) == 0
    prepare_demo(settings)
    assert len(api.get("/api/v1/cases?limit=500").json()["items"]) == len(cases)


def test_the_demo_shows_a_transfer_a_death_and_a_merged_patient(tmp_path: Path) -> None:
    """The demo hospital's ICU-then-ward stay (a parent Encounter and two legs) is one case on the ward
    leg; the patient who died while the EHR kept the Encounter open has none; the patient registered
    twice is one person, whose old record's stay makes this admission a readmission."""
    from sqlmodel import Session, select

    from discharge_bridge.cases.models import Case
    from discharge_bridge.db import make_engine
    from discharge_bridge.risk.models import RiskAssessment

    settings, _ = prepare_demo(Settings(data_dir=tmp_path / "data"), activity=False)
    engine = make_engine(settings.sqlalchemy_url)
    with Session(engine) as session:
        cases = session.exec(select(Case)).all()
        merged = session.exec(select(RiskAssessment).where(RiskAssessment.encounter_fhir_id == "demo-enc-051")).one()
    engine.dispose()
    assert merged.patient_fhir_id == "demo-pat-051" and merged.flagged
    assert "readmission" in {f["concept"] for f in merged.facts}
    assert not [c for c in cases if c.patient_fhir_id == "demo-pat-051-old"]
    transfer = [c for c in cases if c.encounter_fhir_id.startswith("demo-enc-049")]
    assert [c.encounter_fhir_id for c in transfer] == ["demo-enc-049"]
    assert not [c for c in cases if c.patient_fhir_id == "demo-pat-050"]
