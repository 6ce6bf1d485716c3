"""CDS Hooks calls over HTTP (JWK Set served by respx): cards field by field, refusals, no leak across hospitals."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
import time_machine
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from discharge_bridge.access.models import AccessLogEntry, AccessLogPatient
from discharge_bridge.app import create_app
from discharge_bridge.cases.barriers import add_barrier
from discharge_bridge.cases.handoffs.models import DestinationType, Handoff, HandoffStatus
from discharge_bridge.cases.handoffs.service import create_handoff
from discharge_bridge.cases.models import Barrier, BarrierCode, Case, CaseStatus, Priority
from discharge_bridge.cases.tasks.models import Task, TaskDomain, TaskStatus
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.ehr.cds.auth import JWKS
from discharge_bridge.ehr.cds.discovery import ENCOUNTER_DISCHARGE, PATIENT_VIEW
from discharge_bridge.sources.models import Source
from discharge_bridge.users.models import User
from tests.ehr.cds_support import (
    B_JWKS,
    B_KEY,
    EHR_JWKS,
    ISSUER,
    ISSUER_B,
    JWKS_URL,
    JWKS_URL_B,
    SERVER,
    configure,
    token,
    url,
)
from tests.support.factories import flagged_case, make_source, make_user

pytestmark = pytest.mark.clock

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
DUE = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@dataclass
class World:
    client: TestClient
    engine: Engine
    settings: Settings
    city_case: int
    north_case: int


@pytest.fixture
def world(settings: Settings, engine: Engine) -> Iterator[World]:
    """City (issuer A) and North (issuer B) hospitals, each with an open case of a patient "p1" (the same
    FHIR id in both EHRs); city's is high priority, coordinated by Anna Petrova, with one open task."""
    with time_machine.travel(NOW, tick=False):
        with session_scope(engine) as session:
            city = make_source(session, "city")
            configure(session, city)
            north = make_source(session, "north")
            configure(session, north, ISSUER_B, JWKS_URL_B)
            make_user(session, "anna", sources=("city",))
            anna = session.exec(select(User).where(User.username == "anna")).one()
            anna.display_name = "Anna Petrova"
            case = flagged_case(session, city.id or 0, "adm1", "p1", concepts=("lives_alone", "dementia"))
            case.coordinator = "anna"
            for task in session.exec(select(Task).where(Task.case_id == case.id)):
                task.status = TaskStatus.completed  # the first visit is done
            session.add(
                Task(
                    case_id=case.id or 0, domain=TaskDomain.social, description="Call the daughter [urgent]", due_at=DUE
                )
            )
            other = flagged_case(session, north.id or 0, "adm-n", "p1", priority="medium")
            city_case, north_case = case.id or 0, other.id or 0
        JWKS.clear()
        with respx.mock(assert_all_called=False) as mock:
            mock.get(JWKS_URL).mock(return_value=httpx.Response(200, json=EHR_JWKS))
            mock.get(JWKS_URL_B).mock(return_value=httpx.Response(200, json=B_JWKS))
            client = TestClient(create_app(settings), raise_server_exceptions=False)
            yield World(client, engine, settings, city_case, north_case)
        JWKS.clear()


# The spec's patient-view example request (Calling a CDS Service), with our prefetch keys and this EHR's ids.
PATIENT_VIEW_REQUEST: dict[str, Any] = {
    "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
    "fhirServer": "http://hooks.smarthealthit.org:9080",
    "hook": "patient-view",
    "fhirAuthorization": {
        "access_token": "some-opaque-fhir-access-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/Patient.read patient/Observation.read",
        "subject": "cds-service4",
    },
    "context": {"userId": "Practitioner/example", "patientId": "p1", "encounterId": "adm1"},
    "prefetch": {
        "patient": {
            "resourceType": "Patient",
            "gender": "male",
            "birthDate": "1925-12-23",
            "id": "p1",
            "active": True,
            "name": [{"family": "Watts", "given": ["Wade"]}],
        },
        "encounter": {
            "resourceType": "Encounter",
            "id": "adm1",
            "status": "in-progress",
            "subject": {"reference": "Patient/p1"},
        },
    },
}
# The hook library's encounter-discharge example context (userId, patientId, encounterId), with ours.
DISCHARGE_REQUEST: dict[str, Any] = {
    "hookInstance": "5f0d8b65-4bd4-4c1c-b5fe-1e1a3c9e6a11",
    "hook": "encounter-discharge",
    "context": {"userId": "PractitionerRole/A2340113", "patientId": "p1", "encounterId": "adm1"},
}


