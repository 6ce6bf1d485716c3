"""End to end: an admission in the EHR simulator is flagged, coordinated, handed over and discharged."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from discharge_bridge.app import create_app
from discharge_bridge.assessment import sync_and_assess
from discharge_bridge.config import Settings
from discharge_bridge.connections.service import add_source
from discharge_bridge.db import session_scope
from discharge_bridge.sources.models import SyncStatus
from tests.support.sekmet import SekmetServer

pytestmark = pytest.mark.slow

V3 = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
SNOMED = "http://snomed.info/sct"


def _admission() -> dict[str, Any]:
    """An 84-year-old widow who lives alone, admitted yesterday, with no relative on file."""

    def put(resource: dict[str, Any]) -> dict[str, Any]:
        return {
            "resource": resource,
            "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"},
        }

    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            put(
                {
                    "resourceType": "Patient",
                    "id": "e2e-pat",
                    "birthDate": "1942-02-11",
                    "gender": "female",
                    "maritalStatus": {"coding": [{"code": "W"}]},
                }
            ),
            put(
                {
                    "resourceType": "Encounter",
                    "id": "e2e-enc",
                    "status": "in-progress",
                    "class": {"system": V3, "code": "IMP"},
                    "subject": {"reference": "Patient/e2e-pat"},
                    "period": {"start": "2026-11-20T10:15:00+03:00"},
                    "location": [
                        {
                            "location": {"display": "Therapy ward 3"},
                            "status": "active",
                            "physicalType": {"coding": [{"code": "wa"}]},
                        }
                    ],
                }
            ),
            put(
                {
                    "resourceType": "Condition",
                    "id": "e2e-alone",
                    "subject": {"reference": "Patient/e2e-pat"},
                    "clinicalStatus": {"coding": [{"code": "active"}]},
                    "code": {"coding": [{"system": SNOMED, "code": "105529008", "display": "Lives alone"}]},
                }
            ),
        ],
    }


def test_admission_to_closed_case(sekmet: SekmetServer, engine: Engine, settings: Settings) -> None:
    settings = settings.model_copy(update={"api_token": SecretStr("t0ken"), "sync_overlap_seconds": 5})
    sekmet.transaction(_admission())
    with session_scope(engine) as session:
        add_source(session, name="sim", hospital="Simulated General", base_url=sekmet.base_url)

    first = sync_and_assess("sim", engine=engine, settings=settings)
    assert first.status == SyncStatus.ok, first.error
    assert (first.flagged, first.cases_opened) == (1, 1)

    api = TestClient(create_app(settings), headers={"Authorization": "Bearer t0ken", "X-Actor": "coordinator-anna"})
    cases = api.get("/api/v1/cases", params={"source": "sim"}).json()
    assert cases["total"] == 1
    case_id = cases["items"][0]["id"]
    detail = api.get(f"/api/v1/cases/{case_id}").json()
    assert detail["priority"] == "high"
    assert {"lives_alone", "elderly"} <= {c for r in detail["flags"]["reasons"] for c in r["concept"].split("+")}
    tasks = api.get(f"/api/v1/cases/{case_id}/tasks").json()
    assert [t["kind"] for t in tasks] == ["first_visit", "find_relatives"]  # no contact person on file

    # the first visit: an assessment at the bedside
    assessment = api.put(
        f"/api/v1/cases/{case_id}/assessment",
        json={
            "version": 0,
            "domains": {
                "social": {"findings": "Widow, lives alone on the 4th floor, no lift", "needs": ["daily care"]},
                "legal": {"findings": "Passport at home", "needs": ["fetch passport"]},
            },
            "daily_living": {"go_outside": "dependent", "cook": "needs_help", "wash": "needs_help"},
            "living_situation": {"lives_alone": True, "housing": "own_home"},
        },
    )
    assert assessment.status_code == 200, assessment.text
    visit = tasks[0]
    for status in ("in-progress", "completed"):
        moved = api.patch(
            f"/api/v1/tasks/{visit['id']}", json={"status": status}, headers={"If-Match": f'"{visit["version"]}"'}
        )
        assert moved.status_code == 200, moved.text
        visit = moved.json()

    # the plan and the handoff to a gerontology centre
    task = api.post(
        f"/api/v1/cases/{case_id}/tasks",
        json={"description": "Apply for a gerontology centre place", "domain": "social"},
    )
    assert task.status_code == 201, task.text
    handoff = api.post(
        f"/api/v1/cases/{case_id}/handoffs",
        json={"destination_type": "gerontology_centre", "organisation": "Gerontology centre No. 2"},
    )
    assert handoff.status_code == 201, handoff.text
    h = handoff.json()
    assert "passport" in {d["code"] for d in h["documents"]}
    h = api.patch(
        f"/api/v1/handoffs/{h['id']}",
        json={"documents": {d["code"]: True for d in h["documents"]}},
        headers={"If-Match": f'"{h["version"]}"'},
    ).json()
    assert h["documents_complete"] is True
    for status in ("referred", "accepted", "scheduled", "completed"):
        body: dict[str, Any] = {"status": status, "version": h["version"]}
        if status == "scheduled":
            body["scheduled_for"] = "2026-11-24T10:00:00+03:00"
        response = api.patch(f"/api/v1/handoffs/{h['id']}", json=body)
        assert response.status_code == 200, response.text
        h = response.json()
    assert api.get(f"/api/v1/cases/{case_id}").json()["status"] == "open"  # not discharged yet

    # the EHR discharges the patient; the next sync closes the case with the disposition
    sekmet.discharge("e2e-enc", end="2026-11-24T11:30:00+03:00", disposition_code="long")
    second = sync_and_assess("sim", engine=engine, settings=settings)
    assert second.status == SyncStatus.ok, second.error
    assert second.discharged == 1

    closed = api.get(f"/api/v1/cases/{case_id}").json()
    assert closed["status"] == "closed"
    assert closed["discharge"]["disposition"] == "long"
    assert closed["discharge"]["at"].startswith("2026-11-24T08:30:00")
    assert closed["discharge"]["destination"]
    timeline = api.get(f"/api/v1/cases/{case_id}/timeline").json()
    kinds = [e["kind"] for e in timeline]
    assert kinds[0] == "opened" and kinds.index("discharged") < kinds.index("status_changed")
    confirmed = next(e for e in timeline if e["kind"] == "flag_corrected")  # lives alone: confirmed at the bedside
    assert (confirmed["data"]["concept"], confirmed["data"]["correct"]) == ("lives_alone", True)
    assert confirmed["actor"] == "coordinator-anna"
    assert api.get("/api/v1/worklist").json()["total"] == 0  # off the worklist once discharged
