"""Sending the write-back outbox, against respx: exact requests, backoff, refusals, Task status back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
import respx
import time_machine
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from discharge_bridge.cases.tasks.models import Task, TaskStatus
from discharge_bridge.db import session_scope
from discharge_bridge.ehr.models import WritebackItem, WritebackStatus
from discharge_bridge.ehr.writeback.outbox import reconcile
from discharge_bridge.ehr.writeback.readback import read_back_tasks
from discharge_bridge.ehr.writeback.send import backoff, send_due
from discharge_bridge.ehr.writeback.status import retry_failed, writeback_status
from discharge_bridge.fhir import FhirClient, RetryPolicy
from discharge_bridge.sources.models import Source
from tests.support.factories import flagged_case, make_source

pytestmark = pytest.mark.clock

BASE = "http://ehr.test/fhir"
SYSTEM = "urn:test:writeback"
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def outbox(engine: Engine) -> Engine:
    """One flagged case of source "city" with write-back of its Flag only, reconciled: one pending item."""
    with time_machine.travel(T0, tick=False), session_scope(engine) as session:
        source = make_source(session)
        source.writeback = {"enabled": True, "resources": ["Flag"]}
        session.add(source)
        flagged_case(session, source.id or 0)
        reconcile(session, source, now=T0, system=SYSTEM)
    return engine


def client() -> FhirClient:
    return FhirClient(BASE, retry=RetryPolicy(max_attempts=1))


def send(engine: Engine, at: datetime) -> tuple[int, int, int, int]:
    with Session(engine) as session:
        source = session.exec(select(Source)).one()
    with time_machine.travel(at, tick=False), client() as http:
        result = send_due(engine, source, http, now=at, system=SYSTEM)
    return result.sent, result.retrying, result.failed, result.applied


def the_item(engine: Engine) -> WritebackItem:
    with Session(engine) as session:
        return session.exec(select(WritebackItem)).one()


def created(resource_id: str = "f1", version: str = "1") -> httpx.Response:
    return httpx.Response(
        201,
        json={"resourceType": "Flag", "id": resource_id, "meta": {"versionId": version}},
        headers={"Location": f"{BASE}/Flag/{resource_id}/_history/{version}"},
    )


def test_post_with_if_none_exist_then_put_with_if_match(outbox: Engine) -> None:
    item = the_item(outbox)
    with respx.mock(assert_all_called=True) as mock:
        post = mock.post(f"{BASE}/Flag").mock(return_value=created())
        assert send(outbox, T0) == (1, 0, 0, 0)
    request = post.calls.last.request
    assert request.headers["If-None-Exist"] == f"identifier={SYSTEM}|{item.identifier}"
    assert request.headers["Content-Type"] == "application/fhir+json"
    assert orjson.loads(request.content) == item.desired
    sent = the_item(outbox)
    assert (sent.status, sent.remote_id, sent.remote_version) == (WritebackStatus.sent, "f1", "1")
    assert sent.sent_hash == sent.desired_hash
    # nothing due: no request at all
    with respx.mock(assert_all_called=False) as mock:
        assert send(outbox, T0 + timedelta(hours=1)) == (0, 0, 0, 0)
        assert not mock.calls
    # a new desired state goes by PUT on the id we were given, with the version we saw
    with session_scope(outbox) as session:
        row = session.exec(select(WritebackItem)).one()
        row.desired = {**row.desired, "status": "inactive"}
        row.desired_hash, row.status = "changed", WritebackStatus.pending
        session.add(row)
    with respx.mock(assert_all_called=True) as mock:
        put = mock.put(f"{BASE}/Flag/f1").mock(
            return_value=httpx.Response(200, json={"resourceType": "Flag", "id": "f1", "meta": {"versionId": "2"}})
        )
        assert send(outbox, T0 + timedelta(hours=1)) == (1, 0, 0, 0)
    assert put.calls.last.request.headers["If-Match"] == 'W/"1"'
    assert orjson.loads(put.calls.last.request.content)["id"] == "f1"
    assert orjson.loads(put.calls.last.request.content)["status"] == "inactive"
    assert (the_item(outbox).remote_version, the_item(outbox).status) == ("2", WritebackStatus.sent)


def test_503_then_200_loses_nothing_and_backs_off(outbox: Engine) -> None:
    with respx.mock() as mock:
        mock.post(f"{BASE}/Flag").mock(return_value=httpx.Response(503))
        assert send(outbox, T0) == (0, 1, 0, 0)
    waiting = the_item(outbox)
    assert (waiting.status, waiting.attempts) == (WritebackStatus.pending, 1)
    assert T0 + timedelta(seconds=30) <= waiting.next_attempt_at <= T0 + timedelta(minutes=1)
    assert "503" in (waiting.last_error or "")
    with respx.mock(assert_all_called=False) as mock:  # not due yet: not sent
        route = mock.post(f"{BASE}/Flag").mock(return_value=created())
        assert send(outbox, T0 + timedelta(seconds=20)) == (0, 0, 0, 0)
        assert not route.called
    with respx.mock() as mock:
        mock.post(f"{BASE}/Flag").mock(return_value=created())
        assert send(outbox, T0 + timedelta(minutes=2)) == (1, 0, 0, 0)
    done = the_item(outbox)
    assert (done.status, done.remote_id, done.attempts, done.last_error) == (WritebackStatus.sent, "f1", 0, None)


def test_backoff_grows_jittered_and_capped() -> None:
    for attempts, (low, high) in {1: (60, 60), 2: (60, 120), 3: (120, 240), 10: (1800, 3600), 30: (1800, 3600)}.items():
        for _ in range(20):
            assert low <= backoff(attempts).total_seconds() <= high
    assert backoff(1, retry_after=600).total_seconds() == 600


def test_429_retry_after_is_honoured(outbox: Engine) -> None:
    with respx.mock() as mock:
        mock.post(f"{BASE}/Flag").mock(return_value=httpx.Response(429, headers={"Retry-After": "900"}))
        assert send(outbox, T0) == (0, 1, 0, 0)
    assert the_item(outbox).next_attempt_at == T0 + timedelta(seconds=900)


OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "invalid", "diagnostics": "Flag.code: unknown code system"}],
}


def test_400_with_operation_outcome_fails_with_its_text_until_retried(outbox: Engine) -> None:
    with respx.mock() as mock:
        mock.post(f"{BASE}/Flag").mock(return_value=httpx.Response(400, json=OUTCOME))
        assert send(outbox, T0) == (0, 0, 1, 0)
    failed = the_item(outbox)
    assert failed.status == WritebackStatus.failed
    assert failed.last_outcome == OUTCOME
    assert "Flag.code: unknown code system" in (failed.last_error or "")
    with respx.mock(assert_all_called=False) as mock:  # a failed item waits for a person
        assert send(outbox, T0 + timedelta(days=1)) == (0, 0, 0, 0)
        assert not mock.calls
    with Session(outbox) as session:
        view = writeback_status(session, session.exec(select(Source)).one())
    assert (view.enabled, view.pending, view.sent, view.failed) == (True, 0, 0, 1)
    issue = view.failed_items[0].issues[0]
    assert (issue.severity, issue.code, issue.diagnostics) == ("error", "invalid", "Flag.code: unknown code system")
    with session_scope(outbox) as session:
        assert retry_failed(session, session.exec(select(Source)).one(), actor="it", now=T0 + timedelta(days=1)) == 1
    with respx.mock() as mock:
        mock.post(f"{BASE}/Flag").mock(return_value=created())
        assert send(outbox, T0 + timedelta(days=1)) == (1, 0, 0, 0)


def test_400_with_a_truncated_body_fails_with_the_status(outbox: Engine) -> None:
    with respx.mock() as mock:
        mock.post(f"{BASE}/Flag").mock(
            return_value=httpx.Response(
                400, content=b'{"resourceType": "OperationOut', headers={"Content-Type": "application/fhir+json"}
            )
        )
        assert send(outbox, T0) == (0, 0, 1, 0)
    failed = the_item(outbox)
    assert failed.last_outcome is None
    assert "400" in (failed.last_error or "")


def test_a_created_answer_with_a_cut_off_body_takes_the_id_from_location(outbox: Engine) -> None:
    with respx.mock() as mock:
        mock.post(f"{BASE}/Flag").mock(
            return_value=httpx.Response(
                201,
                content=b'{"resourceType": "Fl',
                headers={"Location": f"{BASE}/Flag/f9/_history/1", "ETag": 'W/"1"'},
            )
        )
        assert send(outbox, T0) == (1, 0, 0, 0)
    sent = the_item(outbox)
    assert (sent.status, sent.remote_id, sent.remote_version) == (WritebackStatus.sent, "f9", "1")


def test_a_match_found_by_the_conditional_create_is_updated(outbox: Engine) -> None:
    """200 to the POST: the server had ours already (a pass died before its commit); our state is PUT on it."""
    with respx.mock() as mock:
        mock.post(f"{BASE}/Flag").mock(
            return_value=httpx.Response(200, json={"resourceType": "Flag", "id": "old", "meta": {"versionId": "3"}})
        )
        put = mock.put(f"{BASE}/Flag/old").mock(
            return_value=httpx.Response(200, json={"resourceType": "Flag", "id": "old", "meta": {"versionId": "4"}})
        )
        assert send(outbox, T0) == (1, 0, 0, 0)
    assert put.calls.last.request.headers["If-Match"] == 'W/"3"'
    assert (the_item(outbox).remote_id, the_item(outbox).remote_version) == ("old", "4")


@pytest.fixture
def task_outbox(engine: Engine) -> tuple[Engine, int, str]:
    """The case's first task written back and sent (remote Task t1, version 1)."""
    with time_machine.travel(T0, tick=False), session_scope(engine) as session:
        source = make_source(session)
        source.writeback = {"enabled": True, "resources": ["Task"]}
        session.add(source)
        flagged_case(session, source.id or 0)
        reconcile(session, source, now=T0, system=SYSTEM)
        items = list(session.exec(select(WritebackItem)))
        assert items
        for item in items:
            item.remote_id, item.remote_version = f"t{item.id}", "1"
            item.sent_hash, item.sent_at, item.status = item.desired_hash, T0, WritebackStatus.sent
        item = items[0]
        task_id = int(item.identifier.rsplit("-", 1)[1])
        item.desired = {**item.desired, "description": "changed here"}
        item.desired_hash, item.status = "new", WritebackStatus.pending
        return engine, task_id, f"t{item.id}"