def call(w: World, service: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
    raw = token(NOW, url(service), **kw)
    return w.client.post(f"/cds-services/{service}", json=body, headers={"Authorization": f"Bearer {raw}"})


def without_prefetch(body: dict[str, Any]) -> dict[str, Any]:
    trimmed = copy.deepcopy(body)
    for key in ("prefetch", "fhirServer", "fhirAuthorization"):
        trimmed.pop(key, None)
    return trimmed


@pytest.mark.parametrize(
    "body", [PATIENT_VIEW_REQUEST, without_prefetch(PATIENT_VIEW_REQUEST)], ids=["prefetch", "none"]
)
def test_patient_view_card_field_by_field(world: World, body: dict[str, Any]) -> None:
    with time_machine.travel(NOW, tick=False):
        response = call(world, PATIENT_VIEW, body)
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    assert len(cards) == 1
    card = cards[0]
    assert set(card) == {"uuid", "summary", "indicator", "detail", "source", "links"}
    assert card["summary"] == "Social coordination: high priority, coordinator Anna Petrova"
    assert len(card["summary"]) < 140
    assert card["indicator"] == "warning"
    assert card["source"] == {"label": "discharge_bridge", "url": f"{SERVER}/"}
    assert card["links"] == [
        {"label": "Open the coordination case", "url": f"{SERVER}/cases/{world.city_case}", "type": "absolute"}
    ]
    assert card["detail"].splitlines() == [
        "**Why flagged**",
        "- lives\\_alone",
        "- dementia",
        "",
        "**Next task:** Call the daughter \\[urgent\\] (due 2026-11-21)",
    ]
    text = response.text
    for phi in ("Watts", "Wade", "1925-12-23", "1940-03-02"):  # names and birth dates, ours or the EHR's
        assert phi not in text


def test_medium_priority_is_info_and_a_smart_link_comes_with_smart_launch(world: World) -> None:
    with session_scope(world.engine) as session:
        case = session.get(Case, world.city_case)
        assert case is not None
        case.priority = Priority.medium
        source = session.exec(select(Source).where(Source.name == "city")).one()
        source.smart_launch = {"client_id": "bridge-app", "scope": "launch openid fhirUser patient/*.rs"}
    with time_machine.travel(NOW, tick=False):
        card = call(world, PATIENT_VIEW, PATIENT_VIEW_REQUEST).json()["cards"][0]
    assert card["indicator"] == "info"
    assert card["summary"] == "Social coordination: medium priority, coordinator Anna Petrova"
    assert card["links"][1] == {
        "label": "Open the coordination case (inside the EHR)",
        "url": f"{SERVER}/launch",
        "type": "smart",
    }


def test_no_open_case_no_card_and_a_case_of_another_hospital_never_leaks(world: World) -> None:
    body = without_prefetch(PATIENT_VIEW_REQUEST)
    body["context"] = {"userId": "Practitioner/example", "patientId": "p2"}
    with time_machine.travel(NOW, tick=False):
        assert call(world, PATIENT_VIEW, body).json() == {"cards": []}
        # North's EHR asks about its own p1: North's case, never City's (same FHIR id in both EHRs)
        north = without_prefetch(PATIENT_VIEW_REQUEST)
        north["context"] = {"userId": "Practitioner/n", "patientId": "p1"}
        cards = call(world, PATIENT_VIEW, north, key=B_KEY, kid="north-1", iss=ISSUER_B).json()["cards"]
    assert [c["links"][0]["url"] for c in cards] == [f"{SERVER}/cases/{world.north_case}"]
    assert cards[0]["summary"] == "Social coordination: medium priority, coordinator not assigned"
    assert cards[0]["indicator"] == "info"
    # and with City's admission id, North's issuer gets nothing
    with time_machine.travel(NOW, tick=False):
        assert call(world, ENCOUNTER_DISCHARGE, DISCHARGE_REQUEST, key=B_KEY, kid="north-1", iss=ISSUER_B).json() == {
            "cards": []
        }


def test_a_closed_case_gives_no_card(world: World) -> None:
    with session_scope(world.engine) as session:
        case = session.get(Case, world.city_case)
        assert case is not None
        case.status = CaseStatus.closed
    with time_machine.travel(NOW, tick=False):
        assert call(world, PATIENT_VIEW, PATIENT_VIEW_REQUEST).json() == {"cards": []}


def test_encounter_discharge_without_a_handoff_warns(world: World) -> None:
    with time_machine.travel(NOW, tick=False):
        response = call(world, ENCOUNTER_DISCHARGE, DISCHARGE_REQUEST)
    assert response.status_code == 200, response.text
    [card] = response.json()["cards"]
    assert card["summary"] == "Social discharge not ready: handoff not complete"
    assert card["indicator"] == "warning"
    assert card["source"]["label"] == "discharge_bridge"
    assert card["detail"].splitlines() == ["**Handoff:** no handoff arranged", "", "**Coordinator:** Anna Petrova"]
    assert card["links"] == [
        {"label": "Act on the coordination case", "url": f"{SERVER}/cases/{world.city_case}", "type": "absolute"}
    ]


def test_encounter_discharge_lists_open_barriers_and_missing_documents(world: World) -> None:
    with time_machine.travel(NOW, tick=False), session_scope(world.engine) as session:
        case = session.get(Case, world.city_case)
        assert case is not None
        handoff = create_handoff(
            session,
            case,
            actor="anna",
            destination_type=DestinationType.relatives,
            mappings_dir=world.settings.mappings_dir,
        )
        handoff.documents = [dict(d, done=d["code"] == "passport") for d in handoff.documents]
        add_barrier(session, case, actor="anna", code=BarrierCode.awaiting_equipment, owner="Social services")
    with time_machine.travel(NOW, tick=False):
        [card] = call(world, ENCOUNTER_DISCHARGE, DISCHARGE_REQUEST).json()["cards"]
    assert card["summary"] == "Social discharge not ready: handoff not complete, 1 barrier open, 2 documents missing"
    assert card["detail"].splitlines() == [
        "**Handoff:** relatives: proposed",
        "",
        "**Open barriers**",
        "- awaiting equipment",
        "",
        "**Documents missing**",
        "- Written consent of the receiving relatives",
        "- Medical report for social services \\(form 027/u\\)",
        "",
        "**Coordinator:** Anna Petrova",
    ]


def test_encounter_discharge_all_in_order_gives_no_card(world: World) -> None:
    with time_machine.travel(NOW, tick=False), session_scope(world.engine) as session:
        case = session.get(Case, world.city_case)
        assert case is not None
        handoff = create_handoff(
            session,
            case,
            actor="anna",
            destination_type=DestinationType.relatives,
            mappings_dir=world.settings.mappings_dir,
        )
        handoff.status = HandoffStatus.completed
        handoff.documents = [dict(d, done=True) for d in handoff.documents]
        ended = add_barrier(session, case, actor="anna", code=BarrierCode.housing)
        ended.ended_at = NOW
        # a later handoff that was cancelled (another destination tried first) does not count
        session.add(
            Handoff(case_id=case.id or 0, destination_type=DestinationType.hospice, status=HandoffStatus.cancelled)
        )
    with time_machine.travel(NOW, tick=False):
        assert call(world, ENCOUNTER_DISCHARGE, DISCHARGE_REQUEST).json() == {"cards": []}
    with session_scope(world.engine) as session:
        assert session.exec(select(Barrier)).one().ended_at is not None
        assert len(session.exec(select(Handoff)).all()) == 2


def test_every_call_is_in_the_access_log_as_the_ehr(world: World) -> None:
    with time_machine.travel(NOW, tick=False):
        call(world, PATIENT_VIEW, PATIENT_VIEW_REQUEST)
        call(world, ENCOUNTER_DISCHARGE, DISCHARGE_REQUEST)
    with session_scope(world.engine) as session:
        entries = session.exec(select(AccessLogEntry).order_by(col(AccessLogEntry.id))).all()
        patients = session.exec(select(AccessLogPatient)).all()
    assert [(e.username, e.route) for e in entries] == [
        (f"cds:{ISSUER}", f"POST /cds-services/{PATIENT_VIEW}"),
        (f"cds:{ISSUER}", f"POST /cds-services/{ENCOUNTER_DISCHARGE}"),
    ]
    assert {p.patient_fhir_id for p in patients} == {"p1"}


@pytest.mark.parametrize(
    ("change", "status", "detail"),
    [
        (lambda b: b.update(hook="order-sign"), 400, "this service answers the patient-view hook"),
        (lambda b: b["prefetch"]["patient"].update(id="p9"), 400, "prefetch.patient is not the Patient"),
        (lambda b: b["prefetch"]["encounter"].update(subject={"reference": "Patient/p9"}), 400, "another patient's"),
        (lambda b: b["context"].pop("patientId"), 400, "context.patientId must be a FHIR id"),
    ],
)
def test_a_request_that_does_not_fit_the_hook_is_a_400(world: World, change: Any, status: int, detail: str) -> None:
    body = copy.deepcopy(PATIENT_VIEW_REQUEST)
    change(body)
    with time_machine.travel(NOW, tick=False):
        response = call(world, PATIENT_VIEW, body)
    assert response.status_code == status
    assert detail in response.json()["detail"]


def test_an_unknown_service_is_a_404_and_a_body_not_json_a_400(world: World) -> None:
    with time_machine.travel(NOW, tick=False):
        assert call(world, "no-such-service", PATIENT_VIEW_REQUEST).status_code == 404
        raw = token(NOW, url(PATIENT_VIEW))
        response = world.client.post(
            f"/cds-services/{PATIENT_VIEW}", content=b"{not json", headers={"Authorization": f"Bearer {raw}"}
        )
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"key": B_KEY}, "bad signature"),  # wrong key
        ({"kid": "nope"}, "unknown kid"),
        ({"alg": "none", "key": None}, "algorithm"),
        ({"lifetime": timedelta(minutes=-5)}, "expired"),
    ],
)
def test_a_bad_jwt_is_a_401_over_http(world: World, kw: dict[str, Any], reason: str) -> None:
    with time_machine.travel(NOW, tick=False):
        response = call(world, PATIENT_VIEW, PATIENT_VIEW_REQUEST, **kw)
    assert response.status_code == 401
    assert response.json()["detail"].startswith(f"CDS Hooks JWT refused: {reason}")
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_wrong_aud_replay_and_missing_token_are_401(world: World) -> None:
    with time_machine.travel(NOW, tick=False):
        wrong_aud = token(NOW, url(ENCOUNTER_DISCHARGE))
        headers = {"Authorization": f"Bearer {wrong_aud}"}
        assert (
            world.client.post(f"/cds-services/{PATIENT_VIEW}", json=PATIENT_VIEW_REQUEST, headers=headers).status_code
            == 401
        )
        once = {"Authorization": f"Bearer {token(NOW, url(PATIENT_VIEW))}"}
        assert (
            world.client.post(f"/cds-services/{PATIENT_VIEW}", json=PATIENT_VIEW_REQUEST, headers=once).status_code
            == 200
        )
        replay = world.client.post(f"/cds-services/{PATIENT_VIEW}", json=PATIENT_VIEW_REQUEST, headers=once)
        assert replay.status_code == 401
        assert "replay" in replay.json()["detail"]
        assert world.client.post(f"/cds-services/{PATIENT_VIEW}", json=PATIENT_VIEW_REQUEST).status_code == 401


