"""The figures and the situation report over HTTP: shapes, scoping to the caller's hospitals, the
field named by a 422, the CSVs, and who may read them. The known answers are tests/worklists'."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from discharge_bridge.app import create_app
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.directory.models import Organisation
from discharge_bridge.users.service import issue_token
from tests.support.factories import make_user, user_client
from tests.worklists.city_fixture import City, seed_city

pytestmark = [pytest.mark.clock, pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)]
PERIOD = {"from": "2026-11-23", "to": "2026-12-06"}


@pytest.fixture
def city(engine: Engine) -> City:
    return seed_city(engine)


@pytest.fixture
def anna(settings: Settings, engine: Engine, city: City) -> TestClient:
    """A coordinator of "city" only."""
    return user_client(settings, engine, "anna-c", role="coordinator", sources=("city",))


def _detail(response: Any) -> list[Any]:
    assert response.status_code == 422, response.text
    return [d["loc"] for d in response.json()["detail"]]


def test_figures_shape_and_scope(anna: TestClient) -> None:
    body = anna.get("/api/v1/figures", params={**PERIOD, "group": "hospital"}).json()
    assert body["period"] == {"start": "2026-11-23", "end": "2026-12-06"}
    assert body["grouping"] == "hospital"
    durations = {f["name"]: f for f in body["durations"]}
    assert list(durations) == ["flag_to_first_visit", "flag_to_plan", "flag_to_handoff", "ready_to_discharge"]
    first = durations["flag_to_first_visit"]
    assert first["unit"] == "hours"
    assert first["groups"] == [{"group": "city", "cohort": 3, "count": 2, "median": 2.0, "p90": 4.0}]
    assert first["total"] == {"group": None, "cohort": 3, "count": 2, "median": 2.0, "p90": 4.0}
    # Nothing of "north" (or "other"): not a group, not in the totals, not a referral or a response.
    groups = {g["group"] for f in body["durations"] for g in f["groups"]}
    groups |= {r["group"] for r in body["referrals"]} | {d["group"] for d in body["delivered"]}
    assert groups == {"city"}
    assert body["bed_days_total"] == {"group": None, "discharged": 4, "bed_days_lost": 8.0}
    assert body["responses"] == [
        {"organisation": "fund", "name": "Helping Hand Fund", "requested": 2, "answered": 1,
         "median_hours": 24.0, "p90_hours": 24.0},
        {"organisation": "homecare", "name": "City Home Care", "requested": 1, "answered": 1,
         "median_hours": 6.0, "p90_hours": 6.0},
    ]  # fmt: skip
    assert body["people_total"] == 2
    assert list(body["hospitals"].values()) == ["city"]
    text = anna.get("/api/v1/figures.csv", params=PERIOD).text + str(body)
    assert "p-A" not in text and "enc-A" not in text  # counts only: no patient or admission is named


def test_figures_of_a_hospital_not_yours(anna: TestClient) -> None:
    assert anna.get("/api/v1/figures", params={**PERIOD, "source": "north"}).status_code == 404
    assert anna.get("/api/v1/figures.csv", params={**PERIOD, "source": "north"}).status_code == 404
    assert anna.get("/api/v1/sitrep", params={"source": "north", "date": "2026-12-03"}).status_code == 404


def test_admin_sees_every_hospital(settings: Settings, engine: Engine, city: City) -> None:
    admin = user_client(settings, engine, "root", role="admin")
    body = admin.get("/api/v1/figures", params={**PERIOD, "group": "hospital"}).json()
    first = {f["name"]: f for f in body["durations"]}["flag_to_first_visit"]
    assert [g["group"] for g in first["groups"]] == ["city", "north", "other"]
    one = admin.get("/api/v1/figures", params={**PERIOD, "source": "north"}).json()
    assert {g["group"] for f in one["durations"] for g in f["groups"]} == {"north"}


def test_grouping_by_coordinator_and_week(anna: TestClient) -> None:
    body = anna.get("/api/v1/figures", params={**PERIOD, "group": "week"}).json()
    first = {f["name"]: f for f in body["durations"]}["flag_to_first_visit"]
    assert [(g["group"], g["cohort"]) for g in first["groups"]] == [("2026-W48", 1), ("2026-W49", 2)]
    body = anna.get("/api/v1/figures", params={**PERIOD, "group": "coordinator"}).json()
    assert [(d["group"], d["kind"], d["count"]) for d in body["delivered"]] == [
        ("anna", "consultation", 2),
        ("boris", "document_filed", 1),
    ]


def test_bad_input_names_the_field(anna: TestClient) -> None:
    assert _detail(anna.get("/api/v1/figures", params={"from": "2026-13-01"})) == [["query", "from"]]
    assert _detail(anna.get("/api/v1/figures", params={"from": "2026-12-06", "to": "2026-11-23"})) == [["query", "to"]]
    assert _detail(anna.get("/api/v1/figures", params={"from": "2024-01-01", "to": "2026-12-06"})) == [["query", "to"]]
    assert _detail(anna.get("/api/v1/figures", params={"from": "1066-10-14", "to": "1066-10-20"})) == [
        ["query", "from"],
        ["query", "to"],
    ]
    assert _detail(anna.get("/api/v1/figures", params={**PERIOD, "group": "month"})) == [["query", "group"]]
    assert _detail(anna.get("/api/v1/figures", params={**PERIOD, "hospital": "city"})) == [["query", "hospital"]]
    assert _detail(anna.get("/api/v1/figures.csv", params={"to": "yesterday"})) == [["query", "to"]]
    assert _detail(anna.get("/api/v1/sitrep", params={"date": "2026-12-03"})) == [["query", "source"]]
    assert _detail(anna.get("/api/v1/sitrep", params={"source": "city", "date": "3.12.2026"})) == [["query", "date"]]
    assert _detail(anna.get("/api/v1/sitrep.csv", params={"source": "city", "date": "0999-12-03"})) == [
        ["query", "date"]
    ]


def test_default_period_is_the_last_four_weeks(anna: TestClient) -> None:
    with time_machine.travel(datetime(2026, 12, 6, 12, 0, tzinfo=UTC), tick=False):
        body = anna.get("/api/v1/figures").json()
    assert body["period"] == {"start": "2026-11-09", "end": "2026-12-06"}
    assert body["grouping"] == "hospital"


def test_figures_csv(anna: TestClient) -> None:
    response = anna.get("/api/v1/figures.csv", params={**PERIOD, "group": "hospital"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "figures-hospital-2026-11-23-2026-12-06.csv" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["figure", "group", "detail", "measure", "value"]
    assert ["flag_to_first_visit", "city", "", "cohort", "3"] in rows
    assert ["flag_to_first_visit", "all", "", "median_hours", "2.0"] in rows
    assert ["bed_days_lost", "all", "", "days", "8.0"] in rows
    assert ["referrals", "city", "charity/rejected", "count", "1"] in rows
    assert ["response_time", "fund", "", "answered", "1"] in rows
    assert ["services_delivered", "city", "consultation", "people", "1"] in rows
    assert ["people_served", "all", "", "people", "2"] in rows
    assert not [r for r in rows[1:] if r[1] in ("north", "other")]


def test_sitrep_json_and_csv(anna: TestClient) -> None:
    day = {"source": "city", "date": "2026-11-27"}
    body = anna.get("/api/v1/sitrep", params=day).json()
    assert (body["source"], body["hospital"], body["day"]) == ("city", "City Hospital", "2026-11-27")
    assert body["census_at"].startswith("2026-11-27T21:00:00")  # midnight in Moscow
    assert body["ready_not_discharged"] == 1  # case A of the fixture: ready on the 26th, left on the 28th
    assert body["by_reason"]["none_recorded"] == 1
    assert body["by_destination"] == {"home_with_care": 1}
    assert (body["delayed_7_plus"], body["delayed_21_plus"]) == (0, 0)
    assert (body["discharged"], body["discharged_by_destination"]) == (0, {})
    response = anna.get("/api/v1/sitrep.csv", params=day)
    assert response.headers["content-type"].startswith("text/csv")
    assert "sitrep-city-2026-11-27.csv" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["hospital", "date", "census_at", "section", "item", "patients"]
    assert rows[1][:2] == ["city", "2026-11-27"]
    cells = [r[3:] for r in rows[1:]]
    assert cells[:2] == [["ready_not_discharged", "total", "1"], ["delay_reason", "awaiting_assessment", "0"]]
    assert ["destination", "home_with_care", "1"] in cells
    assert ["discharged", "total", "0"] in cells


def test_sitrep_default_day_is_yesterday(anna: TestClient) -> None:
    with time_machine.travel(datetime(2026, 12, 4, 22, 0, tzinfo=UTC), tick=False):  # 01:00 on the 5th in Moscow
        body = anna.get("/api/v1/sitrep", params={"source": "city"}).json()
    assert body["day"] == "2026-12-04"


@pytest.mark.parametrize("role", ["it_admin", "psychologist", "receiver"])
def test_roles_without_figures(settings: Settings, engine: Engine, city: City, role: str) -> None:
    with session_scope(engine) as session:
        org = session.exec(select(Organisation).where(Organisation.code == "homecare")).one()
        extra: dict[str, Any] = {"organisation_id": org.id, "sources": ()} if role == "receiver" else {}
        make_user(session, f"u-{role}", role, **extra)
        token = issue_token(session, f"u-{role}", "tests")
    client = TestClient(create_app(settings), headers={"Authorization": f"Bearer {token}"})
    paths = ("/api/v1/figures", "/api/v1/figures.csv", "/api/v1/sitrep?source=city", "/api/v1/sitrep.csv?source=city")
    for path in paths:
        assert client.get(path).status_code == 403, path


def test_bed_manager_reads_them(settings: Settings, engine: Engine, city: City) -> None:
    client = user_client(settings, engine, "bm", role="bed_manager", sources=("city", "north"))
    assert client.get("/api/v1/figures", params=PERIOD).status_code == 200
    assert client.get("/api/v1/sitrep", params={"source": "north", "date": "2026-12-03"}).status_code == 200


def test_openapi_describes_the_figures(anna: TestClient) -> None:
    spec = anna.get("/openapi.json").json()
    figures = spec["paths"]["/api/v1/figures"]["get"]
    assert {p["name"] for p in figures["parameters"]} == {"from", "to", "group", "source"}
    group = next(p for p in figures["parameters"] if p["name"] == "group")
    assert spec["components"]["schemas"]["Grouping"]["enum"] == ["hospital", "ward", "coordinator", "week"]
    assert "#/components/schemas/Grouping" in str(group["schema"])
    body = figures["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(spec["components"]["schemas"][body]["properties"]) >= {
        "period", "grouping", "durations", "bed_days", "referrals", "responses", "delivered", "people",
    }  # fmt: skip
    sitrep = spec["paths"]["/api/v1/sitrep"]["get"]
    assert {p["name"]: p["required"] for p in sitrep["parameters"]} == {"source": True, "date": False}
    assert {"/api/v1/figures.csv", "/api/v1/sitrep.csv"} <= set(spec["paths"])