def test_a_task_completed_in_the_ehr_is_applied_to_ours(task_outbox: tuple[Engine, int, str]) -> None:
    engine, task_id, remote_id = task_outbox
    with session_scope(engine) as session:  # the nurse's step (ours may only go requested -> in-progress -> completed)
        task = session.get(Task, task_id)
        assert task is not None and task.status == TaskStatus.requested
    remote = {"resourceType": "Task", "id": remote_id, "status": "completed", "meta": {"versionId": "2"}}
    with respx.mock() as mock:
        put = mock.put(f"{BASE}/Task/{remote_id}").mock(return_value=httpx.Response(412, json=OUTCOME))
        mock.get(f"{BASE}/Task/{remote_id}").mock(return_value=httpx.Response(200, json=remote))
        assert send(engine, T0 + timedelta(hours=1)) == (0, 0, 0, 1)
    assert put.calls.last.request.headers["If-Match"] == 'W/"1"'
    with Session(engine) as session:
        task = session.get(Task, task_id)
        item = session.exec(select(WritebackItem).where(WritebackItem.remote_id == remote_id)).one()
    assert task is not None and task.status == TaskStatus.completed
    assert (item.remote_version, item.status) == ("2", WritebackStatus.pending)


def test_create_by_id_puts_under_our_identifier(outbox: Engine) -> None:
    """For a server that cannot search a type by identifier: ``create_by`` "id" PUTs it under our id."""
    with session_scope(outbox) as session:
        source = session.exec(select(Source)).one()
        source.writeback = {**source.writeback, "create_by": {"Flag": "id"}}
        session.add(source)
    item = the_item(outbox)
    with respx.mock() as mock:
        put = mock.put(f"{BASE}/Flag/{item.identifier}").mock(
            return_value=httpx.Response(
                201, json={"resourceType": "Flag", "id": item.identifier, "meta": {"versionId": "1"}}
            )
        )
        assert send(outbox, T0) == (1, 0, 0, 0)
    assert "If-None-Exist" not in put.calls.last.request.headers
    assert orjson.loads(put.calls.last.request.content)["id"] == item.identifier
    assert (the_item(outbox).remote_id, the_item(outbox).remote_version) == (item.identifier, "1")


