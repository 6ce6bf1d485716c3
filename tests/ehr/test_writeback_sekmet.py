"""Write-back against the real simulator (``sekmet-fhir``): after a sync with write-back on, our Flags,
RiskAssessments and Tasks are on the server, found by our identifier; a second pass writes nothing
new; closing a case makes its Flag inactive there."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from discharge_bridge.assessment import sync_and_assess
from discharge_bridge.cases.models import Case, CaseEvent, CaseOutcome, CaseStatus
from discharge_bridge.cases.service import change_status
from discharge_bridge.cases.tasks.models import Task, TaskStatus
from discharge_bridge.config import Settings
from discharge_bridge.connections.service import add_source
from discharge_bridge.db import session_scope
from discharge_bridge.ehr.models import WritebackItem, WritebackStatus
from discharge_bridge.ehr.writeback.jobs import writeback_pass
from discharge_bridge.sources.models import SyncStatus
from tests.ingest.test_sekmet_sync import admission_bundle
from tests.support.sekmet import SekmetServer

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("db_settings", ["sqlite"], indirect=True)]


def found(sekmet: SekmetServer, resource_type: str, system: str, value: str) -> list[dict[str, Any]]:
    bundle = sekmet.get(resource_type, identifier=f"{system}|{value}")
    return [e["resource"] for e in bundle.get("entry") or [] if e.get("search", {}).get("mode", "match") == "match"]


def versions(sekmet: SekmetServer, resource_type: str) -> dict[str, str]:
    bundle = sekmet.get(resource_type, _count="1000")
    return {e["resource"]["id"]: e["resource"]["meta"]["versionId"] for e in bundle.get("entry") or []}


def test_write_back_against_the_simulator(sekmet: SekmetServer, engine: Engine, settings: Settings) -> None:
    system = settings.writeback_identifier_system
    sekmet.transaction(admission_bundle(6))
    with session_scope(engine) as session:
        source = add_source(session, name="sim", hospital="Simulated General", base_url=sekmet.base_url)
        # sekmet 0.1.1 cannot search RiskAssessment by identifier (400 to our If-None-Exist): create it by id
        source.writeback = {"enabled": True, "create_by": {"RiskAssessment": "id"}}
        session.add(source)
    synced = sync_and_assess("sim", engine=engine, settings=settings)
    assert synced.status == SyncStatus.ok, synced.error

    first = writeback_pass("sim", settings, engine=engine)
    assert first is not None
    with Session(engine) as session:
        cases = list(session.exec(select(Case).order_by(col(Case.id))))
        tasks = list(session.exec(select(Task)))
        items = list(session.exec(select(WritebackItem)))
    assert cases and tasks, "the sync opened no case: nothing to write back"
    assert first.sent.sent == len(items) and first.sent.failed == 0, [i.last_error for i in items]
    assert {i.status for i in items} == {WritebackStatus.sent}
    for case in cases:
        flags = found(sekmet, "Flag", system, f"flag-sim-{case.id}")
        assert len(flags) == 1 and flags[0]["status"] == "active"
        assert flags[0]["subject"] == {"reference": f"Patient/{case.patient_fhir_id}"}
        risk = sekmet.get(f"RiskAssessment/risk-sim-{case.id}")  # by id: sekmet cannot search it by identifier
        assert risk["identifier"][0] == {"use": "official", "system": system, "value": f"risk-sim-{case.id}"}
        assert risk["status"] == "final" and risk["basis"]
    for task in tasks:
        assert len(found(sekmet, "Task", system, f"task-sim-{task.id}")) == 1
    before = {t: versions(sekmet, t) for t in ("Flag", "RiskAssessment", "Task")}
    assert sum(len(v) for v in before.values()) == len(items)

    second = writeback_pass("sim", settings, engine=engine)  # nothing changed: nothing written
    assert second is not None and (second.sent.sent, second.reconciled.created, second.reconciled.changed) == (0, 0, 0)
    assert {t: versions(sekmet, t) for t in before} == before  # sekmet bumps a version even on an unchanged PUT

    with session_scope(engine) as session:
        case = session.get(Case, cases[0].id)
        assert case is not None
        change_status(session, case, CaseStatus.closed, actor="anna", outcome=CaseOutcome.not_needed)
    third = writeback_pass("sim", settings, engine=engine)
    assert third is not None and third.sent.failed == 0
    flag = found(sekmet, "Flag", system, f"flag-sim-{cases[0].id}")
    assert len(flag) == 1 and flag[0]["status"] == "inactive" and "end" in flag[0]["period"]
    assert flag[0]["meta"]["versionId"] == "2"  # created, then updated once: no duplicate, no extra write
    cancelled = [t for t in tasks if t.case_id == cases[0].id]
    for task in cancelled:
        assert found(sekmet, "Task", system, f"task-sim-{task.id}")[0]["status"] == "cancelled"

    # a nurse completes one of our Tasks in the EHR: our task follows, as ehr:sim
    open_task = next(t for t in tasks if t.case_id != cases[0].id)
    remote = found(sekmet, "Task", system, f"task-sim-{open_task.id}")[0]
    sekmet.put({**remote, "status": "completed"})
    fourth = writeback_pass("sim", settings, engine=engine)
    assert fourth is not None and fourth.sent.applied == 1
    with Session(engine) as session:
        moved = session.get(Task, open_task.id)
        events = session.exec(select(CaseEvent).where(CaseEvent.case_id == open_task.case_id)).all()
    assert moved is not None and moved.status == TaskStatus.completed
    assert any(e.actor == "ehr:sim" for e in events)
    assert found(sekmet, "Task", system, f"task-sim-{open_task.id}")[0]["status"] == "completed"
