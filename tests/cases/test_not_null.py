"""Fields that may change but never be cleared: the services refuse a null, the API answers 422."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from discharge_bridge.config import Settings
from tests.support.factories import api_client, seed_case


def _refused(response: object, field: str) -> bool:
    body = response.json()  # type: ignore[attr-defined]
    status = response.status_code  # type: ignore[attr-defined]
    return (
        status == 422
        and body["detail"][0]["loc"] == ["body", field]
        and body["detail"][0]["msg"] == (f"{field} may not be null")
    )


def test_nulls_are_refused_where_a_value_is_required(engine: Engine, settings: Settings) -> None:
    case_id = seed_case(engine)
    client = api_client(settings)
    task = client.get(f"/api/v1/cases/{case_id}/tasks").json()[0]
    task_url = f"/api/v1/tasks/{task['id']}"
    for field in ("status", "description", "domain", "priority"):
        assert _refused(client.patch(task_url, json={field: None, "version": 1}), field), field
    cleared = client.patch(task_url, json={"owner": None, "due_at": None, "version": 1})
    assert cleared.status_code == 200 and cleared.json()["owner"] is None

    handoff = client.post(f"/api/v1/cases/{case_id}/handoffs", json={"destination_type": "relatives"}).json()
    handoff_url = f"/api/v1/handoffs/{handoff['id']}"
    assert _refused(client.patch(handoff_url, json={"status": None, "version": 1}), "status")
    assert client.patch(handoff_url, json={"note": None, "version": 1}).status_code == 200

    barrier = client.post(f"/api/v1/cases/{case_id}/barriers", json={"code": "housing"}).json()
    barrier_url = f"/api/v1/barriers/{barrier['id']}"
    assert _refused(client.patch(barrier_url, json={"started_at": None}), "started_at")
    assert client.patch(barrier_url, json={"owner": None}).status_code == 200
