"""/metrics: Prometheus text computed at scrape, scoped to the caller's hospitals; latency by route template."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine
from sqlmodel import select

from discharge_bridge.cases.tasks.models import Task
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.ingest.models import DeadLetter
from discharge_bridge.ingest.store import record_dead_letter
from discharge_bridge.scheduling.models import SchedulerLease
from discharge_bridge.sources.models import SyncRun, SyncStatus
from tests.support.factories import api_client, flagged_case, make_source, user_client

NOW = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def _run(source_id: int, status: SyncStatus, minutes_ago: int) -> SyncRun:
    at = NOW - timedelta(minutes=minutes_ago)
    return SyncRun(source_id=source_id, status=status, started_at=at - timedelta(seconds=5), finished_at=at)


@pytest.fixture
def two_hospitals(engine: Engine) -> Iterator[None]:
    """city: synced 5 min ago after an earlier failure; north: never synced, its one run failed."""
    with time_machine.travel(NOW, tick=False):
        with session_scope(engine) as session:
            city, north = make_source(session, "city"), make_source(session, "north")
            assert city.id is not None and north.id is not None
            city.last_success_at = NOW - timedelta(minutes=5)
            north.created_at = NOW - timedelta(hours=1)
            session.add_all([_run(city.id, SyncStatus.failed, 20), _run(city.id, SyncStatus.ok, 5)])
            session.add_all([_run(north.id, SyncStatus.failed, 30), SyncRun(source_id=north.id)])  # one running
            for n in range(2):
                record_dead_letter(session, city.id, {"resourceType": "Encounter", "id": f"bad{n}"}, "no status")
            record_dead_letter(session, north.id, {"resourceType": "Encounter", "id": "bad"}, "no status")
            session.flush()
            first = session.exec(select(DeadLetter).where(DeadLetter.source_id == city.id)).first()
            assert first is not None
            first.resolved_at = NOW
            cases = [
                flagged_case(session, city.id, "adm1", "p1", priority="high"),
                flagged_case(session, city.id, "adm2", "p2", priority="medium"),
                flagged_case(session, north.id, "adm3", "p3", priority="low"),
            ]
            due = [NOW - timedelta(hours=1), NOW + timedelta(hours=1), NOW - timedelta(hours=2)]
            for case, due_at in zip(cases, due, strict=True):
                for task in session.exec(select(Task).where(Task.case_id == case.id)):
                    task.due_at = due_at
            session.add(SchedulerLease(name="scheduler", holder="host:1", heartbeat_at=NOW - timedelta(seconds=10)))
        yield


def test_metrics_report_each_source_from_the_database(two_hospitals: None, settings: Settings) -> None:
    with time_machine.travel(NOW, tick=False):
        samples = scrape(api_client(settings))  # the service token: admin, every hospital
    p = "discharge_bridge_"
    assert value(samples, p + "source_sync_lag_seconds", source="city") == 300
    assert value(samples, p + "source_sync_lag_seconds", source="north") == 3600  # since it was added
    assert value(samples, p + "source_last_success_timestamp_seconds", source="city") == NOW.timestamp() - 300
    assert (p + "source_last_success_timestamp_seconds", frozenset({("source", "north")})) not in samples
    assert value(samples, p + "source_up", source="city") == 1
    assert value(samples, p + "source_up", source="north") == 0
    assert value(samples, p + "sync_runs_failed_total", source="city") == 1
    assert value(samples, p + "sync_runs_failed_total", source="north") == 1
    assert value(samples, p + "dead_letters_open", source="city") == 1
    assert value(samples, p + "dead_letters_open", source="north") == 1
    assert value(samples, p + "cases_open", source="city", priority="high") == 1
    assert value(samples, p + "cases_open", source="city", priority="medium") == 1
    assert value(samples, p + "cases_open", source="city", priority="low") == 0
    assert value(samples, p + "cases_open", source="north", priority="low") == 1
    assert value(samples, p + "tasks_overdue", source="city") == 1
    assert value(samples, p + "tasks_overdue", source="north") == 1
    assert value(samples, p + "scheduler_heartbeat_age_seconds") == 10
    assert value(samples, p + "scheduler_up") == 1
    assert all(name.startswith(p) for name, _ in samples)


def test_a_scoped_it_admin_sees_only_their_hospital(two_hospitals: None, settings: Settings, engine: Engine) -> None:
    it = user_client(settings, engine, "ivan", role="it_admin", sources=("city",))
    with time_machine.travel(NOW, tick=False):
        samples = scrape(it)
    sources = {dict(labels).get("source") for _, labels in samples} - {None}
    assert sources == {"city"}
    assert value(samples, "discharge_bridge_dead_letters_open", source="city") == 1


def test_metrics_need_an_it_admin_or_admin(two_hospitals: None, settings: Settings, engine: Engine) -> None:
    assert api_client(settings, token=None).get("/metrics").status_code == 401
    coordinator = user_client(settings, engine, "anna", role="coordinator", sources=("city",))
    assert coordinator.get("/metrics").status_code == 403


def test_request_latency_and_the_request_log_use_the_route_template(
    two_hospitals: None, settings: Settings, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    it = user_client(settings, engine, "ivan", role="it_admin", sources=("city",))
    caplog.set_level(logging.INFO, logger="discharge_bridge.http")
    assert it.get("/api/v1/sources/city").status_code == 200
    assert it.get("/api/v1/cases/4711?patient=p1").status_code == 403  # it_admins do not read cases
    assert it.get("/api/v1/sources/p1").status_code == 404
    assert it.get("/no/such/page/p1").status_code == 404
    assert it.delete("/api/v1/sources/city").status_code == 405
    samples = scrape(it)
    counts = {
        (labels["method"], labels["route"], labels["status"]): n
        for (name, frozen), n in samples.items()
        if name == "discharge_bridge_http_request_duration_seconds_count"
        for labels in [dict(frozen)]
    }
    assert counts == {
        ("GET", "/api/v1/sources/{name}", "200"): 1,
        ("GET", "/api/v1/cases/{case_id}", "403"): 1,
        ("GET", "/api/v1/sources/{name}", "404"): 1,
        ("GET", "unmatched", "404"): 1,
        ("DELETE", "/api/v1/sources/{name}", "405"): 1,
    }
    lines = [r.getMessage() for r in caplog.records if r.name == "discharge_bridge.http"]
    assert [line.rsplit(" ", 1)[0] for line in lines] == [
        "GET /api/v1/sources/{name} 200",
        "GET /api/v1/cases/{case_id} 403",
        "GET /api/v1/sources/{name} 404",
        "GET unmatched 404",
        "DELETE /api/v1/sources/{name} 405",
    ]
    assert all(line.endswith("ms") for line in lines)
    assert not any(word in line for line in lines for word in ("p1", "4711", "city", "?"))
