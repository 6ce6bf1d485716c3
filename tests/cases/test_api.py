"""The cases API: listing, opening by hand, detail, PATCH, timeline, assessment, barriers; every 4xx."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from sqlalchemy.engine import Engine

from discharge_bridge import keyset
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from tests.support.factories import api_client, make_source, make_user, put_encounter, put_risk, seed_case


def test_without_a_token_everything_is_401(engine: Engine, settings: Settings) -> None:
    case_id = seed_case(engine)
    anonymous = api_client(settings, token=None)
    for method, url in [
        ("GET", "/api/v1/cases"),
        ("GET", f"/api/v1/cases/{case_id}"),
        ("PATCH", "/api/v1/tasks/1"),
        ("PATCH", "/api/v1/handoffs/1"),
        ("GET", f"/api/v1/cases/{case_id}/timeline"),
    ]:
        assert anonymous.request(method, url, json={}).status_code == 401, url
    assert api_client(settings, token="wrong").get("/api/v1/cases").status_code == 401


def test_list_filters_and_pages(engine: Engine, settings: Settings) -> None:
    with session_scope(engine) as session:
        sid = make_source(session).id or 0
        other = make_source(session, "north").id or 0
        for n, (source_id, priority) in enumerate([(sid, "high"), (sid, "low"), (other, "medium")]):
            put_encounter(session, source_id, f"e{n}", f"p{n}")
            put_risk(session, source_id, f"e{n}", f"p{n}", priority=priority)
    client = api_client(settings)
    assert client.post("/api/v1/cases", json={"source": "city", "encounter": "e0"}).status_code == 201
    client.post("/api/v1/cases", json={"source": "city", "encounter": "e1"})
    client.post("/api/v1/cases", json={"source": "north", "encounter": "e2"})
    body = client.get("/api/v1/cases").json()
    assert (body["total"], body["total_more"], body["next_after"]) == (3, False, None)
    assert [i["priority"] for i in body["items"]] == ["high", "medium", "low"]
    assert client.get("/api/v1/cases?source=north").json()["total"] == 1
    assert client.get("/api/v1/cases?priority=low").json()["items"][0]["encounter"] == "e1"
    first = client.get("/api/v1/cases?limit=1").json()
    page = client.get(f"/api/v1/cases?limit=1&after={first['next_after']}").json()
    assert page["total"] == 3 and [i["priority"] for i in page["items"]] == ["medium"]
    last = client.get(f"/api/v1/cases?limit=1&after={page['next_after']}").json()
    assert [i["priority"] for i in last["items"]] == ["low"] and last["next_after"] is None
    assert client.get("/api/v1/cases?status=closed").json() == {
        "total": 0,
        "total_more": False,
        "items": [],
        "next_after": None,
    }
    for bad in ("status=done", "priority=urgent", "limit=0", "limit=501", "offset=1", "after=nonsense"):
        response = client.get(f"/api/v1/cases?{bad}")
        assert response.status_code == 422 and bad.split("=")[0] in response.text, bad
    assert client.get("/api/v1/cases?source=nowhere").status_code == 404


def test_opening_by_hand_is_201_then_200_and_unknown_admissions_404(engine: Engine, settings: Settings) -> None:
    with session_scope(engine) as session:
        sid = make_source(session).id or 0
        put_encounter(session, sid, "quiet", "p9")  # not flagged: coordinators may still open a case
    client = api_client(settings)
    created = client.post("/api/v1/cases", json={"source": "city", "encounter": "quiet"}, headers={"X-Actor": "anna"})
    assert created.status_code == 201 and created.headers["ETag"] == '"1"'
    body = created.json()
    assert (body["opened_by"], body["opened_by_hand"], body["priority"], body["flags"]) == ("anna", True, None, None)
    assert body["counts"]["tasks"] == {"requested": 1}
    again = client.post("/api/v1/cases", json={"source": "city", "encounter": "quiet"})
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    missing = client.post("/api/v1/cases", json={"source": "city", "encounter": "nope"})
    assert missing.status_code == 404 and "encounter 'nope'" in missing.json()["detail"]
    assert client.post("/api/v1/cases", json={"source": "elsewhere", "encounter": "quiet"}).status_code == 404
    typo = client.post("/api/v1/cases", json={"source": "city", "encountr": "quiet"})
    assert typo.status_code == 422 and "encountr" in typo.text


@time_machine.travel(datetime(2026, 12, 1, 9, 0, tzinfo=UTC), tick=False)  # its dates are absolute (November 2026)
def test_detail_shows_flags_and_patch_assigns_dates_and_closes(engine: Engine, settings: Settings) -> None:
    case_id = seed_case(engine, concepts=("lives_alone", "dementia"))
    with session_scope(engine) as session:  # a case goes only to a coordinator of its hospital
        make_user(session, "anna")
        make_user(session, "bob")
    client = api_client(settings)
    detail = client.get(f"/api/v1/cases/{case_id}")
    body = detail.json()
    assert detail.headers["ETag"] == f'"{body["version"]}"'
    assert body["flags"]["priority"] == "high" and body["flags"]["reasons"][0]["evidence"] == ["Condition/lives_alone"]
    assert (body["source"], body["hospital"], body["encounter_status"]) == ("city", "City Hospital", "in-progress")
    patched = client.patch(
        f"/api/v1/cases/{case_id}",
        json={"coordinator": "anna", "medically_ready_at": "2026-11-02T09:00:00+03:00"},
        headers={"X-Actor": "lead", "If-Match": detail.headers["ETag"]},
    )
    assert patched.status_code == 200
    body = patched.json()
    assert body["coordinator"] == "anna" and body["medically_ready"]["source"] == "person"
    assert body["medically_ready"]["set_by"] == "lead" and body["bed_days_lost"] > 0
    stale = client.patch(f"/api/v1/cases/{case_id}", json={"coordinator": "bob"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 409 and stale.json()["current_version"] == body["version"]
    assert "stale" in stale.json()["detail"]
    for payload, field in [
        ({"coordinater": "x"}, "coordinater"),
        ({"status": "done"}, "status"),
        ({"expected_discharge_at": "next week"}, "expected_discharge_at"),
        ({"expected_discharge_at": "2026-11-05T10:00:00"}, "expected_discharge_at"),
        ({"outcome": "died"}, "outcome"),
        ({"status": "closed"}, "outcome"),
    ]:
        response = client.patch(f"/api/v1/cases/{case_id}", json=payload)
        assert response.status_code == 422 and field in response.text, payload
    assert client.patch(f"/api/v1/cases/{case_id}", json={}, headers={"If-Match": "v1"}).status_code == 422
    closed = client.patch(f"/api/v1/cases/{case_id}", json={"status": "closed", "outcome": "declined"})
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert closed.json()["counts"]["tasks"] == {"cancelled": 1}
    wrong = client.patch(f"/api/v1/cases/{case_id}", json={"status": "cancelled"})
    assert wrong.status_code == 409 and wrong.json()["allowed"] == ["open"]
    locked = client.patch(f"/api/v1/cases/{case_id}", json={"coordinator": "bob"})
    assert locked.status_code == 409 and "closed" in locked.json()["detail"]
    assert client.patch(f"/api/v1/cases/{case_id}", json={"status": "open", "coordinator": "bob"}).status_code == 200
    kinds = [e["kind"] for e in client.get(f"/api/v1/cases/{case_id}/timeline").json()]
    assert kinds == [
        "opened",
        "task_created",
        "assigned",
        "dates_changed",
        "status_changed",
        "status_changed",
        "assigned",
    ]


def test_unknown_ids_are_404_with_what_was_missing(engine: Engine, settings: Settings) -> None:
    seed_case(engine)
    client = api_client(settings)
    for url in (
        "/api/v1/cases/999",
        "/api/v1/cases/999/timeline",
        "/api/v1/cases/999/assessment",
        "/api/v1/cases/999/tasks",
        "/api/v1/cases/999/handoffs",
        "/api/v1/cases/999/barriers",
        "/api/v1/tasks/999",
        "/api/v1/handoffs/999",
        "/api/v1/barriers/999",
    ):
        response = client.get(url)
        assert response.status_code == 404 and response.json()["detail"].endswith("999 not found"), url
    assert client.get("/api/v1/cases/999").json() == {"detail": "case 999 not found"}
    assert client.patch("/api/v1/barriers/999", json={}).status_code == 404
    assert client.get("/api/v1/cases/abc").status_code == 422


def test_assessment_put_needs_a_version_and_records_corrections(engine: Engine, settings: Settings) -> None:
    case_id = seed_case(engine)
    client = api_client(settings)
    url = f"/api/v1/cases/{case_id}/assessment"
    empty = client.get(url)
    assert empty.headers["ETag"] == '"0"' and empty.json()["version"] == 0
    form = {
        "domains": {"social": {"findings": "lives with daughter", "needs": ["day centre"]}},
        "daily_living": {"cook": "needs_help", "manage_money": "independent"},
        "living_situation": {"lives_alone": False, "housing": "own_home"},
    }
    assert client.put(url, json=form).status_code == 428
    saved = client.put(url, json=form, headers={"If-Match": '"0"'})
    assert saved.status_code == 200 and saved.json()["flag_corrections"][0]["concept"] == "lives_alone"
    assert saved.json()["domains"]["social"]["needs"] == ["day centre"]
    stale = client.put(url, json=form, headers={"If-Match": '"0"'})
    assert stale.status_code == 409 and stale.json()["current_version"] == saved.json()["version"]
    for bad, field in [
        ({"daily_living": {"cook": "sometimes"}}, "cook"),
        ({"domains": {"financial": {}}}, "financial"),
        ({"living_situation": {"housing": "tent"}}, "housing"),
    ]:
        response = client.put(url, json={**bad, "version": saved.json()["version"]})
        assert response.status_code == 422 and field in response.text
    corrected = client.post(f"{url}/corrections", json={"concept": "dementia", "correct": False, "note": "no signs"})
    assert corrected.status_code == 201 and len(corrected.json()["flag_corrections"]) == 2
    bad = client.post(f"{url}/corrections", json={"concept": "Dementia!", "correct": False, "note": "x"})
    assert bad.status_code == 422 and "concept" in bad.text
    kinds = [e["kind"] for e in client.get(f"/api/v1/cases/{case_id}/timeline").json()]
    assert kinds.count("flag_corrected") == 2


@time_machine.travel(datetime(2026, 12, 1, 9, 0, tzinfo=UTC), tick=False)  # its dates are absolute (November 2026)
def test_barriers_api(engine: Engine, settings: Settings) -> None:
    case_id = seed_case(engine)
    client = api_client(settings)
    url = f"/api/v1/cases/{case_id}/barriers"
    one = client.post(url, json={"code": "awaiting_placement", "owner": "anna", "started_at": "2026-11-01T08:00:00Z"})
    assert one.status_code == 201 and one.json()["open"] is True and one.json()["delayed_days"] > 0
    client.post(url, json={"code": "documents"})
    assert [b["code"] for b in client.get(url).json()] == ["awaiting_placement", "documents"]
    bid = one.json()["id"]
    ended = client.patch(f"/api/v1/barriers/{bid}", json={"ended_at": "2026-11-03T20:00:00Z"})
    assert ended.status_code == 200 and ended.json()["delayed_days"] == 2.5 and ended.json()["open"] is False
    early = client.patch(f"/api/v1/barriers/{bid}", json={"ended_at": "2026-10-01T00:00:00Z"})
    assert early.status_code == 422 and "ended_at" in early.text
    assert client.patch(f"/api/v1/barriers/{bid}", json={"note": "x"}, headers={"If-Match": '"1"'}).status_code == 409
    bad = client.post(url, json={"code": "bureaucracy"})
    assert bad.status_code == 422 and "code" in bad.text
    client.patch(f"/api/v1/cases/{case_id}", json={"status": "cancelled"})
    assert client.post(url, json={"code": "housing"}).status_code == 409


def test_cases_page_by_cursor_each_exactly_once_and_the_total_stops_at_the_cap(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Paging walks the whole list in order without OFFSET; the total is counted only up to a cap."""
    with session_scope(engine) as session:
        sid = make_source(session).id or 0
        for n in range(7):
            put_encounter(session, sid, f"e{n}", f"p{n}")
            put_risk(session, sid, f"e{n}", f"p{n}", priority=("high", "medium", "low")[n % 3])
    client = api_client(settings)
    for n in range(7):
        assert client.post("/api/v1/cases", json={"source": "city", "encounter": f"e{n}"}).status_code == 201
    whole = [i["id"] for i in client.get("/api/v1/cases?limit=500").json()["items"]]
    monkeypatch.setattr(keyset, "TOTAL_CAP", 4)
    seen: list[int] = []
    url = "/api/v1/cases?limit=3"
    while True:
        body = client.get(url).json()
        assert (body["total"], body["total_more"]) == (4, True)
        seen += [i["id"] for i in body["items"]]
        if body["next_after"] is None:
            break
        url = f"/api/v1/cases?limit=3&after={body['next_after']}"
    assert seen == whole and len(set(seen)) == 7
