"""The screening API: start pre-filled, read, answer and complete with If-Match, amend, FHIR output;
every 4xx names what was wrong."""

from __future__ import annotations

from fastapi.testclient import TestClient
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from sqlalchemy.engine import Engine

from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.risk.mapping import DEFAULT_MAPPINGS_DIR
from discharge_bridge.risk.screening import definition
from tests.support.factories import api_client, make_source, seed_case, user_client

ISAR_ANSWERS = {
    "help-before": "yes",
    "help-more": "no",
    "hospitalised": "no",
    "sees-well": "yes",
    "memory": "yes",
    "medications": "no",
}


def _start(client: TestClient, case_id: int, tool: str = "isar") -> dict:
    created = client.post(f"/api/v1/cases/{case_id}/screenings", json={"tool": tool})
    assert created.status_code == 201, created.text
    assert created.headers["ETag"] == '"1"'
    return created.json()


def test_start_answer_complete_amend_and_fhir(engine: Engine, settings: Settings) -> None:
    case_id = seed_case(engine)
    client = api_client(settings)
    started = _start(client, case_id)
    assert started["status"] == "in-progress" and started["total"] is None and started["maximum"] == 6
    assert started["questionnaire"].startswith("https://discharge-bridge.org/fhir/Questionnaire/isar|")
    # The seeded patient has no other stay: "hospitalised in the last 6 months" is pre-filled "no".
    assert started["answers"] == {"hospitalised": {"value": "no", "source": "prefilled", "evidence": None}}
    assert started["unanswered"] == [k for k in ISAR_ANSWERS if k != "hospitalised"]
    url = f"/api/v1/screenings/{started['id']}"

    again = client.post(f"/api/v1/cases/{case_id}/screenings", json={"tool": "isar"})
    assert again.status_code == 409 and again.json()["screening_id"] == started["id"]
    bad_tool = client.post(f"/api/v1/cases/{case_id}/screenings", json={"tool": "lace"})
    assert bad_tool.status_code == 422 and bad_tool.json()["detail"][0]["loc"] == ["body", "tool"]

    assert client.patch(url, json={"answers": {"memory": "yes"}}).status_code == 428
    wrong = client.patch(url, json={"answers": {"memory": "perhaps"}}, headers={"If-Match": '"1"'})
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["body", "answers", "memory"]
    unknown = client.patch(url, json={"answers": {"memroy": "yes"}}, headers={"If-Match": '"1"'})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "answers", "memroy"]
    extra = client.patch(url, json={"answers": {}, "status": "completed"}, headers={"If-Match": '"1"'})
    assert extra.status_code == 422 and extra.json()["detail"][0]["loc"] == ["body", "status"]

    part = client.patch(url, json={"answers": {"memory": "yes"}}, headers={"If-Match": '"1"'})
    assert part.status_code == 200, part.text
    assert part.headers["ETag"] == '"2"' and part.json()["floor"] == 1
    assert part.json()["answers"]["memory"] == {"value": "yes", "source": "person", "evidence": None}
    stale = client.patch(url, json={"answers": {"memory": "no"}}, headers={"If-Match": '"1"'})
    assert stale.status_code == 409 and stale.json()["current_version"] == 2
    incomplete = client.patch(url, json={"complete": True}, headers={"If-Match": '"2"'})
    assert incomplete.status_code == 422
    assert [d["loc"][-1] for d in incomplete.json()["detail"]] == [
        k for k in ISAR_ANSWERS if k not in ("memory", "hospitalised")
    ]

    done = client.patch(url, json={"answers": ISAR_ANSWERS, "complete": True, "version": 2})
    assert done.status_code == 200, done.text
    body = done.json()
    assert (body["status"], body["total"], body["band"], body["completed_by"]) == ("completed", 2, "at_risk", "api")
    assert body["unanswered"] == []
    amended = client.patch(url, json={"answers": {"help-before": "no"}}, headers={"If-Match": done.headers["ETag"]})
    assert amended.status_code == 200
    assert (amended.json()["status"], amended.json()["total"], amended.json()["band"]) == ("amended", 1, "not_at_risk")

    got = client.get(url)
    assert got.status_code == 200 and got.headers["ETag"] == amended.headers["ETag"]
    listed = client.get(f"/api/v1/cases/{case_id}/screenings").json()
    assert [s["id"] for s in listed] == [started["id"]]
    fhir = client.get(f"{url}/fhir")
    assert fhir.status_code == 200
    resource = fhir.json()
    QuestionnaireResponse.model_validate(resource)
    defn = definition("isar", DEFAULT_MAPPINGS_DIR)
    assert resource["questionnaire"] == f"{defn.url}|{defn.version}" and resource["status"] == "amended"
    assert resource["subject"] == {"reference": "Patient/p1"} and resource["encounter"] == {
        "reference": "Encounter/adm1"
    }
    assert [i["linkId"] for i in resource["item"]] == list(ISAR_ANSWERS)
    assert {"url": "https://discharge-bridge.org/fhir/StructureDefinition/screening-total", "valueInteger": 1} in (
        resource["extension"]
    )
    detail = client.get(f"/api/v1/cases/{case_id}").json()
    assert "hospital_score" in detail["flags"] and "lace" in detail["flags"]


def test_scope_and_permissions(engine: Engine, settings: Settings) -> None:
    case_id = seed_case(engine)
    started = _start(api_client(settings), case_id, "brass")
    with session_scope(engine) as session:
        make_source(session, "other")
    outsider = user_client(settings, engine, "olga", sources=("other",))
    assert outsider.get(f"/api/v1/screenings/{started['id']}").status_code == 404
    assert outsider.get(f"/api/v1/screenings/{started['id']}/fhir").status_code == 404
    assert outsider.post(f"/api/v1/cases/{case_id}/screenings", json={"tool": "isar"}).status_code == 404
    bed_manager = user_client(settings, engine, "boris", role="bed_manager")
    assert bed_manager.get(f"/api/v1/screenings/{started['id']}").status_code == 200
    refused = bed_manager.patch(
        f"/api/v1/screenings/{started['id']}", json={"answers": {"age": "80-plus"}}, headers={"If-Match": '"1"'}
    )
    assert refused.status_code == 403
    assert api_client(settings).get("/api/v1/screenings/999").status_code == 404
