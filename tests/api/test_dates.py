"""Dates that make sense, at the edge: every instant carries a zone and falls within 1900..2100 (a due
time in year 0001 with a zone was a 500: it underflows on its way to UTC); a task's due time within a
year before now and two years after; readiness and the expected discharge not before the day of
admission nor more than a year ahead. Each refusal is a 422 naming the field, from the API and the
case page alike, and nothing is stored."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from discharge_bridge.app import create_app
from discharge_bridge.cases.models import Case
from discharge_bridge.cases.tasks.models import Task
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.deps import SESSION_COOKIE
from discharge_bridge.users.service import get_user, start_session
from tests.api.conftest import NOW, Ward

pytestmark = pytest.mark.clock


def _locs(response: Any) -> list[list[Any]]:
    return [error["loc"] for error in response.json()["detail"]]


def _refused(response: Any, *loc: str) -> None:
    assert response.status_code == 422, response.text[:400]
    assert list(loc) in _locs(response), response.text[:400]


def _task(engine: Engine, task_id: int) -> Task:
    with session_scope(engine) as session:
        task = session.get(Task, task_id)
        assert task is not None
        session.expunge(task)
        return task


def _case(engine: Engine, case_id: int) -> Case:
    with session_scope(engine) as session:
        case = session.get(Case, case_id)
        assert case is not None
        session.expunge(case)
        return case


@pytest.mark.parametrize(
    "due_at",
    [
        "0001-01-01T00:00:00+05:00",  # underflows on its way to UTC
        "0001-01-01T00:00:00Z",
        "1899-12-31T23:59:59Z",
        "2101-01-01T00:00:00Z",
        "9999-12-31T23:59:59-05:00",  # overflows on its way to UTC
        "9999-12-31T23:59:59Z",
        "2020-06-01T09:00:00Z",  # more than a year before now
        "2025-11-30T09:00:00Z",
        "2028-12-02T09:00:00Z",  # more than two years after now
        "2026-12-01T09:00:00",  # no zone
    ],
)
def test_a_task_due_far_from_now_or_outside_the_years_is_refused(
    api: TestClient, engine: Engine, ward: Ward, due_at: str
) -> None:
    added = api.post(
        f"/api/v1/cases/{ward.case_id}/tasks", json={"description": "x", "domain": "social", "due_at": due_at}
    )
    _refused(added, "body", "due_at")
    patched = api.patch(f"/api/v1/tasks/{ward.task_id}", json={"due_at": due_at}, headers={"If-Match": '"1"'})
    _refused(patched, "body", "due_at")
    assert _task(engine, ward.task_id).due_at != due_at


@pytest.mark.parametrize("due_at", [NOW - timedelta(days=364), NOW + timedelta(days=729), NOW])
def test_a_task_due_within_the_window_is_taken(api: TestClient, ward: Ward, due_at: Any) -> None:
    added = api.post(
        f"/api/v1/cases/{ward.case_id}/tasks",
        json={"description": "x", "domain": "social", "due_at": due_at.isoformat()},
    )
    assert added.status_code == 201, added.text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("expected_discharge_at", "1990-01-01T00:00:00Z"),
        ("medically_ready_at", "2100-01-01T00:00:00Z"),
        ("expected_discharge_at", "0001-01-01T00:00:00+05:00"),
        ("medically_ready_at", "2026-10-31T20:59:00Z"),  # the evening before the day of admission (UTC here)
        ("expected_discharge_at", "2027-12-02T09:00:00Z"),  # more than a year ahead
        ("medically_ready_at", "2026-11-01"),  # no zone
    ],
)
def test_readiness_and_the_expected_discharge_must_fall_between_admission_and_a_year_ahead(
    api: TestClient, engine: Engine, ward: Ward, field: str, value: str
) -> None:
    response = api.patch(f"/api/v1/cases/{ward.case_id}", json={field: value})
    _refused(response, "body", field)
    assert getattr(_case(engine, ward.case_id), field) is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("medically_ready_at", "2026-11-01T00:00:00Z"),  # the admission's day (in the hospital's zone), before the hour
        ("expected_discharge_at", "2027-11-30T09:00:00Z"),
        ("medically_ready_at", "2026-12-01T09:00:00+03:00"),
    ],
)
def test_dates_between_the_admission_day_and_a_year_ahead_are_taken(
    api: TestClient, engine: Engine, ward: Ward, field: str, value: str
) -> None:
    response = api.patch(f"/api/v1/cases/{ward.case_id}", json={field: value})
    assert response.status_code == 200, response.text
    assert getattr(_case(engine, ward.case_id), field) is not None


def test_a_date_already_stored_may_stay_while_other_fields_change(api: TestClient, engine: Engine, ward: Ward) -> None:
    """A rule about now judges a new value only: a case whose ready date was set long ago still changes."""
    assert (
        api.patch(f"/api/v1/cases/{ward.case_id}", json={"medically_ready_at": "2026-11-02T09:00:00Z"}).status_code
        == 200
    )
    same = api.patch(
        f"/api/v1/cases/{ward.case_id}", json={"medically_ready_at": "2026-11-02T09:00:00Z", "coordinator": None}
    )
    assert same.status_code == 200, same.text


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        (
            "/api/v1/cases/{case_id}/barriers",
            {"code": "housing", "started_at": "0001-01-01T00:00:00+05:00"},
            "started_at",
        ),
        (
            "/api/v1/cases/{case_id}/handoffs",
            {"destination_type": "relatives", "scheduled_for": "9999-12-31T23:00:00-05:00"},
            "scheduled_for",
        ),
        (
            "/api/v1/cases/{case_id}/contact-log",
            {
                "contact": "added/{contact_id}",
                "kind": "call",
                "outcome": "no_answer",
                "at": "0001-01-01T00:00:00+05:00",
            },
            "at",
        ),
    ],
)
def test_every_instant_of_the_api_keeps_to_the_years(
    api: TestClient, ward: Ward, url: str, body: dict[str, Any], field: str
) -> None:
    filled = {k: v.format(contact_id=ward.contact_id) if isinstance(v, str) else v for k, v in body.items()}
    _refused(api.post(url.format(case_id=ward.case_id), json=filled), "body", field)


@pytest.mark.parametrize(
    ("url", "param"),
    [
        ("/api/v1/access-log?since=0001-01-01T00:00:00%2B05:00", "since"),
        ("/api/v1/audit?until=9999-12-31T23:00:00-05:00", "until"),
    ],
)
def test_the_logs_filters_keep_to_the_years(api: TestClient, ward: Ward, url: str, param: str) -> None:
    _refused(api.get(url), "query", param)


class Browser:
    """A signed-in coordinator's session cookie and CSRF token: the case page's forms."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        with session_scope(engine) as session:
            token, row = start_session(session, get_user(session, "anna"), lifetime=timedelta(hours=8))
            self.csrf = row.csrf_token
        self.client = TestClient(create_app(settings), follow_redirects=False, raise_server_exceptions=False)
        self.client.cookies.set(SESSION_COOKIE, token)

    def post(self, path: str, data: dict[str, Any]) -> Any:
        return self.client.post(path, data={**data, "csrf_token": self.csrf})