def test_read_back_applies_the_ehrs_task_changes_once(task_outbox: tuple[Engine, int, str]) -> None:
    engine, task_id, remote_id = task_outbox
    with Session(engine) as session:
        source = session.exec(select(Source)).one()
        value = session.exec(select(WritebackItem).where(WritebackItem.remote_id == remote_id)).one().identifier

    def bundle(version: str, status: str) -> dict[str, object]:
        remote = {
            "resourceType": "Task",
            "id": remote_id,
            "status": status,
            "identifier": [{"system": SYSTEM, "value": value}],
            "meta": {"versionId": version, "lastUpdated": "2026-11-02T09:00:00.000Z"},
        }
        return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": remote}]}

    with respx.mock() as mock, time_machine.travel(T0 + timedelta(hours=1), tick=False), client() as http:
        route = mock.get(f"{BASE}/Task").mock(return_value=httpx.Response(200, json=bundle("1", "completed")))
        assert read_back_tasks(engine, source, http, system=SYSTEM) == 0  # the version we wrote: ours
        assert route.calls.last.request.url.params["identifier"] == f"{SYSTEM}|"
        route.mock(return_value=httpx.Response(200, json=bundle("2", "in-progress")))
        with Session(engine) as session:
            source = session.exec(select(Source)).one()
        assert read_back_tasks(engine, source, http, system=SYSTEM) == 1
        assert route.calls.last.request.url.params["_lastUpdated"] == "ge2026-11-02T09:00:00.000Z"
    with Session(engine) as session:
        task = session.get(Task, task_id)
        item = session.exec(select(WritebackItem).where(WritebackItem.remote_id == remote_id)).one()
    assert task is not None and task.status == TaskStatus.in_progress
    assert item.remote_version == "2"


def test_403_fails_without_keeping_the_body(outbox: Engine) -> None:
    """Missing scopes: failed until IT grants them and presses Retry; a 401/403 body is never kept
    (some token servers echo the rejected credentials)."""
    with respx.mock() as mock:
        mock.post(f"{BASE}/Flag").mock(return_value=httpx.Response(403, json=OUTCOME))
        assert send(outbox, T0) == (0, 0, 1, 0)
    failed = the_item(outbox)
    assert failed.status == WritebackStatus.failed and failed.last_outcome is None
    assert "403" in (failed.last_error or "") and "scopes" in (failed.last_error or "")
