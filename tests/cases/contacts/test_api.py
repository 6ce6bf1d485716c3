"""The contacts API: list, add, edit with If-Match (409 stale, 428 without), log entries and the next
step; every refusal names its field; another hospital's case is not found; each response that shows
contacts is recorded in the access log."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from sqlalchemy.engine import Engine
from sqlmodel import select

from discharge_bridge.access.models import AccessLogEntry, AccessLogPatient
from discharge_bridge.cases.tasks.models import Task, TaskDomain, TaskKind, TaskStatus
from discharge_bridge.cases.tasks.service import create_task
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from tests.cases.contacts.factories import case_with_family
from tests.support.factories import api_client, make_source, user_client

NOW = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
pytestmark = pytest.mark.clock


@pytest.fixture(autouse=True)
def _frozen() -> object:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _hospitals(engine: Engine) -> dict[str, int]:
    """Case "mine" (source city, with a find-relatives task) and case "foreign" (source north)."""
    with session_scope(engine) as session:
        mine = case_with_family(session, make_source(session, "city").id or 0)
        foreign = case_with_family(session, make_source(session, "north").id or 0, eid="adm9", pid="p9")
        task = create_task(
            session, mine, actor="t", kind=TaskKind.find_relatives, domain=TaskDomain.social, description="Find"
        )
        return {"mine": mine.id or 0, "foreign": foreign.id or 0, "task": task.id or 0}


def _views(engine: Engine) -> list[tuple[str, str, list[str]]]:
    with session_scope(engine) as session:
        entries = session.exec(select(AccessLogEntry).order_by(AccessLogEntry.id)).all()  # type: ignore[arg-type]
        return [
            (
                e.username,
                e.route,
                [
                    p.patient_fhir_id
                    for p in session.exec(select(AccessLogPatient).where(AccessLogPatient.entry_id == e.id))
                ],
            )
            for e in entries
        ]


def test_a_coordinator_lists_adds_edits_and_logs_a_call(engine: Engine, settings: Settings) -> None:
    ids = _hospitals(engine)
    anna = user_client(settings, engine, "anna", sources=("city",))
    base = f"/api/v1/cases/{ids['mine']}"
    listed = anna.get(f"{base}/contacts")
    assert listed.status_code == 200
    assert [(c["ref"], c["relationship"], c["source"], c["phones"]) for c in listed.json()] == [
        ("RelatedPerson/p1-rp1", "Daughter", "ehr", ["+7 900 555-12-91"]),
        ("Patient/p1/contact/0", "Nephew", "ehr", ["+7 900 555-01-02"]),
    ]
    added = anna.post(
        f"{base}/contacts",
        json={"name": "Petrova Olga", "relationship": "NBOR", "phones": ["+7 900 111-22-33"], "note": "keys"},
    )
    assert added.status_code == 201 and added.headers["ETag"] == '"1"'
    contact = added.json()
    assert (contact["ref"], contact["source"], contact["added_by"], contact["version"]) == (
        f"added/{contact['id']}",
        "added",
        "anna",
        1,
    )
    url = f"{base}/contacts/{contact['id']}"
    assert anna.patch(url, json={"note": "has the keys"}).status_code == 428
    edited = anna.patch(url, json={"phones": ["8 800 000-00-01"]}, headers={"If-Match": '"1"'})
    assert (
        edited.status_code == 200 and edited.json()["phones"] == ["8 800 000-00-01"] and edited.headers["ETag"] == '"2"'
    )
    stale = anna.patch(url, json={"note": "from an old tab"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 409 and stale.json()["current_version"] == 2

    logged = anna.post(
        f"{base}/contact-log",
        json={"contact": "RelatedPerson/p1-rp1", "kind": "call", "outcome": "agreed_to_care", "note": "takes her home"},
    )
    assert logged.status_code == 201
    body = logged.json()
    assert (body["contact_name"], body["outcome"], body["actor"], body["tasks_completed"]) == (
        "Kulikova Anna Ivanovna",
        "agreed_to_care",
        "anna",
        [ids["task"]],
    )
    assert anna.get(f"/api/v1/tasks/{ids['task']}").json()["status"] == TaskStatus.completed
    log = anna.get(f"{base}/contact-log").json()
    assert [(e["contact"], e["outcome"]) for e in log] == [("RelatedPerson/p1-rp1", "agreed_to_care")]
    daughter = next(c for c in anna.get(f"{base}/contacts").json() if c["ref"] == "RelatedPerson/p1-rp1")
    assert (daughter["attempts"], daughter["last_outcome"]) == (1, "agreed_to_care")
    timeline = anna.get(f"{base}/timeline").json()
    assert "contact_logged" in [e["kind"] for e in (timeline["items"] if isinstance(timeline, dict) else timeline)]

    views = _views(engine)
    assert views and all(v == ("anna", v[1], ["p1"]) for v in views)
    # list, add, edit (not the refusals), the logged call, the log, the list again: each showed contacts once
    assert [v[1] for v in views if v[1].startswith("api.contact")] == [
        "api.contacts",
        "api.contacts",
        "api.contacts",
        "api.contact_log",
        "api.contact_log",
        "api.contacts",
    ]


def test_no_one_found_gives_the_next_step_once(engine: Engine, settings: Settings) -> None:
    ids = _hospitals(engine)
    client = api_client(settings)
    url = f"/api/v1/cases/{ids['mine']}/contacts/none-found"
    first = client.post(url, json={"note": "both numbers dead"})
    assert first.status_code == 200
    assert (first.json()["kind"], first.json()["created"], first.json()["tasks_failed"]) == (
        "social_services",
        True,
        [ids["task"]],
    )
    again = client.post(url, json={})
    assert again.json()["created"] is False and again.json()["task_id"] == first.json()["task_id"]
    with session_scope(engine) as session:
        kinds = [t.kind for t in session.exec(select(Task).where(Task.case_id == ids["mine"]))]
    assert kinds.count(TaskKind.social_services) == 1


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("contacts", {"name": "", "relationship": "SON"}, ["body", "name"]),
        ("contacts", {"name": "X", "relationship": "COUSIN-ONCE-REMOVED"}, ["body", "relationship"]),
        ("contacts", {"name": "X", "relationship": "SON", "phones": ["call me"]}, ["body", "phones", 0]),
        ("contacts", {"name": "X", "relationship": "SON", "phones": ["1"] * 6}, ["body", "phones"]),
        ("contacts", {"name": "X", "relationship": "SON", "email": "x@example.org"}, ["body", "email"]),
        ("contact-log", {"contact": "RelatedPerson/nobody", "kind": "call", "outcome": "reached"}, ["body", "contact"]),
        ("contact-log", {"contact": "RelatedPerson/p1-rp1", "kind": "fax", "outcome": "reached"}, ["body", "kind"]),
        ("contact-log", {"contact": "RelatedPerson/p1-rp1", "kind": "call", "outcome": "maybe"}, ["body", "outcome"]),
        (
            "contact-log",
            {"contact": "RelatedPerson/p1-rp1", "kind": "call", "outcome": "reached", "at": "2026-11-03T10:00:00"},
            ["body", "at"],
        ),
        (
            "contact-log",
            {"contact": "RelatedPerson/p1-rp1", "kind": "call", "outcome": "reached", "at": "2026-11-04T10:00:00Z"},
            ["body", "at"],
        ),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    engine: Engine, settings: Settings, path: str, body: dict[str, object], field: list[object]
) -> None:
    ids = _hospitals(engine)
    response = api_client(settings).post(f"/api/v1/cases/{ids['mine']}/{path}", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][: len(field)] == field


def test_another_hospitals_case_and_contacts_are_not_found(engine: Engine, settings: Settings) -> None:
    ids = _hospitals(engine)
    admin = api_client(settings)
    theirs = admin.post(f"/api/v1/cases/{ids['foreign']}/contacts", json={"name": "Olga", "relationship": "SIS"}).json()
    mine = admin.post(f"/api/v1/cases/{ids['mine']}/contacts", json={"name": "Vera", "relationship": "SIS"}).json()
    anna = user_client(settings, engine, "anna", sources=("city",))
    foreign = f"/api/v1/cases/{ids['foreign']}"
    assert anna.get(f"{foreign}/contacts").status_code == 404
    assert anna.get(f"{foreign}/contact-log").status_code == 404
    assert anna.post(f"{foreign}/contacts", json={"name": "X", "relationship": "SON"}).status_code == 404
    assert anna.post(f"{foreign}/contacts/none-found", json={}).status_code == 404
    refused = anna.post(
        f"{foreign}/contact-log", json={"contact": "RelatedPerson/p9-rp1", "kind": "call", "outcome": "reached"}
    )
    assert refused.status_code == 404
    assert (
        anna.patch(f"{foreign}/contacts/{theirs['id']}", json={"note": "x"}, headers={"If-Match": '"1"'}).status_code
        == 404
    )
    # their contact through my case's path is not found either
    through_mine = anna.patch(
        f"/api/v1/cases/{ids['mine']}/contacts/{theirs['id']}", json={"note": "x"}, headers={"If-Match": '"1"'}
    )
    assert through_mine.status_code == 404
    assert "Olga" not in anna.get(f"/api/v1/cases/{ids['mine']}/contacts").text
    assert mine["name"] == "Vera"


def test_a_bed_manager_reads_contacts_but_changes_nothing(engine: Engine, settings: Settings) -> None:
    ids = _hospitals(engine)
    boris = user_client(settings, engine, "boris", role="bed_manager", sources=("city",))
    base = f"/api/v1/cases/{ids['mine']}"
    assert boris.get(f"{base}/contacts").status_code == 200
    assert boris.post(f"{base}/contacts", json={"name": "X", "relationship": "SON"}).status_code == 403
    logged = boris.post(
        f"{base}/contact-log", json={"contact": "RelatedPerson/p1-rp1", "kind": "call", "outcome": "reached"}
    )
    assert logged.status_code == 403
