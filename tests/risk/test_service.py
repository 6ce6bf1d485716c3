"""Scoring from stored snapshots: one assessment per admission and rule set, re-scored on change."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from discharge_bridge.app import create_app
from discharge_bridge.assessment import sync_and_assess
from discharge_bridge.cases.jobs import assess_and_follow
from discharge_bridge.config import PROJECT_ROOT, Settings
from discharge_bridge.connections.service import add_source
from discharge_bridge.db import session_scope
from discharge_bridge.fhir import FhirClient, RetryPolicy
from discharge_bridge.ingest.models import EncounterSnapshot
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.worklists.service import worklist
from tests.support.fakefhir import BASE, FakeFhir, condition, encounter, patient


@pytest.fixture
def site(engine: Engine, settings: Settings, tmp_path: Path) -> tuple[FakeFhir, Settings]:
    mappings = tmp_path / "mappings"
    shutil.copytree(PROJECT_ROOT / "mappings", mappings)
    settings = settings.model_copy(update={"mappings_dir": mappings, "api_token": SecretStr("t0ken")})
    ehr = FakeFhir()
    ehr.put(patient("old", birthDate="1936-04-01"))  # 90 at admission, no contacts on record
    ehr.put(condition("dem", "old", code="F03.90"))
    ehr.put(encounter("adm", "old"))
    ehr.put(patient("young", birthDate="1990-01-01", contact=[{"relationship": [{"coding": [{"code": "N"}]}]}]))
    ehr.put(encounter("adm2", "young"))
    with session_scope(engine) as session:
        add_source(session, name="city", hospital="City Hospital", base_url=BASE)
    return ehr, settings


def _sync(engine: Engine, settings: Settings, ehr: FakeFhir) -> None:
    client = FhirClient(BASE, transport=ehr.transport(), retry=RetryPolicy(sleep=lambda s: None))
    assert sync_and_assess("city", engine=engine, settings=settings, client=client).error is None


def _rows(engine: Engine) -> list[RiskAssessment]:
    with Session(engine) as session:
        return list(session.exec(select(RiskAssessment).order_by(RiskAssessment.id)))


def test_sync_scores_and_the_worklist_explains(engine: Engine, site: tuple[FakeFhir, Settings]) -> None:
    ehr, settings = site
    _sync(engine, settings, ehr)
    rows = {r.encounter_fhir_id: r for r in _rows(engine)}
    assert set(rows) == {"adm", "adm2"}
    assert rows["adm"].priority == "high" and rows["adm"].age == 90
    assert rows["adm2"].flagged is False
    concepts = {r["concept"] for r in rows["adm"].reasons}
    assert {"dementia", "dementia+no_contacts"} <= concepts
    evidence = {e for r in rows["adm"].reasons for e in r["evidence"]}
    assert "Condition/dem" in evidence

    client = TestClient(create_app(settings))
    assert client.get("/api/v1/worklist").status_code == 401
    assert client.get("/api/v1/worklist", headers={"Authorization": "Bearer wrong"}).status_code == 401
    body = client.get("/api/v1/worklist", headers={"Authorization": "Bearer t0ken"}).json()
    assert body["total"] == 1
    item = body["items"][0]
    assert (item["source"], item["patient"], item["encounter"], item["priority"]) == ("city", "old", "adm", "high")
    assert item["admitted_at"].startswith("2026-11-01T06:30:00")
    assert all({"concept", "evidence", "rule", "points", "text"} <= set(r) for r in item["reasons"])
    assert item["lace"]["components"]["C"] is not None
    bad = client.get("/api/v1/worklist?min_priority=urgent", headers={"Authorization": "Bearer t0ken"})
    assert bad.status_code == 422 and "min_priority" in bad.text
    assert client.get("/api/v1/worklist?source=nope", headers={"Authorization": "Bearer t0ken"}).status_code == 404


def test_rescoring_never_duplicates_and_unchanged_data_is_skipped(
    engine: Engine, site: tuple[FakeFhir, Settings]
) -> None:
    ehr, settings = site
    _sync(engine, settings, ehr)
    first = _rows(engine)
    stats = assess_and_follow(engine, "city", settings).scores
    assert (stats.assessed, stats.unchanged) == (0, 2)
    forced = assess_and_follow(engine, "city", settings, force=True).scores
    assert forced.assessed == 2
    assert [r.id for r in _rows(engine)] == [r.id for r in first]


def test_a_rule_change_makes_a_new_assessment_and_keeps_the_first_flag_time(
    engine: Engine, site: tuple[FakeFhir, Settings]
) -> None:
    ehr, settings = site
    _sync(engine, settings, ehr)
    flagged_at = next(r.first_flagged_at for r in _rows(engine) if r.encounter_fhir_id == "adm")
    rules = settings.mappings_dir / "rules.yaml"
    text = rules.read_text()
    version = text.split("version:", 1)[1].split("\n", 1)[0].strip().strip('"')
    rules.write_text(text.replace(f'version: "{version}"', 'version: "test-2"', 1))
    assess_and_follow(engine, "city", settings)
    rows = _rows(engine)
    assert sorted({r.rules_version for r in rows}) == sorted({version, "test-2"})
    new = next(r for r in rows if r.rules_version == "test-2" and r.encounter_fhir_id == "adm")
    assert new.first_flagged_at == flagged_at
    with Session(engine) as session:
        assert worklist(session, rules_version="test-2").total == 1


def test_a_discharge_takes_the_admission_off_the_worklist(engine: Engine, site: tuple[FakeFhir, Settings]) -> None:
    ehr, settings = site
    _sync(engine, settings, ehr)
    ehr.put(
        encounter(
            "adm", "old", status="finished", period={"start": "2026-11-01T09:30:00Z", "end": "2026-11-03T10:00:00Z"}
        )
    )
    _sync(engine, settings, ehr)
    row = next(r for r in _rows(engine) if r.encounter_fhir_id == "adm")
    assert row.current is False and row.flagged is True  # history kept, but not current
    with Session(engine) as session:
        assert worklist(session, rules_version=row.rules_version).total == 0
        assert session.exec(select(func.count()).select_from(RiskAssessment)).one() == 2


def test_an_assessment_copies_its_admission_start_and_follows_a_corrected_one(
    engine: Engine, site: tuple[FakeFhir, Settings]
) -> None:
    """The worklist orders by the start copied onto the assessment (``admitted_at``): it is the
    stored encounter's, and an EHR correction of the start re-assesses the admission and moves it."""
    ehr, settings = site
    _sync(engine, settings, ehr)

    def starts() -> dict[str, tuple[datetime | None, datetime | None]]:
        with Session(engine) as session:
            stored = dict(session.exec(select(EncounterSnapshot.fhir_id, EncounterSnapshot.period_start)).all())
            return {r.encounter_fhir_id: (r.admitted_at, stored[r.encounter_fhir_id]) for r in _rows(engine)}

    first = starts()
    assert first["adm"][0] == datetime(2026, 11, 1, 6, 30, tzinfo=UTC) == first["adm"][1]
    assert first["adm2"][0] == first["adm2"][1]
    ehr.put(encounter("adm", "old", period={"start": "2026-10-28T22:15:00+03:00"}))
    _sync(engine, settings, ehr)
    assert starts()["adm"] == (datetime(2026, 10, 28, 19, 15, tzinfo=UTC),) * 2
