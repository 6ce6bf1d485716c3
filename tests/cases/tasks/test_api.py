"""The tasks API: add, list, PATCH with If-Match; 404, 409 (transition, stale, closed), 422, 428."""

from __future__ import annotations

from datetime import UTC, datetime

import time_machine
from sqlalchemy.engine import Engine

from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.users.service import disable_user
from tests.support.factories import api_client, make_source, make_user, seed_case


def _coordinators(engine: Engine) -> None:
    """anna and bob coordinate "city": a task's owner is one of the hospital's own people."""
    with session_scope(engine) as session:
        make_user(session, "anna")
        make_user(session, "bob")


@time_machine.travel(datetime(2026, 12, 1, 9, 0, tzinfo=UTC), tick=False)  # its dates are absolute (November 2026)
def test_task_lifecycle_over_http(engine: Engine, settings: Settings) -> None:
    case_id = seed_case(engine)
    _coordinators(engine)
    client = api_client(settings)
    url = f"/api/v1/cases/{case_id}/tasks"
    [first_visit] = client.get(url).json()
    assert first_visit["kind"] == "first_visit" and first_visit["allowed_transitions"] == [
        "accepted",
        "cancelled",
        "in-progress",
    ]
    created = client.post(
        url,
        json={
            "description": "Apply for a care home place",
            "domain": "social",
            "owner": "anna",
            "due_at": "2026-11-03T12:00:00+03:00",
            "priority": "urgent",
        },
        headers={"X-Actor": "anna"},
    )
    assert created.status_code == 201 and created.headers["ETag"] == '"1"'
    task = created.json()
    assert (task["status"], task["owner"], task["created_by"], task["overdue"]) == ("requested", "anna", "anna", True)
    task_url = f"/api/v1/tasks/{task['id']}"
    moved = client.patch(task_url, json={"status": "in-progress"}, headers={"If-Match": '"1"'})
    assert moved.status_code == 200 and moved.headers["ETag"] == '"2"'
    reassigned = client.patch(task_url, json={"owner": "bob", "version": 2})
    assert reassigned.json()["owner"] == "bob" and reassigned.json()["version"] == 3
    done = client.patch(task_url, json={"status": "completed", "status_reason": "place found", "version": 3})
    assert done.json()["status"] == "completed" and done.json()["overdue"] is False
    assert client.get(task_url).headers["ETag"] == '"4"'
    assert [t["status"] for t in client.get(f"{url}?status=completed").json()] == ["completed"]
    events = [e for e in client.get(f"/api/v1/cases/{case_id}/timeline").json() if e["kind"] == "task_updated"]
    assert events[1]["data"] == {"task_id": task["id"], "owner": ["anna", "bob"]}


