"""The write-back pass runs after each poll of a source with write-back on (scheduler and workers alike)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.ehr.models import WritebackItem, WritebackStatus
from discharge_bridge.scheduling import jobs
from tests.support.factories import flagged_case, make_source

BASE = "http://ehr.test/fhir"


def seed(engine: Engine, writeback: dict[str, Any]) -> None:
    with session_scope(engine) as session:
        source = make_source(session)
        source.writeback = writeback
        session.add(source)
        flagged_case(session, source.id or 0)


class _Synced:
    status, fetched, created, updated, dead_letters = "ok", 0, 0, 0, 0


def test_a_poll_writes_back_when_it_is_on(settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(engine, {"enabled": True, "resources": ["Flag", "RiskAssessment"]})
    monkeypatch.setattr(jobs, "sync_and_assess", lambda *a, **k: _Synced())
    with respx.mock() as mock:
        flag = mock.post(f"{BASE}/Flag").mock(
            return_value=httpx.Response(201, json={"resourceType": "Flag", "id": "f1", "meta": {"versionId": "1"}})
        )
        risk = mock.post(f"{BASE}/RiskAssessment").mock(
            return_value=httpx.Response(
                201, json={"resourceType": "RiskAssessment", "id": "r1", "meta": {"versionId": "1"}}
            )
        )
        jobs.poll_job("city", settings)
        assert flag.call_count == 1 and risk.call_count == 1
        jobs.poll_job("city", settings)  # nothing changed: nothing sent again
        assert flag.call_count == 1 and risk.call_count == 1
    with Session(engine) as session:
        assert {i.status for i in session.exec(select(WritebackItem))} == {WritebackStatus.sent}


def test_a_poll_writes_nothing_when_it_is_off(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(engine, {})
    monkeypatch.setattr(jobs, "sync_and_assess", lambda *a, **k: _Synced())
    with respx.mock(assert_all_called=False) as mock:
        jobs.poll_job("city", settings)
        assert not mock.calls
    with Session(engine) as session:
        assert session.exec(select(WritebackItem)).first() is None
