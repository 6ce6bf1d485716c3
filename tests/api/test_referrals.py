"""The referrals and consent API: consent recorded and revoked, a referral refused without it, sent
with it, moved with If-Match, documents ticked, its FHIR Bundle; scope, permissions and every 4xx."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import select

from discharge_bridge.access.models import AccessLogEntry
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.directory.models import ServiceCategory
from tests.cases.referral_support import make_service
from tests.support.factories import api_client, make_source, seed_case, user_client


def _service(
    engine: Engine, code: str = "fund", category: ServiceCategory = ServiceCategory.charity
) -> tuple[int, int]:
    with session_scope(engine) as session:
        service = make_service(session, code, category)
        assert service.id is not None
        return service.id, service.organisation_id


def test_a_referral_without_consent_is_refused_then_sent_moved_and_ticked(engine: Engine, settings: Settings) -> None:
    case_id = seed_case(engine)
    service_id, organisation_id = _service(engine)
    client = api_client(settings)
    refused = client.post(f"/api/v1/cases/{case_id}/referrals", json={"service_id": service_id})
    assert refused.status_code == 409 and refused.json()["consent_required"] is True
    assert "consent" in refused.json()["detail"]

    consent = client.post(
        f"/api/v1/cases/{case_id}/consents",
        json={"method": "verbal_witnessed", "witness": "Nurse Petrova", "organisation_ids": [organisation_id]},
    )
    assert consent.status_code == 201, consent.text
    assert consent.json()["status"] == "active" and consent.json()["organisation_ids"] == [organisation_id]
    listed = client.get(f"/api/v1/cases/{case_id}/consents").json()
    assert [c["id"] for c in listed] == [consent.json()["id"]] and listed[0]["witness"] == "Nurse Petrova"
    with session_scope(engine) as session:  # the list names the witness: the view is in the access log
        assert [e.route for e in session.exec(select(AccessLogEntry))] == ["api.consents"]

    created = client.post(
        f"/api/v1/cases/{case_id}/referrals",
        json={"service_id": service_id, "needs": ["material"], "reason": "a wheelchair"},
    )
    assert created.status_code == 201, created.text
    referral = created.json()
    assert created.headers["ETag"] == '"1"'
    assert (referral["status"], referral["consent_id"], referral["organisation_name"]) == (
        "requested",
        consent.json()["id"],
        "Organisation fund",
    )
    assert referral["allowed_transitions"] == ["accepted", "cancelled", "received", "rejected"]
    assert referral["service_name"] == "Service fund" and referral["category"] == "charity"
    url = f"/api/v1/referrals/{referral['id']}"
    assert client.patch(url, json={"status": "accepted"}).status_code == 428
    no_reason = client.patch(url, json={"status": "rejected"}, headers={"If-Match": '"1"'})
    assert no_reason.status_code == 422 and no_reason.json()["detail"][0]["loc"] == ["body", "reason"]
    accepted = client.patch(
        url, json={"status": "accepted", "proposed_date": "2026-11-20"}, headers={"If-Match": '"1"'}
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["proposed_date"] == "2026-11-20" and accepted.json()["status_dates"]["accepted"]
    stale = client.patch(url, json={"status": "completed"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 409 and stale.json()["current_version"] == 2
    wrong = client.patch(url, json={"status": "received", "version": 2})
    assert wrong.status_code == 409 and wrong.json()["allowed"] == ["cancelled", "completed", "in-progress"]

    ticked = client.post(f"{url}/documents/passport", json={"done": True})
    assert ticked.status_code == 200 and ticked.json()["documents"][0]["done"] is True
    unknown = client.post(f"{url}/documents/pasport")
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["path", "code"]
    assert client.get(f"/api/v1/cases/{case_id}/referrals").json()[0]["documents"][0]["done"] is True

    revoked = client.post(f"/api/v1/consents/{consent.json()['id']}/revoke", json={"reason": "changed their mind"})
    assert revoked.status_code == 200 and revoked.json()["status"] == "inactive"
    assert revoked.json()["revoke_reason"] == "changed their mind"
    again = client.post(f"/api/v1/consents/{consent.json()['id']}/revoke", json={"reason": "again"})
    assert again.status_code == 409
    after = client.post(f"/api/v1/cases/{case_id}/referrals", json={"service_id": service_id})
    assert after.status_code == 409 and after.json()["consent_required"] is True


def test_the_referral_as_fhir_is_a_bundle_and_its_view_is_logged(engine: Engine, settings: Settings) -> None:
    case_id = seed_case(engine)
    service_id, _ = _service(engine, "lawyers", ServiceCategory.legal_aid)
    client = api_client(settings)
    client.post(f"/api/v1/cases/{case_id}/consents", json={"method": "signed_form", "categories": ["legal_aid"]})
    referral = client.post(f"/api/v1/cases/{case_id}/referrals", json={"service_id": service_id}).json()
    bundle = client.get(f"/api/v1/referrals/{referral['id']}/fhir")
    assert bundle.status_code == 200
    assert [e["resource"]["resourceType"] for e in bundle.json()["entry"]] == ["ServiceRequest", "Task", "Consent"]
    with session_scope(engine) as session:
        routes = [e.route for e in session.exec(select(AccessLogEntry))]
    assert routes == ["api.referral_fhir"]


def test_input_errors_name_the_field(engine: Engine, settings: Settings) -> None:
    case_id = seed_case(engine)
    service_id, _ = _service(engine)
    client = api_client(settings)
    for payload, field in [
        ({"service_id": 0}, "service_id"),
        ({"service_id": 9999}, "service_id"),
        ({"service_id": service_id, "needs": ["money"]}, "needs"),
        ({"service_id": service_id, "servce": 1}, "servce"),
    ]:
        response = client.post(f"/api/v1/cases/{case_id}/referrals", json=payload)
        assert response.status_code == 422 and field in response.text, (payload, response.text)
    for payload, field in [
        ({"method": "verbal_witnessed", "categories": ["charity"]}, "witness"),
        ({"method": "signed_form"}, "organisation_ids"),
        ({"method": "signed_form", "categories": ["moon"]}, "categories"),
        ({"method": "signed_form", "organisation_ids": [9999]}, "organisation_ids"),
        ({"method": "guardian_signed", "categories": ["charity"]}, "given_by_name"),
        (
            {
                "method": "signed_form",
                "categories": ["charity"],
                "valid_from": "2026-11-05T09:00:00+00:00",
                "valid_until": "2026-11-04T09:00:00+00:00",
            },
            "valid_until",
        ),
    ]:
        response = client.post(f"/api/v1/cases/{case_id}/consents", json=payload)
        assert response.status_code == 422 and field in response.text, (payload, response.text)
    client.post(f"/api/v1/cases/{case_id}/consents", json={"method": "signed_form", "categories": ["charity"]})
    referral = client.post(f"/api/v1/cases/{case_id}/referrals", json={"service_id": service_id}).json()
    for payload, field in [
        ({"status": "accepted", "proposed_date": "1066-10-14"}, "proposed_date"),
        ({"status": "accepted", "proposed_date": "soon"}, "proposed_date"),
        ({"status": "lost"}, "status"),
        ({"status": "accepted", "version": 1, "extra": 1}, "extra"),
    ]:
        response = client.patch(f"/api/v1/referrals/{referral['id']}", json=payload, headers={"If-Match": '"1"'})
        assert response.status_code == 422 and field in response.text, (payload, response.text)
    assert client.get("/api/v1/referrals/9999").status_code == 404
    assert client.post("/api/v1/consents/9999/revoke", json={"reason": "x"}).status_code == 404


def test_referrals_are_scoped_to_the_hospital_and_writing_needs_refer(engine: Engine, settings: Settings) -> None:
    case_id = seed_case(engine)
    service_id, _ = _service(engine)
    admin = api_client(settings)
    admin.post(f"/api/v1/cases/{case_id}/consents", json={"method": "signed_form", "categories": ["charity"]})
    referral = admin.post(f"/api/v1/cases/{case_id}/referrals", json={"service_id": service_id}).json()
    consent_id = admin.get(f"/api/v1/cases/{case_id}/consents").json()[0]["id"]
    with session_scope(engine) as session:
        make_source(session, "other")
    outsider = user_client(settings, engine, "olga", sources=("other",))
    assert outsider.get(f"/api/v1/referrals/{referral['id']}").status_code == 404
    assert outsider.get(f"/api/v1/cases/{case_id}/referrals").status_code == 404
    assert outsider.post(f"/api/v1/consents/{consent_id}/revoke", json={"reason": "x"}).status_code == 404
    bed_manager = user_client(settings, engine, "bella", role="bed_manager")
    assert bed_manager.get(f"/api/v1/referrals/{referral['id']}").status_code == 200
    denied = bed_manager.patch(f"/api/v1/referrals/{referral['id']}", json={"status": "cancelled", "reason": "x"})
    assert denied.status_code == 403
    assert bed_manager.post(f"/api/v1/cases/{case_id}/consents", json={"method": "signed_form"}).status_code == 403
    coordinator = user_client(settings, engine, "anna")
    moved = coordinator.patch(
        f"/api/v1/referrals/{referral['id']}", json={"status": "cancelled", "reason": "not needed", "version": 1}
    )
    assert moved.status_code == 200 and moved.json()["status"] == "cancelled"


def test_the_openapi_document_covers_referrals_and_consent(settings: Settings) -> None:
    paths = api_client(settings).get("/openapi.json").json()["paths"]
    expected = {
        "/api/v1/cases/{case_id}/referrals": {"get", "post"},
        "/api/v1/referrals/{referral_id}": {"get", "patch"},
        "/api/v1/referrals/{referral_id}/documents/{code}": {"post"},
        "/api/v1/referrals/{referral_id}/fhir": {"get"},
        "/api/v1/cases/{case_id}/consents": {"get", "post"},
        "/api/v1/consents/{consent_id}/revoke": {"post"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths[path]), path
    assert "409" in paths["/api/v1/cases/{case_id}/referrals"]["post"]["responses"]
    assert "consent_required" in paths["/api/v1/cases/{case_id}/referrals"]["post"]["responses"]["409"]["description"]
