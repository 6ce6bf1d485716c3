"""The write-back outbox: what each case should look like on the EHR (``reconcile``), and sending it.

``reconcile`` turns the cases of a source changed since its last pass into desired resources
(ehr/writeback/resources.py) and upserts one ``WritebackItem`` per resource: an item whose desired
hash differs from what the server last accepted is pending. It reads in batches, a few set-based
queries per batch, and touches only cases changed since the source's watermark
(``Source.writeback["reconciled_at"]``, minus a slack for transactions that committed late): the
case row, its tasks, its latest risk assessment or its bedside assessment. A pass with nothing
changed writes no item.

Sending is ``ehr/writeback/send.py``. Nothing about a patient is logged here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, exists, insert, or_
from sqlmodel import Session, col, select

from discharge_bridge.cases.models import Assessment, Case, CaseStatus
from discharge_bridge.cases.tasks.models import Task
from discharge_bridge.db import utcnow
from discharge_bridge.ehr.models import WritebackItem, WritebackStatus
from discharge_bridge.ehr.writeback.resources import (
    RESOURCE_TYPES,
    CaseFacts,
    RiskFacts,
    TaskFacts,
    content_of,
    digest,
    flag,
    identifier_value,
    risk_assessment,
    task,
)
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.sources.models import Source

log = logging.getLogger(__name__)

BATCH = 500
RECENTLY_CLOSED = timedelta(days=30)  # a case closed longer ago than this is no longer looked at
SLACK = timedelta(minutes=2)  # changes committed this long after their timestamp are still seen
ITEMS: Table = WritebackItem.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class WritebackConfig:
    """``Source.writeback``: ``{"enabled": true, "resources": ["Flag", "RiskAssessment", "Task"]}``."""

    enabled: bool
    resources: tuple[str, ...]

    @classmethod
    def of(cls, source: Source) -> WritebackConfig:
        raw = source.writeback or {}
        wanted = raw.get("resources") or list(RESOURCE_TYPES)
        return cls(bool(raw.get("enabled")), tuple(t for t in RESOURCE_TYPES if t in wanted))


@dataclass
class ReconcileResult:
    cases: int = 0  # cases looked at
    created: int = 0  # items new
    changed: int = 0  # items whose desired state changed (pending again)


def _changed_since(source_id: int, since: datetime | None, now: datetime) -> Any:
    """Ids of the source's open cases and those closed lately, changed after ``since`` (all when None)."""
    query = select(Case.id).where(
        Case.source_id == source_id,
        or_(col(Case.status) == CaseStatus.open, col(Case.closed_at) > now - RECENTLY_CLOSED),
    )
    if since is not None:
        query = query.where(
            or_(
                col(Case.updated_at) > since,
                exists().where(col(Task.case_id) == Case.id, col(Task.updated_at) > since),
                exists().where(col(Assessment.case_id) == Case.id, col(Assessment.updated_at) > since),
                exists().where(
                    col(RiskAssessment.source_id) == Case.source_id,
                    col(RiskAssessment.encounter_fhir_id) == Case.encounter_fhir_id,
                    col(RiskAssessment.assessed_at) > since,
                ),
            )
        )
    return query.order_by(col(Case.id))


def _latest_risks(session: Session, source_id: int, encounters: list[str]) -> dict[str, RiskAssessment]:
    rows = session.exec(
        select(RiskAssessment)
        .where(RiskAssessment.source_id == source_id, col(RiskAssessment.encounter_fhir_id).in_(encounters))
        .order_by(col(RiskAssessment.assessed_at), col(RiskAssessment.id))
    )
    return {row.encounter_fhir_id: row for row in rows}  # the last one of each admission wins


def corrected_away(risk: RiskAssessment | None, assessment: Assessment | None) -> bool:
    """Every concept the flag rests on was found wrong at the bedside (its latest correction says so)."""
    if risk is None or not risk.flagged or assessment is None or not assessment.flag_corrections:
        return False
    flagged = {part for r in risk.reasons for part in str(r.get("concept", "")).split("+") if part}
    latest: dict[str, bool] = {}
    for correction in assessment.flag_corrections:
        latest[str(correction.get("concept"))] = bool(correction.get("correct"))
    return bool(flagged) and all(latest.get(concept) is False for concept in flagged)


def case_facts(source: Source, case: Case, risk: RiskAssessment | None, assessment: Assessment | None) -> CaseFacts:
    assert case.id is not None
    return CaseFacts(
        id=case.id,
        source=source.name,
        patient_id=case.patient_fhir_id,
        encounter_id=case.encounter_fhir_id,
        status=str(case.status),
        opened_at=case.opened_at,
        closed_at=case.closed_at,
        flag_withdrawn_at=case.flag_withdrawn_at,
        corrected_away=corrected_away(risk, assessment),
    )


def risk_facts(risk: RiskAssessment) -> RiskFacts:
    return RiskFacts(
        rules_version=risk.rules_version,
        score=risk.score,
        priority=risk.priority if risk.flagged else None,
        reasons=list(risk.reasons or []),
        assessed_at=risk.assessed_at,
        first_flagged_at=risk.first_flagged_at,
    )


def task_facts(row: Task) -> TaskFacts:
    assert row.id is not None
    return TaskFacts(
        id=row.id,
        status=str(row.status),
        kind=str(row.kind),
        domain=str(row.domain),
        description=row.description,
        owner=row.owner,
        due_at=row.due_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        status_reason=row.status_reason,
    )


