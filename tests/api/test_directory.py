"""The directory API: admins edit, import and export; coordinators read and get suggestions for their
hospitals' cases; every refusal names its field (or the file's line and column)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from discharge_bridge.access.models import AccessLogEntry
from discharge_bridge.audit.models import AdminAuditEntry
from discharge_bridge.cases.assessment import put_assessment
from discharge_bridge.config import PROJECT_ROOT, Settings
from discharge_bridge.db import session_scope
from discharge_bridge.directory.imports import UPLOAD_MAX
from tests.support.factories import api_client, flagged_case, make_source, user_client

pytestmark = pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)
DEMO = (PROJECT_ROOT / "mappings" / "directory_demo.csv").read_bytes()
CSV = {"Content-Type": "text/csv"}


def test_admins_edit_organisations_and_services(settings: Settings, engine: Engine) -> None:
    api = api_client(settings)
    org = api.post("/api/v1/directory/organisations", json={"code": "csso-1", "name": "TCSO No. 1", "kind": "city"})
    assert org.status_code == 201 and org.json()["uses_portal"] is True
    org_id = org.json()["id"]
    body = {
        "code": "home-care-1",
        "organisation_id": org_id,
        "name": "Home care",
        "category": "home_care",
        "needs": ["social", "daily_living"],
        "documents": [{"code": "passport", "label": "Passport"}],
    }
    created = api.post("/api/v1/directory/services", json=body)
    assert created.status_code == 201, created.text
    service = created.json()
    assert service["organisation_code"] == "csso-1" and service["response_days"] == 3
    url = f"/api/v1/directory/services/{service['id']}"
    changed = api.patch(url, json={"capacity": "waitlist", "waiting_days": 21}, headers={"X-Actor": "olga"})
    assert changed.status_code == 200 and changed.json()["capacity"] == "waitlist"
    assert api.get(url).json()["waiting_days"] == 21
    patched = api.patch(f"/api/v1/directory/organisations/{org_id}", json={"fhir_base_url": "https://fhir.example/r4"})
    assert patched.json()["uses_portal"] is False
    listed = api.get("/api/v1/directory/services", params={"category": "home_care", "q": "HOME"}).json()
    assert [s["code"] for s in listed] == ["home-care-1"]
    assert api.get("/api/v1/directory/services", params={"category": "hospice"}).json() == []
    assert api.delete(url).json() == {"deleted": True}
    assert api.get(url).status_code == 404
    with session_scope(engine) as session:
        actions = [(e.actor, e.action) for e in session.exec(select(AdminAuditEntry).order_by(col(AdminAuditEntry.id)))]
    assert ("olga", "directory.service_edit") in actions and ("api", "directory.service_remove") in actions


def test_refusals_name_the_field(settings: Settings) -> None:
    api = api_client(settings)
    org_id = api.post("/api/v1/directory/organisations", json={"code": "o1", "name": "O"}).json()["id"]
    base = {"code": "s1", "organisation_id": org_id, "name": "S", "category": "legal_aid"}
    assert api.post("/api/v1/directory/services", json=base).status_code == 201

    def loc(response: object) -> list[object]:
        assert response.status_code == 422, response.text  # type: ignore[attr-defined]
        return [d["loc"] for d in response.json()["detail"]]  # type: ignore[attr-defined]

    assert loc(api.post("/api/v1/directory/services", json=base)) == [["body", "code"]]
    assert loc(api.post("/api/v1/directory/services", json={**base, "code": "s2", "organisation_id": 999})) == [
        ["body", "organisation_id"]
    ]
    assert loc(api.post("/api/v1/directory/services", json={**base, "code": "s3", "category": "spa"})) == [
        ["body", "category"]
    ]
    assert loc(api.post("/api/v1/directory/organisations", json={"code": "o1", "name": "Again"})) == [["body", "code"]]
    assert loc(api.patch("/api/v1/directory/services/1", json={"name": None})) == [["body", "name"]]
    assert api.get("/api/v1/directory/services/999").status_code == 404
    assert api.get("/api/v1/directory/organisations/999").status_code == 404


def test_coordinators_read_but_do_not_edit(settings: Settings, engine: Engine) -> None:
    api_client(settings).post("/api/v1/directory.csv", content=DEMO, headers=CSV)
    with session_scope(engine) as session:
        make_source(session, "city")
    anna = user_client(settings, engine, "anna")
    assert len(anna.get("/api/v1/directory/services").json()) == 15
    assert anna.get("/api/v1/directory.csv").status_code == 200
    refused = anna.post("/api/v1/directory/organisations", json={"code": "x", "name": "X"})
    assert refused.status_code == 403
    assert anna.post("/api/v1/directory.csv", content=DEMO, headers=CSV).status_code == 403


def test_csv_and_bundle_round_trip_through_the_api(settings: Settings) -> None:
    api = api_client(settings)
    imported = api.post("/api/v1/directory.csv", content=DEMO, headers=CSV)
    assert imported.status_code == 200, imported.text
    assert imported.json()["services_created"] == 15 and imported.json()["organisations_created"] == 13
    exported = api.get("/api/v1/directory.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    assert len(list(csv.DictReader(io.StringIO(exported.text)))) == 15
    again = api.post("/api/v1/directory.csv", content=exported.content, headers=CSV).json()
    assert again["services_updated"] == 0 and again["services_created"] == 0
    bundle = api.get("/api/v1/directory/bundle")
    assert bundle.headers["content-type"] == "application/fhir+json"
    back = api.post(
        "/api/v1/directory/bundle", content=bundle.content, headers={"Content-Type": "application/fhir+json"}
    )
    assert back.status_code == 200 and back.json()["unchanged"] == 28


def test_a_bad_file_is_a_422_listing_lines_and_columns(settings: Settings) -> None:
    api = api_client(settings)
    rows = list(csv.reader(io.StringIO(DEMO.decode())))
    header = rows[0]
    rows[1][header.index("category")] = "spa"
    rows[3][header.index("min_age")] = "-4"
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    refused = api.post("/api/v1/directory.csv", content=out.getvalue().encode(), headers=CSV)
    assert refused.status_code == 422
    assert [d["loc"] for d in refused.json()["detail"]] == [["body", 2, "category"], ["body", 4, "min_age"]]
    assert api.get("/api/v1/directory/services").json() == []
    assert api.post("/api/v1/directory.csv", content=b"\xff\xfe", headers=CSV).status_code == 422
    assert (
        api.post("/api/v1/directory/bundle", content=b"{", headers={"Content-Type": "application/json"}).status_code
        == 422
    )


def test_a_file_over_the_limit_is_refused_as_it_arrives_with_a_413(settings: Settings) -> None:
    api = api_client(settings)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted chunk by chunk
        yield b"code,name\n"
        for _ in range(UPLOAD_MAX // 65536 + 2):
            yield b"x" * 65536

    for path in ("/api/v1/directory.csv", "/api/v1/directory/bundle"):
        assert api.post(path, content=chunks(), headers=CSV).status_code == 413, path
    declared = {**CSV, "Content-Length": str(UPLOAD_MAX + 1)}
    assert api.post("/api/v1/directory.csv", content=b"x", headers=declared).status_code == 413
    assert api.get("/api/v1/directory/services").json() == []


def test_suggestions_for_a_case_are_scoped_and_logged(settings: Settings, engine: Engine) -> None:
    api_client(settings).post("/api/v1/directory.csv", content=DEMO, headers=CSV)
    with session_scope(engine) as session:
        mine = flagged_case(session, make_source(session, "city").id or 0, concepts=("lives_alone", "dementia"))
        theirs = flagged_case(session, make_source(session, "other").id or 0, "adm9", "p9")
        put_assessment(
            session,
            mine,
            actor="anna",
            domains={"social": {"findings": "", "needs": ["help at home"]}},
            daily_living={"cook": "dependent"},
            living_situation={},
            expected_version=None,
        )
        mine_id, theirs_id = mine.id, theirs.id
    anna = user_client(settings, engine, "anna")
    found = anna.get(f"/api/v1/cases/{mine_id}/suggestions")
    assert found.status_code == 200, found.text
    first = found.json()[0]
    assert first["category"] in ("home_care", "social_home", "gerontology_centre")
    assert first["fits_text"] and first["documents"]
    codes = [s["service_code"] for s in found.json()]
    assert "geronto-residential" in codes and "hospice-inpatient" not in codes
    geronto = next(s for s in found.json() if s["service_code"] == "geronto-residential")
    assert "dementia -> gerontology centre" in geronto["fits_text"] and "waitlist:30" in geronto["misses"]
    assert anna.get(f"/api/v1/cases/{theirs_id}/suggestions").status_code == 404
    with session_scope(engine) as session:
        routes = [e.route for e in session.exec(select(AccessLogEntry).where(AccessLogEntry.username == "anna"))]
    assert routes == ["api.case_suggestions"]


def test_openapi_describes_the_directory(settings: Settings) -> None:
    paths = api_client(settings).get("/openapi.json").json()["paths"]
    for path in [
        "/api/v1/directory/organisations",
        "/api/v1/directory/organisations/{organisation_id}",
        "/api/v1/directory/services",
        "/api/v1/directory/services/{service_id}",
        "/api/v1/directory.csv",
        "/api/v1/directory/bundle",
        "/api/v1/cases/{case_id}/suggestions",
    ]:
        assert path in paths, path
    assert "text/csv" in paths["/api/v1/directory.csv"]["post"]["requestBody"]["content"]
    assert paths["/api/v1/cases/{case_id}/suggestions"]["get"]["description"]
