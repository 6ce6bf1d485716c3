"""Write-back on the hospital IT pages (English and Russian) and in the API: counts, the EHR's
OperationOutcome of a refused item, Retry (CSRF-checked, audited), and who may see it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from discharge_bridge.app import create_app
from discharge_bridge.audit import AuditQuery, search_audit
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.deps import SESSION_COOKIE
from discharge_bridge.ehr.models import WritebackItem, WritebackStatus
from discharge_bridge.users.service import get_user, issue_token, start_session
from tests.support.factories import make_source, make_user

pytestmark = pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)
OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "invalid", "diagnostics": "Flag.category: unknown system"}],
}


@pytest.fixture
def app(settings: Settings, engine: Engine) -> object:
    with session_scope(engine) as session:
        source = make_source(session)
        source.writeback = {"enabled": True, "resources": ["Flag", "Task"]}
        make_source(session, "other")
        make_user(session, "irina", "it_admin", ("city",))
        make_user(session, "ivan", "it_admin", ("city",), locale="ru")
        make_user(session, "olga", "it_admin", ("other",))
        make_user(session, "anna", "coordinator", ("city",))
        for n, status in enumerate([WritebackStatus.pending, WritebackStatus.sent, WritebackStatus.sent]):
            session.add(
                WritebackItem(
                    source_id=source.id or 0,
                    resource_type="Task",
                    identifier=f"task-city-{n}",
                    desired={},
                    desired_hash="h",
                    status=status,
                )
            )
        session.add(
            WritebackItem(
                source_id=source.id or 0,
                resource_type="Flag",
                identifier="flag-city-7",
                desired={},
                desired_hash="h",
                status=WritebackStatus.failed,
                attempts=1,
                last_error="POST Flag returned 400 Bad Request: Flag.category: unknown system",
                last_outcome=OUTCOME,
            )
        )
    return create_app(settings)


def browser(app: object, engine: Engine, username: str) -> tuple[TestClient, str]:
    with session_scope(engine) as session:
        token, row = start_session(session, get_user(session, username), lifetime=timedelta(hours=1))
        csrf = row.csrf_token
    client = TestClient(app, follow_redirects=False)  # type: ignore[arg-type]
    client.cookies.set(SESSION_COOKIE, token)
    return client, csrf


def test_the_page_shows_counts_and_the_refusal(app: object, engine: Engine) -> None:
    client, _ = browser(app, engine, "irina")
    page = client.get("/it/sources/city/writeback")
    assert page.status_code == 200
    html = page.text
    assert 'data-writeback-enabled="on"' in html
    assert 'data-count="pending">1<' in html and 'data-count="sent">2<' in html and 'data-count="failed">1<' in html
    assert "flag-city-7" in html and "Flag.category: unknown system" in html and ">invalid<" in html
    assert "Retry the refused items" in html
    assert 'href="/it/sources/city/writeback"' in client.get("/it").text  # linked from the source's card


def test_russian(app: object, engine: Engine) -> None:
    client, _ = browser(app, engine, "ivan")
    html = client.get("/it/sources/city/writeback").text
    assert "Запись в МИС: city" in html and "Отклонено МИС" in html and "Отправить отклонённые снова" in html


def test_retry_needs_csrf_and_is_audited(app: object, engine: Engine) -> None:
    client, csrf = browser(app, engine, "irina")
    assert client.post("/it/sources/city/writeback/retry", data={}).status_code == 403
    with Session(engine) as session:
        assert session.exec(select(WritebackItem).where(WritebackItem.status == WritebackStatus.failed)).first()
    done = client.post("/it/sources/city/writeback/retry", data={"csrf_token": csrf})
    assert done.status_code == 200 and "1 refused items will be sent again" in done.text
    with Session(engine) as session:
        assert session.exec(select(WritebackItem).where(WritebackItem.status == WritebackStatus.failed)).first() is None
        entry = search_audit(session, AuditQuery(target_name="city"))[0]
    assert (entry.action, entry.actor, entry.details) == ("writeback.retry", "irina", {"items": 1})


def test_only_it_of_that_hospital(app: object, engine: Engine) -> None:
    assert browser(app, engine, "olga")[0].get("/it/sources/city/writeback").status_code == 404
    assert browser(app, engine, "anna")[0].get("/it/sources/city/writeback").status_code == 403


def api(app: object, engine: Engine, username: str) -> TestClient:
    with session_scope(engine) as session:
        token = issue_token(session, username, "tests")
    return TestClient(app, headers={"Authorization": f"Bearer {token}"})  # type: ignore[arg-type]


def test_api(app: object, engine: Engine) -> None:
    client = api(app, engine, "irina")
    body = client.get("/api/v1/sources/city/writeback").json()
    assert (body["enabled"], body["resources"], body["pending"], body["sent"], body["failed"]) == (
        True,
        ["Flag", "Task"],
        1,
        2,
        1,
    )
    assert body["failed_items"][0]["issues"] == [
        {"severity": "error", "code": "invalid", "diagnostics": "Flag.category: unknown system"}
    ]
    assert client.post("/api/v1/sources/city/writeback/retry").json() == {"retried": 1}
    assert client.get("/api/v1/sources/city/writeback").json()["failed"] == 0
    assert api(app, engine, "olga").get("/api/v1/sources/city/writeback").status_code == 404
    assert api(app, engine, "anna").get("/api/v1/sources/city/writeback").status_code == 403
