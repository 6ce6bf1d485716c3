"""Plain factory functions for coordination tests: a source, admissions as snapshots, risk rows.

Snapshots go through the real ``normalise`` + ``upsert_snapshots`` so they look exactly like synced
ones; risk rows are written directly (the scoring itself is tested in tests/risk).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from discharge_bridge.app import create_app
from discharge_bridge.cases.models import Case
from discharge_bridge.cases.service import open_case
from discharge_bridge.config import Settings
from discharge_bridge.connections.service import add_source
from discharge_bridge.db import session_scope
from discharge_bridge.ingest.models import EncounterSnapshot
from discharge_bridge.ingest.normalise import normalise
from discharge_bridge.ingest.store import upsert_snapshots
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.sources.models import Source
from tests.support.fakefhir import BASE, encounter, patient

RULES = "test-rules"
_versions: dict[tuple[int, str], int] = {}


def make_source(session: Session, name: str = "city") -> Source:
    return add_source(session, name=name, hospital=f"{name.title()} Hospital", base_url=BASE)


def put_encounter(
    session: Session,
    source_id: int,
    eid: str,
    pid: str,
    *,
    status: str = "in-progress",
    end: str | None = None,
    disposition: str | None = None,
    planned_end: str | None = None,
    person: dict[str, Any] | None = None,
) -> None:
    """Store (or move forward) an admission and its patient, as a sync would.

    ``person``: Patient fields to add (name, identifier, telecom, address, contact...)."""
    extra: dict[str, Any] = {"period": {"start": "2026-11-01T09:30:00+03:00", **({"end": end} if end else {})}}
    if disposition:
        extra["hospitalization"] = {"dischargeDisposition": {"coding": [{"code": disposition}]}}
    if planned_end:
        extra["extension"] = [
            {
                "url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-Encounter.plannedEndDate",
                "valueDateTime": planned_end,
            }
        ]
    version = _versions[(source_id, eid)] = _versions.get((source_id, eid), 0) + 1
    resources = [patient(pid, **(person or {})), encounter(eid, pid, status=status, **extra)]
    for res in resources:
        res["meta"] = {"versionId": str(version)}
    upsert_snapshots(session, source_id, [normalise(r) for r in resources])


def put_risk(
    session: Session,
    source_id: int,
    eid: str,
    pid: str,
    *,
    priority: str | None = "high",
    concepts: tuple[str, ...] = ("lives_alone",),
    flagged: bool = True,
    current: bool = True,
    rules_version: str = RULES,
) -> RiskAssessment:
    started = session.exec(
        select(EncounterSnapshot.period_start).where(
            EncounterSnapshot.source_id == source_id, EncounterSnapshot.fhir_id == eid
        )
    ).first()
    row = RiskAssessment(
        source_id=source_id,
        encounter_fhir_id=eid,
        patient_fhir_id=pid,
        admitted_at=started,  # as the assessment copies it from the stored encounter
        rules_version=rules_version,
        score=len(concepts) * 3,
        priority=priority if flagged else None,
        priority_rank={"high": 3, "medium": 2, "low": 1}.get(priority or "", 0) if flagged else 0,
        flagged=flagged,
        current=current,
        inputs_digest="x",
        reasons=[{"concept": c, "rule": c, "points": 3, "evidence": [f"Condition/{c}"], "text": c} for c in concepts],
    )
    session.add(row)
    session.flush()
    return row


def move_admission(session: Session, source_id: int, eid: str, start: datetime) -> None:
    """The admission's start changed in the EHR: the stored encounter's, and its assessments'
    (``RiskAssessment.admitted_at``) as the re-assessment that follows would copy it."""
    session.execute(
        update(EncounterSnapshot)
        .where(col(EncounterSnapshot.source_id) == source_id, col(EncounterSnapshot.fhir_id) == eid)
        .values(period_start=start)
    )
    session.execute(
        update(RiskAssessment)
        .where(col(RiskAssessment.source_id) == source_id, col(RiskAssessment.encounter_fhir_id) == eid)
        .values(admitted_at=start)
    )


def flagged_case(session: Session, source_id: int, eid: str = "adm1", pid: str = "p1", **risk: Any) -> Case:
    """An admission with a stored encounter and a flag, and its case opened as the sync would."""
    put_encounter(session, source_id, eid, pid)
    row = put_risk(session, source_id, eid, pid, **risk)
    case, _ = open_case(
        session,
        source_id=source_id,
        encounter_fhir_id=eid,
        patient_fhir_id=pid,
        priority=row.priority,
        reasons_concepts=[r["concept"] for r in row.reasons],
    )
    return case


def api_client(settings: Settings, *, token: str | None = "t0ken") -> TestClient:
    """A TestClient on a fresh app whose API token is ``t0ken``, sending it unless ``token`` is None."""
    app = create_app(settings.model_copy(update={"api_token": SecretStr("t0ken")}))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return TestClient(app, headers=headers)


def seed_case(engine: Engine, **risk: Any) -> int:
    """A source "city", admission adm1 of p1 flagged high, and its case: returns the case id."""
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0, **risk)
        assert case.id is not None
        return case.id


def make_user(
    session: Session,
    username: str,
    role: str = "coordinator",
    sources: tuple[str, ...] = ("city",),
    *,
    password: str | None = "correct horse battery",
    locale: str = "en",
    organisation_id: int | None = None,
) -> int:
    """A user of the given role who may see ``sources`` (ignored for admins and receivers; a receiver
    works for ``organisation_id``); returns the id."""
    from discharge_bridge.users.roles import Role
    from discharge_bridge.users.service import add_user

    user = add_user(
        session,
        username=username,
        role=Role(role),
        sources=[] if role in ("admin", "receiver") else list(sources),
        password=password,
        locale=locale,
        organisation_id=organisation_id,
    )
    assert user.id is not None
    return user.id


def user_client(settings: Settings, engine: Engine, username: str, **user: Any) -> TestClient:
    """A TestClient sending an API token of a new user ``username`` (see ``make_user``)."""
    from discharge_bridge.users.service import issue_token

    with session_scope(engine) as session:
        make_user(session, username, **user)
        token = issue_token(session, username, "tests")
    return TestClient(create_app(settings), headers={"Authorization": f"Bearer {token}"})