def test_public_url_is_the_aud_and_the_links_base_behind_a_proxy(world: World) -> None:
    public = "https://bridge.city.example/dbr"
    client = TestClient(create_app(world.settings.model_copy(update={"public_url": public})))
    with time_machine.travel(NOW, tick=False):
        raw = token(NOW, f"{public}/cds-services/{PATIENT_VIEW}")
        response = client.post(
            f"/cds-services/{PATIENT_VIEW}", json=PATIENT_VIEW_REQUEST, headers={"Authorization": f"Bearer {raw}"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["cards"][0]["links"][0]["url"] == f"{public}/cases/{world.city_case}"
        # a token for the internal address is refused there
        raw = token(NOW, url(PATIENT_VIEW))
        inside = client.post(
            f"/cds-services/{PATIENT_VIEW}", json=PATIENT_VIEW_REQUEST, headers={"Authorization": f"Bearer {raw}"}
        )
    assert inside.status_code == 401


def test_feedback_is_accepted_with_a_jwt(world: World) -> None:
    feedback = {
        "feedback": [
            {
                "card": "4e0a3a1e-3283-4575-ab82-028d55fe2719",
                "outcome": "overridden",
                "overrideReason": {"userComment": "discussed with the family"},
                "outcomeTimestamp": "2026-11-20T10:00:00Z",
            }
        ]
    }
    path = f"/cds-services/{PATIENT_VIEW}/feedback"
    with time_machine.travel(NOW, tick=False):
        raw = token(NOW, f"{SERVER}{path}")
        assert world.client.post(path, json=feedback, headers={"Authorization": f"Bearer {raw}"}).status_code == 200
        assert world.client.post(path, json=feedback).status_code == 401
        raw = token(NOW, f"{SERVER}{path}")
        bad = world.client.post(path, json={"feedback": [{"card": 1}]}, headers={"Authorization": f"Bearer {raw}"})
    assert bad.status_code == 400


def test_cors_only_for_an_origin_a_source_lists(world: World) -> None:
    with session_scope(world.engine) as session:
        source = session.exec(select(Source).where(Source.name == "city")).one()
        source.cds_hooks = {**source.cds_hooks, "origins": ["https://ehr.city.test"]}
    preflight = {"Origin": "https://ehr.city.test", "Access-Control-Request-Method": "POST"}
    ok = world.client.options(f"/cds-services/{PATIENT_VIEW}", headers=preflight)
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == "https://ehr.city.test"
    assert "authorization" in ok.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in ok.headers
    other = world.client.options(f"/cds-services/{PATIENT_VIEW}", headers={**preflight, "Origin": "https://evil.test"})
    assert "access-control-allow-origin" not in other.headers
    discovery = world.client.get("/cds-services", headers={"Origin": "https://ehr.city.test"})
    assert discovery.headers["access-control-allow-origin"] == "https://ehr.city.test"
    with time_machine.travel(NOW, tick=False):
        raw = token(NOW, url(PATIENT_VIEW), kid="nope")
        refused = world.client.post(
            f"/cds-services/{PATIENT_VIEW}",
            json=PATIENT_VIEW_REQUEST,
            headers={"Authorization": f"Bearer {raw}", "Origin": "https://ehr.city.test"},
        )
    assert refused.status_code == 401  # readable by the EHR's page: it can show why
    assert refused.headers["access-control-allow-origin"] == "https://ehr.city.test"


def test_a_prefetch_the_ehr_could_not_satisfy_is_null_or_absent_and_still_answers(world: World) -> None:
    body = copy.deepcopy(PATIENT_VIEW_REQUEST)
    body["prefetch"] = {"patient": None}  # the spec: a template not satisfied is left out (or null)
    with time_machine.travel(NOW, tick=False):
        response = call(world, PATIENT_VIEW, body)
    assert response.status_code == 200, response.text
    assert len(response.json()["cards"]) == 1