def desired_for(
    source: Source,
    config: WritebackConfig,
    case: Case,
    risk: RiskAssessment | None,
    assessment: Assessment | None,
    tasks: Iterable[Task],
    *,
    system: str,
    existing: dict[tuple[str, str], WritebackItem],
) -> list[tuple[str, str, dict[str, Any]]]:
    """(resource type, identifier value, resource) the EHR should hold for one case.

    A Flag and a RiskAssessment once the admission was flagged (the Flag is kept, inactive, after
    the flag goes); a RiskAssessment sent once and changed since is ``amended``.
    """
    facts = case_facts(source, case, risk, assessment)
    out: list[tuple[str, str, dict[str, Any]]] = []
    flag_key = ("Flag", identifier_value("Flag", source.name, facts.id))
    flagged = risk is not None and risk.flagged
    if "Flag" in config.resources and (flagged or flag_key in existing):
        out.append((*flag_key, flag(facts, risk_facts(risk) if risk is not None else None, system=system)))
    risk_key = ("RiskAssessment", identifier_value("RiskAssessment", source.name, facts.id))
    if "RiskAssessment" in config.resources and risk is not None and (flagged or risk_key in existing):
        made = risk_assessment(facts, risk_facts(risk), system=system)
        before = existing.get(risk_key)
        if before is not None and made["status"] == "final":
            sent_before = before.sent_hash is not None
            if before.desired.get("status") == "amended" or (
                sent_before and content_of(before.desired) != content_of(made)
            ):
                made["status"] = "amended"
        out.append((*risk_key, made))
    if "Task" in config.resources:
        for row in tasks:
            facts_of_task = task_facts(row)
            out.append(
                (
                    "Task",
                    identifier_value("Task", source.name, facts_of_task.id),
                    task(facts, facts_of_task, system=system),
                )
            )
    return out


def upsert_item(
    session: Session,
    source_id: int,
    case_id: int | None,
    key: tuple[str, str],
    resource: dict[str, Any],
    existing: dict[tuple[str, str], WritebackItem],
    now: datetime,
    new_rows: list[dict[str, Any]],
) -> str | None:
    """ "created" (a row appended to ``new_rows``, inserted in bulk by the caller), "changed" or None
    (the item already wants exactly this)."""
    wanted = digest(resource)
    item = existing.get(key)
    if item is None:
        new_rows.append(
            {
                "source_id": source_id,
                "case_id": case_id,
                "resource_type": key[0],
                "identifier": key[1],
                "desired": resource,
                "desired_hash": wanted,
                "status": WritebackStatus.pending.value,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
        )
        return "created"
    if item.desired_hash == wanted:
        return None
    item.desired, item.desired_hash, item.updated_at = resource, wanted, now
    if item.sent_hash == wanted:
        item.status = WritebackStatus.sent  # changed back to what the server already holds
    else:  # a new desired state: a failed item is tried again, from the first attempt
        item.status, item.attempts, item.next_attempt_at = WritebackStatus.pending, 0, now
    session.add(item)
    return "changed"


def reconcile(session: Session, source: Source, *, now: datetime | None = None, system: str) -> ReconcileResult:
    """Bring the source's outbox level with its cases; advances the source's watermark. Flushes only."""
    now = now or utcnow()
    config = WritebackConfig.of(source)
    result = ReconcileResult()
    if not config.enabled or source.id is None:
        return result
    raw_since = (source.writeback or {}).get("reconciled_at")
    since = datetime.fromisoformat(raw_since) - SLACK if raw_since else None
    case_ids = [i for i in session.exec(_changed_since(source.id, since, now)) if i is not None]
    for start in range(0, len(case_ids), BATCH):
        chunk = case_ids[start : start + BATCH]
        cases = list(session.exec(select(Case).where(col(Case.id).in_(chunk)).order_by(col(Case.id))))
        risks = _latest_risks(session, source.id, [c.encounter_fhir_id for c in cases])
        assessments = {a.case_id: a for a in session.exec(select(Assessment).where(col(Assessment.case_id).in_(chunk)))}
        tasks: dict[int, list[Task]] = {}
        for row in session.exec(select(Task).where(col(Task.case_id).in_(chunk)).order_by(col(Task.id))):
            tasks.setdefault(row.case_id, []).append(row)
        items = session.exec(
            select(WritebackItem).where(WritebackItem.source_id == source.id, col(WritebackItem.case_id).in_(chunk))
        )
        existing = {(i.resource_type, i.identifier): i for i in items}
        new_rows: list[dict[str, Any]] = []
        for case in cases:
            assert case.id is not None
            wanted = desired_for(
                source,
                config,
                case,
                risks.get(case.encounter_fhir_id),
                assessments.get(case.id),
                tasks.get(case.id, []),
                system=system,
                existing=existing,
            )
            for resource_type, value, resource in wanted:
                key = (resource_type, value)
                done = upsert_item(session, source.id, case.id, key, resource, existing, now, new_rows)
                if done == "created":
                    result.created += 1
                elif done == "changed":
                    result.changed += 1
        result.cases += len(cases)
        session.flush()
        if new_rows:  # Core, not ORM objects: a first pass over 100,000 cases makes 400,000 of them
            session.execute(insert(ITEMS), new_rows)
    source.writeback = {**(source.writeback or {}), "reconciled_at": now.isoformat()}
    session.add(source)
    session.flush()
    return result