def test_task_errors(engine: Engine, settings: Settings) -> None:
    case_id = seed_case(engine)
    _coordinators(engine)
    client = api_client(settings)
    [task] = client.get(f"/api/v1/cases/{case_id}/tasks").json()
    task_url = f"/api/v1/tasks/{task['id']}"

    missing = client.patch(task_url, json={"status": "accepted"})
    assert missing.status_code == 428 and "If-Match" in missing.json()["detail"]
    forbidden = client.patch(task_url, json={"status": "completed"}, headers={"If-Match": '"1"'})
    assert forbidden.status_code == 409
    assert forbidden.json()["allowed"] == ["accepted", "cancelled", "in-progress"]
    assert "requested" in forbidden.json()["detail"]
    client.patch(task_url, json={"status": "accepted"}, headers={"If-Match": '"1"'})
    stale = client.patch(task_url, json={"owner": "bob"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 409 and stale.json()["current_version"] == 2
    disagree = client.patch(task_url, json={"owner": "bob", "version": 1}, headers={"If-Match": '"2"'})
    assert disagree.status_code == 422 and "version" in disagree.text
    for payload, field in [
        ({"status": "doing"}, "status"),
        ({"domain": "financial", "version": 2}, "domain"),
        ({"due_at": "tomorrow", "version": 2}, "due_at"),
        ({"ownr": "x", "version": 2}, "ownr"),
        ({"description": None, "version": 2}, "description"),
    ]:
        response = client.patch(task_url, json=payload)
        assert response.status_code == 422 and field in response.text, payload
    for payload, field in [
        ({"domain": "medical"}, "description"),
        ({"description": "x", "domain": "money"}, "domain"),
        ({"description": "x", "domain": "legal", "due_at": "2026-13-01T00:00:00Z"}, "due_at"),
        ({"description": "x", "domain": "legal", "kind": "first_visit"}, "kind"),
    ]:
        response = client.post(f"/api/v1/cases/{case_id}/tasks", json=payload)
        assert response.status_code == 422 and field in response.text, payload
    assert client.patch("/api/v1/tasks/424242", json={"owner": "x"}, headers={"If-Match": '"1"'}).status_code == 404

    client.patch(f"/api/v1/cases/{case_id}", json={"status": "closed", "outcome": "not_needed"})
    closed = client.patch(task_url, json={"owner": "bob"}, headers={"If-Match": '"3"'})
    assert closed.status_code == 409 and "closed" in closed.json()["detail"]
    added = client.post(f"/api/v1/cases/{case_id}/tasks", json={"description": "x", "domain": "legal"})
    assert added.status_code == 409


def test_a_refused_change_writes_nothing(engine: Engine, settings: Settings) -> None:
    case_id = seed_case(engine)
    _coordinators(engine)
    client = api_client(settings)
    before = client.get(f"/api/v1/cases/{case_id}/timeline").json()
    [task] = client.get(f"/api/v1/cases/{case_id}/tasks").json()
    client.patch(f"/api/v1/tasks/{task['id']}", json={"owner": "bob", "status": "failed"}, headers={"If-Match": '"1"'})
    assert client.get(f"/api/v1/tasks/{task['id']}").json()["owner"] is None
    assert client.get(f"/api/v1/cases/{case_id}/timeline").json() == before


def test_a_task_goes_only_to_someone_of_the_hospital_who_coordinates(engine: Engine, settings: Settings) -> None:
    """Adding or reassigning a task: a user of another hospital, a bed manager, an IT admin, a disabled
    user or an unknown name is a 422 naming ``owner``, in the same words for each (no probing for names)."""
    case_id = seed_case(engine)
    _coordinators(engine)
    with session_scope(engine) as session:
        make_source(session, "north")
        make_user(session, "nora", sources=("north",))
        make_user(session, "boris", "bed_manager")
        make_user(session, "irina", "it_admin")
        make_user(session, "gone")
        disable_user(session, "gone")
    client = api_client(settings)
    [task] = client.get(f"/api/v1/cases/{case_id}/tasks").json()
    task_url = f"/api/v1/tasks/{task['id']}"
    for name in ("nora", "boris", "irina", "gone", "mallory"):
        new = {"description": "x", "domain": "legal", "owner": name}
        added = client.post(f"/api/v1/cases/{case_id}/tasks", json=new)
        moved = client.patch(task_url, json={"owner": name}, headers={"If-Match": '"1"'})
        for refused in (added, moved):
            assert refused.status_code == 422, (name, refused.text)
            [problem] = refused.json()["detail"]
            assert problem["loc"] == ["body", "owner"]
            assert problem["msg"] == f"{name!r} is not an enabled user of this hospital who may coordinate"
    assert [t["owner"] for t in client.get(f"/api/v1/cases/{case_id}/tasks").json()] == [None]
    assert client.patch(task_url, json={"owner": "bob"}, headers={"If-Match": '"1"'}).json()["owner"] == "bob"
    nobody = client.patch(task_url, json={"owner": None}, headers={"If-Match": '"2"'})  # null: nobody, as before
    assert nobody.status_code == 200 and nobody.json()["owner"] is None
    added = client.post(f"/api/v1/cases/{case_id}/tasks", json={"description": "x", "domain": "legal", "owner": "anna"})
    assert added.status_code == 201 and added.json()["owner"] == "anna"
