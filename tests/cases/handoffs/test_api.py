"""The handoffs API: propose, move, tick documents, close with the discharge; every 4xx."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import select

from discharge_bridge.cases.discharge import record_discharge
from discharge_bridge.cases.models import Case
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from tests.support.factories import api_client, seed_case


def test_handoff_to_a_social_home_closes_the_discharged_case(engine: Engine, settings: Settings) -> None:
    case_id = seed_case(engine)
    client = api_client(settings)
    created = client.post(
        f"/api/v1/cases/{case_id}/handoffs",
        json={"destination_type": "social_home", "organisation": "Social Home No. 3"},
    )
    assert created.status_code == 201 and created.headers["ETag"] == '"1"'
    handoff = created.json()
    assert handoff["status"] == "proposed" and handoff["allowed_transitions"] == ["cancelled", "referred"]
    assert handoff["status_dates"]["proposed"] is not None and handoff["documents_complete"] is False
    url = f"/api/v1/handoffs/{handoff['id']}"
    version = 1
    codes = [d["code"] for d in handoff["documents"]]
    for change in [
        {"status": "referred", "documents": dict.fromkeys(codes, True)},
        {"status": "accepted"},
        {"status": "scheduled", "scheduled_for": "2026-11-10T10:00:00+03:00"},
    ]:
        response = client.patch(url, json={**change, "version": version})
        assert response.status_code == 200, response.text
        version = response.json()["version"]
    assert response.json()["documents_complete"] is True
    with session_scope(engine) as session:
        case = session.exec(select(Case)).one()
        record_discharge(session, case, discharged_at=case.opened_at, disposition_code="long")
    done = client.patch(url, json={"status": "completed"}, headers={"If-Match": f'"{version}"'})
    assert done.status_code == 200 and done.json()["status_dates"]["completed"] is not None
    detail = client.get(f"/api/v1/cases/{case_id}").json()
    assert (detail["status"], detail["outcome"], detail["discharge"]["destination"]) == (
        "closed",
        "discharged",
        "long_term_care",
    )
    assert client.get(f"/api/v1/cases/{case_id}/handoffs").json()[0]["status"] == "completed"


def test_handoff_errors(engine: Engine, settings: Settings) -> None:
    case_id = seed_case(engine)
    client = api_client(settings)
    handoff = client.post(f"/api/v1/cases/{case_id}/handoffs", json={"destination_type": "hospice"}).json()
    url = f"/api/v1/handoffs/{handoff['id']}"
    missing = client.patch(url, json={"status": "referred"})
    assert missing.status_code == 428
    forbidden = client.patch(url, json={"status": "completed"}, headers={"If-Match": '"1"'})
    assert forbidden.status_code == 409 and forbidden.json()["allowed"] == ["cancelled", "referred"]
    unknown_doc = client.patch(url, json={"documents": {"pasport": True}}, headers={"If-Match": '"1"'})
    assert unknown_doc.status_code == 422
    assert unknown_doc.json()["detail"][0]["loc"] == ["body", "documents", "pasport"]
    assert "palliative_conclusion" in unknown_doc.json()["detail"][0]["msg"]
    client.patch(url, json={"organisation": "St Mary's Hospice", "version": 1})
    stale = client.patch(url, json={"status": "referred"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 409 and stale.json()["current_version"] == 2
    for payload, field in [
        ({"destination_type": "moon"}, "destination_type"),
        ({"destination_type": "relatives", "organization": "x"}, "organization"),
        ({"destination_type": "relatives", "scheduled_for": "soon"}, "scheduled_for"),
    ]:
        response = client.post(f"/api/v1/cases/{case_id}/handoffs", json=payload)
        assert response.status_code == 422 and field in response.text, payload
    bad_status = client.patch(url, json={"status": "lost", "version": 2})
    assert bad_status.status_code == 422 and "status" in bad_status.text
    assert client.patch("/api/v1/handoffs/9999", json={}, headers={"If-Match": '"1"'}).status_code == 404
    client.patch(f"/api/v1/cases/{case_id}", json={"status": "cancelled"})
    closed = client.patch(url, json={"note": "x"}, headers={"If-Match": '"3"'})
    assert closed.status_code == 409 and "cancelled" in closed.json()["detail"]
    assert client.post(f"/api/v1/cases/{case_id}/handoffs", json={"destination_type": "hospice"}).status_code == 409


def test_a_broken_documents_file_is_a_503_naming_it(engine: Engine, settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    case_id = seed_case(engine)
    (tmp_path / "handoff_documents.yaml").write_text("documents: [not, a, map]\n")
    client = api_client(settings.model_copy(update={"mappings_dir": tmp_path}))
    response = client.post(f"/api/v1/cases/{case_id}/handoffs", json={"destination_type": "hospice"})
    assert response.status_code == 503 and "handoff_documents.yaml" in response.json()["detail"]
    assert "documents" in response.json()["detail"]


def test_the_api_refuses_a_completion_with_documents_missing_unless_overridden_with_a_reason(
    engine: Engine, settings: Settings
) -> None:
    case_id = seed_case(engine)
    client = api_client(settings)
    handoff = client.post(f"/api/v1/cases/{case_id}/handoffs", json={"destination_type": "relatives"}).json()
    url = f"/api/v1/handoffs/{handoff['id']}"
    version = handoff["version"]
    for status in ("referred", "accepted", "scheduled"):
        version = client.patch(url, json={"status": status, "version": version}).json()["version"]
    refused = client.patch(url, json={"status": "completed", "documents": {"passport": True}, "version": version})
    assert refused.status_code == 409
    assert refused.json()["missing"] == ["consent_relatives", "medical_report"]
    assert "override_reason" in refused.json()["detail"]
    assert client.get(url).json()["documents"][0]["done"] is False  # the refused change wrote nothing
    blank = client.patch(url, json={"status": "completed", "override_reason": "", "version": version})
    assert blank.status_code == 422 and "override_reason" in blank.text
    wrong = client.patch(url, json={"status": "declined", "override_reason": "x", "version": version})
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["body", "override_reason"]
    done = client.patch(
        url,
        json={"status": "completed", "override_reason": "Consent by phone, paper follows", "version": version},
        headers={"X-Actor": "anna"},
    )
    assert done.status_code == 200, done.text
    override = done.json()["documents_override"]
    assert (override["by"], override["reason"]) == ("anna", "Consent by phone, paper follows")
    assert override["missing"] == ["passport", "consent_relatives", "medical_report"] and override["at"]
    assert client.get(url).json()["documents_override"] == override
    timeline = client.get(f"/api/v1/cases/{case_id}/timeline").json()
    assert timeline[-1]["data"]["documents_override"] == {
        "reason": "Consent by phone, paper follows",
        "missing": ["passport", "consent_relatives", "medical_report"],
    }
