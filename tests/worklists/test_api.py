"""GET /api/v1/worklist and GET /api/v1/board: the same filters as the pages, 422 naming a bad
parameter, keyset pages, the caller's hospitals only, and one access-log entry per answer with the
patients it listed. SQLite only: the projections' SQL runs on both databases in the other tests here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from discharge_bridge.access import AccessQuery, search_access
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.risk import loading
from tests.support.factories import user_client
from tests.worklists.test_worklist import NOW, seed

pytestmark = [pytest.mark.clock, pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)]


@pytest.fixture
def ids(engine: Engine, settings: Settings) -> dict[str, int]:
    return seed(engine, loading.rule_set(settings.mappings_dir).version)


@pytest.fixture
def anna(settings: Settings, engine: Engine, ids: dict[str, int]) -> Iterator[TestClient]:
    client = user_client(settings, engine, "anna", sources=("city",))
    with time_machine.travel(NOW, tick=False):
        yield client


def _log(engine: Engine, route: str) -> list[Any]:
    with session_scope(engine) as session:
        return search_access(session, AccessQuery(route=route))


def _encounters(body: dict[str, Any]) -> list[str]:
    return [i["encounter"] for i in body["items"]]


def test_the_worklist_api_searches_filters_and_logs_the_view(
    anna: TestClient, engine: Engine, ids: dict[str, int]
) -> None:
    body = anna.get("/api/v1/worklist", params={"q": "ivanova"}).raise_for_status().json()
    assert _encounters(body) == ["adm1"] and body["total"] == 1
    item = body["items"][0]
    assert (item["name"], item["mrn"], item["sex"], item["age"]) == ("Ivanova Maria Petrovna", "MR-1001", "female", 86)
    assert item["length_of_stay_days"] == 24 and item["case"]["coordinator"] == "anna"
    assert "source_id" not in item  # the database's id stays inside; the source is named
    entries = _log(engine, "api.worklist")
    assert len(entries) == 1 and entries[0].username == "anna"
    assert entries[0].patients == ((ids["city"], "p1"),)  # the patient shown, never the other Ivanovas

    assert _encounters(anna.get("/api/v1/worklist", params={"q": "MR-2002"}).json()) == ["adm2"]
    assert _encounters(anna.get("/api/v1/worklist", params={"ward": "Surgery 2", "sort": "name"}).json()) == [
        "adm4",
        "adm2",
    ]
    assert _encounters(anna.get("/api/v1/worklist", params={"unassigned": "true"}).json()) == ["adm4", "adm3"]
    assert _encounters(anna.get("/api/v1/worklist", params={"due": "week", "status": "open"}).json()) == [
        "adm4",
        "adm2",
    ]
    assert _encounters(anna.get("/api/v1/worklist", params={"rule": "dementia"}).json()) == ["adm2"]
    counted = anna.get("/api/v1/worklist", params={"counts": "true", "coordinator": "anna"}).json()
    assert _encounters(counted) == ["adm1", "adm5"] and counted["counts"]["unassigned"] == 2
    assert len(_log(engine, "api.worklist")) == 7


def test_the_worklist_api_pages_by_keyset(anna: TestClient) -> None:
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2, "sort": "stay"}
    while True:
        body = anna.get("/api/v1/worklist", params=params).raise_for_status().json()
        seen += _encounters(body)
        if body["next_after"] is None:
            break
        params["after"] = body["next_after"]
    assert seen == ["adm1", "adm5", "adm2", "adm4", "adm3"]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"sort": "age"}, "sort"),
        ({"priority": "urgent"}, "priority"),
        ({"status": "done"}, "status"),
        ({"due": "tomorrow"}, "due"),
        ({"limit": "0"}, "limit"),
        ({"q": "a b c d e f g"}, "q"),
        ({"after": "not-a-cursor"}, "after"),
        ({"coordinator": "anna", "unassigned": "true"}, "coordinator"),
        ({"offset": "25"}, "offset"),  # pages go by keyset now: an offset would be quietly ignored
        ({"wards": "Surgery 2"}, "wards"),  # a misspelt filter must not return everything
    ],
)
def test_bad_worklist_parameters_are_422_naming_them(anna: TestClient, params: dict[str, str], param: str) -> None:
    response = anna.get("/api/v1/worklist", params=params)
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [["query", param]]


def test_a_cursor_of_another_sort_is_refused(anna: TestClient) -> None:
    cursor = anna.get("/api/v1/worklist", params={"limit": 1}).json()["next_after"]
    refused = anna.get("/api/v1/worklist", params={"after": cursor, "sort": "due"})
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["query", "after"]


def test_other_hospitals_are_not_found_and_not_listed(anna: TestClient, engine: Engine) -> None:
    assert anna.get("/api/v1/worklist", params={"source": "north"}).status_code == 404
    assert "adm9" not in _encounters(anna.get("/api/v1/worklist", params={"q": "ivanova elena"}).json())
    assert _log(engine, "api.worklist") == []  # nothing shown, nothing logged


def test_the_board_api_lists_every_inpatient_with_totals_and_logs_the_view(
    settings: Settings, engine: Engine, ids: dict[str, int]
) -> None:
    boris = user_client(settings, engine, "boris", role="bed_manager", sources=("city",))
    with time_machine.travel(NOW, tick=False):
        body = boris.get("/api/v1/board").raise_for_status().json()
        surgery = boris.get("/api/v1/board", params={"ward": "Surgery 2", "destination": "none"}).json()
        bad = [boris.get("/api/v1/board", params=p) for p in ({"status": "soon"}, {"destination": "moon"}, {"x": "1"})]
        foreign = boris.get("/api/v1/board", params={"hospital": "north"})
    rows = {r["encounter"]: r for r in body["rows"]}
    # Every current inpatient of the city: the flagged five (a closed case's patient is still in a bed)
    # and the unflagged one; not the stay that ended, nor north's.
    assert sorted(rows) == ["adm1", "adm2", "adm3", "adm4", "adm5", "adm6"]
    assert rows["adm6"]["case_id"] is None and rows["adm6"]["name"] == "Ivanova Olga"
    assert rows["adm1"]["mrn"] == "MR-1001" and rows["adm1"]["readiness"] == "undated"
    assert body["totals"]["in_bed"] == 6 and not body["truncated"]
    assert [(g["key"], g["in_bed"]) for g in body["by_ward"]] == [("Surgery 2", 2), ("Therapy 3", 4)]
    assert [(g["key"], g["in_bed"]) for g in body["by_destination"]] == [("none", 6)]
    assert [r["encounter"] for r in surgery["rows"]] == ["adm2", "adm4"]
    assert [b.status_code for b in bad] == [422, 422, 422]
    assert [b.json()["detail"][0]["loc"] for b in bad] == [
        ["query", "status"],
        ["query", "destination"],
        ["query", "x"],
    ]
    assert foreign.status_code == 404
    entries = _log(engine, "api.board")
    assert [len(e.patients) for e in entries] == [2, 6]  # newest first: the Surgery 2 call, then the whole board
    assert set(entries[1].patients) == {(ids["city"], p) for p in ("p1", "p2", "p3", "p4", "p5", "p6")}


def test_the_board_api_is_for_those_who_may_view_the_board(
    settings: Settings, engine: Engine, ids: dict[str, int]
) -> None:
    irina = user_client(settings, engine, "irina", role="it_admin", sources=("city",))
    assert irina.get("/api/v1/board").status_code == 403
    assert irina.get("/api/v1/worklist").status_code == 403
