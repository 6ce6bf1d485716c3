"""Services delivered: the catalogue, recording and striking out (with their case events), the API
(a case's list, the city-wide list by id), and the psychologist who sees only cases referred to one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from discharge_bridge.access.models import AccessLogEntry, AccessLogPatient
from discharge_bridge.cases.delivered.catalogue import catalogue, kind_for_category
from discharge_bridge.cases.delivered.repository import DeliveredQuery, search_delivered
from discharge_bridge.cases.delivered.service import AlreadyStruck, record_service, strike_service
from discharge_bridge.cases.errors import InvalidInput
from discharge_bridge.cases.models import CaseEvent
from discharge_bridge.cases.referrals.service import move_referral
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.directory.models import ServiceCategory
from discharge_bridge.users.roles import Role
from tests.support.factories import api_client, flagged_case, make_source, put_encounter, user_client
from tests.support.network import directory_service, refer

NOW = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)


def test_the_catalogue_labels_every_kind_in_both_languages_and_ties_categories() -> None:
    entries = catalogue()
    codes = [e.code for e in entries]
    for wanted in ("consultation", "document_filed", "my_documents_application", "relatives_found"):
        assert wanted in codes
    assert {"referral_made", "psychologist_session", "home_visit", "legal_consultation"} <= set(codes)
    assert {"benefit_application", "guardianship_application", "transport_arranged"} <= set(codes)
    assert all(e.labels["en"] and e.labels["ru"] and e.labels["en"] != e.labels["ru"] for e in entries)
    assert all(e.roles for e in entries)
    session_kind = kind_for_category(ServiceCategory.psychologist)
    assert session_kind is not None and session_kind.code == "psychologist_session"
    assert kind_for_category(ServiceCategory.other) is None


@pytest.mark.clock
def test_recording_and_striking_write_events_and_struck_rows_are_not_counted(engine: Engine) -> None:
    with time_machine.travel(NOW, tick=False), session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        row = record_service(
            session, case, kind="consultation", delivered_at=NOW - timedelta(hours=2), actor="anna", role="coordinator"
        )
        other = record_service(
            session, case, kind="document_filed", delivered_at=None, actor="anna", role="coordinator"
        )
        assert (row.delivered_at, row.delivered_by, row.role, other.delivered_at) == (
            NOW - timedelta(hours=2),
            "anna",
            "coordinator",
            NOW,
        )
        strike_service(session, row, actor="boris")
        assert (row.cancelled_at, row.cancelled_by) == (NOW, "boris")
        with pytest.raises(AlreadyStruck):
            strike_service(session, row, actor="boris")
        counted = search_delivered(session, DeliveredQuery())
        assert [r.id for r, _ in counted] == [other.id]
        everything = search_delivered(session, DeliveredQuery(include_struck=True))
        assert [r.id for r, _ in everything] == [row.id, other.id]
        events = session.exec(
            select(CaseEvent).where(col(CaseEvent.kind).in_(["service_recorded", "service_struck"]))
        ).all()
        assert [(e.kind, e.actor, e.data.get("kind")) for e in events] == [
            ("service_recorded", "anna", "consultation"),
            ("service_recorded", "anna", "document_filed"),
            ("service_struck", "boris", "consultation"),
        ]


@pytest.mark.clock
def test_recording_refuses_naming_the_field(engine: Engine) -> None:
    with time_machine.travel(NOW, tick=False), session_scope(engine) as session:
        source_id = make_source(session).id or 0
        case = flagged_case(session, source_id)
        other = flagged_case(session, source_id, "adm2", "p2")
        service = directory_service(session, "legal", ServiceCategory.legal_aid)
        foreign = refer(session, other, service)
        attempts: list[tuple[dict[str, Any], str]] = [
            ({"kind": "teleportation"}, "kind"),
            ({"kind": "psychologist_session", "role": Role.coordinator}, "kind"),  # a psychologist's kind
            ({"kind": "consultation", "delivered_at": NOW + timedelta(hours=1)}, "delivered_at"),
            ({"kind": "consultation", "referral_id": foreign.id}, "referral_id"),
        ]
        for values, field in attempts:
            args: dict[str, Any] = {"delivered_at": None, "role": Role.coordinator, **values}
            with pytest.raises(InvalidInput) as refused:
                record_service(session, case, actor="anna", **args)
            assert refused.value.loc == ("body", field), values


@pytest.mark.clock
def test_the_api_records_lists_strikes_and_pages_the_city_list(engine: Engine, settings: Settings) -> None:
    with time_machine.travel(NOW, tick=False):
        with session_scope(engine) as session:
            source_id = make_source(session).id or 0
            case = flagged_case(session, source_id)
            case_id = case.id
        client = api_client(settings)
        url = f"/api/v1/cases/{case_id}/services"
        made = []
        for kind, hours in [("consultation", 30), ("my_documents_application", 20), ("consultation", 1)]:
            at = (NOW - timedelta(hours=hours)).isoformat()
            response = client.post(url, json={"kind": kind, "delivered_at": at, "note": "done"})
            assert response.status_code == 201, response.text
            made.append(response.json())
        assert made[1]["label"] == "Application to My Documents" and made[1]["struck"] is False
        bad = client.post(url, json={"kind": "nothing_at_all"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "kind"]
        extra = client.post(url, json={"kind": "consultation", "who": "x"})
        assert extra.status_code == 422
        struck = client.post(f"/api/v1/services-delivered/{made[0]['id']}/strike")
        assert struck.status_code == 200 and struck.json()["struck"] is True
        again = client.post(f"/api/v1/services-delivered/{made[0]['id']}/strike")
        assert again.status_code == 409
        assert client.post("/api/v1/services-delivered/999999/strike").status_code == 404
        listed = client.get(url).json()
        assert [(r["kind"], r["struck"]) for r in listed] == [
            ("consultation", True),
            ("my_documents_application", False),
            ("consultation", False),
        ]
        first = client.get("/api/v1/services-delivered", params={"limit": 1}).json()
        assert [r["id"] for r in first["items"]] == [made[1]["id"]] and first["next_after"] == made[1]["id"]
        second = client.get("/api/v1/services-delivered", params={"limit": 1, "after": first["next_after"]}).json()
        assert [r["id"] for r in second["items"]] == [made[2]["id"]]
        since = (NOW - timedelta(hours=2)).isoformat()
        recent = client.get("/api/v1/services-delivered", params={"since": since, "kind": "consultation"}).json()
        assert [r["id"] for r in recent["items"]] == [made[2]["id"]] and recent["next_after"] is None
        city = client.get("/api/v1/services-delivered", params={"source": "city"}).json()
        assert len(city["items"]) == 2
        assert client.get("/api/v1/services-delivered", params={"source": "nowhere"}).status_code == 404
        catalogue_rows = client.get("/api/v1/services-delivered/catalogue").json()
        assert {"code", "labels", "roles", "categories"} <= set(catalogue_rows[0])


@pytest.mark.clock
def test_a_psychologist_sees_only_cases_referred_to_a_psychologist(engine: Engine, settings: Settings) -> None:
    with time_machine.travel(NOW, tick=False):
        with session_scope(engine) as session:
            source_id = make_source(session).id or 0
            referred = flagged_case(session, source_id, "adm1", "p1")
            put_encounter(session, source_id, "adm1", "p1", person={"name": [{"text": "Olga Smirnova"}]})
            other = flagged_case(session, source_id, "adm2", "p2")
            declined = flagged_case(session, source_id, "adm3", "p3")
            psych = directory_service(session, "psy", ServiceCategory.psychologist)
            refer(session, referred, psych, reason="grief after the loss of a spouse")
            gone = refer(session, declined, psych)
            move_referral(session, gone, "rejected", actor="rita", reason="no places")
            ids = referred.id, other.id, declined.id
        client = user_client(settings, engine, "pavel", role="psychologist")
        listed = client.get("/api/v1/psychology/cases")
        assert listed.status_code == 200
        rows = listed.json()["items"]
        assert [(r["case_id"], r["name"], r["reason"]) for r in rows] == [
            (ids[0], "Olga Smirnova", "grief after the loss of a spouse")
        ]
        assert "birth" not in listed.text
        assert client.get(f"/api/v1/cases/{ids[1]}/services").status_code == 404  # no such referral
        assert client.get(f"/api/v1/cases/{ids[2]}/services").status_code == 404  # rejected: gone
        assert client.get(f"/api/v1/cases/{ids[0]}").status_code == 403  # not the full case
        session_row = client.post(f"/api/v1/cases/{ids[0]}/services", json={"kind": "psychologist_session"})
        assert session_row.status_code == 201 and session_row.json()["role"] == "psychologist"
        not_theirs = client.post(f"/api/v1/cases/{ids[0]}/services", json={"kind": "relatives_found"})
        assert not_theirs.status_code == 422 and not_theirs.json()["detail"][0]["loc"] == ["body", "kind"]
        assert client.get(f"/api/v1/cases/{ids[0]}/services").status_code == 200
        coordinators = api_client(settings).post(f"/api/v1/cases/{ids[0]}/services", json={"kind": "consultation"})
        assert client.post(f"/api/v1/services-delivered/{coordinators.json()['id']}/strike").status_code == 404
        own = client.post(f"/api/v1/services-delivered/{session_row.json()['id']}/strike")
        assert own.status_code == 200 and own.json()["struck"] is True
    with session_scope(engine) as session:
        entry = session.exec(select(AccessLogEntry).where(AccessLogEntry.username == "pavel")).one()
        shown = session.exec(select(AccessLogPatient).where(AccessLogPatient.entry_id == entry.id)).all()
        assert (entry.route, [(p.source_id, p.patient_fhir_id) for p in shown]) == (
            "api.psychology.cases",
            [(source_id, "p1")],
        )