@pytest.mark.parametrize("due_at", ["0001-01-01T00:00", "2020-01-01T09:00", "9999-12-31T23:59"])
def test_the_case_page_refuses_a_task_due_outside_the_window(
    settings: Settings, engine: Engine, ward: Ward, due_at: str
) -> None:
    page = Browser(settings, engine)
    added = page.post(f"/cases/{ward.case_id}/tasks", {"description": "x", "domain": "social", "due_at": due_at})
    assert added.status_code == 422 and 'name="due_at"' in added.text
    version = _task(engine, ward.task_id).version
    edited = page.post(f"/cases/{ward.case_id}/tasks/{ward.task_id}", {"due_at": due_at, "version": str(version)})
    assert edited.status_code == 422, edited.text[:300]


def test_the_case_page_edits_a_task_long_overdue_without_touching_its_due_time(
    settings: Settings, engine: Engine, ward: Ward
) -> None:
    """The row's form sends its due time as it was: a task due more than a year ago (stored before the rule)
    still takes a new owner."""
    with session_scope(engine) as session:
        task = session.get(Task, ward.task_id)
        assert task is not None
        task.due_at = NOW - timedelta(days=800)
        session.add(task)
    task = _task(engine, ward.task_id)
    shown = (NOW - timedelta(days=800)).strftime("%Y-%m-%dT%H:%M")
    page = Browser(settings, engine)
    edited = page.post(
        f"/cases/{ward.case_id}/tasks/{ward.task_id}", {"due_at": shown, "owner": "anna", "version": str(task.version)}
    )
    assert edited.status_code == 303, edited.text[:300]
    assert _task(engine, ward.task_id).owner == "anna"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("expected_discharge_at", "1990-01-01T12:00"),
        ("medically_ready_at", "2100-01-01T12:00"),
        ("medically_ready_at", "0001-01-01T00:00"),
    ],
)
def test_the_case_page_refuses_readiness_dates_that_make_no_sense(
    settings: Settings, engine: Engine, ward: Ward, field: str, value: str
) -> None:
    page = Browser(settings, engine)
    version = _case(engine, ward.case_id).version
    response = page.post(f"/cases/{ward.case_id}/dates", {field: value, "version": str(version)})
    assert response.status_code == 422, response.text[:300]
    assert getattr(_case(engine, ward.case_id), field) is None
