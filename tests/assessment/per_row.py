"""The per-row path the assessment stage used before it was set-based, kept as the reference the
bulk path is compared with (test_bulk_equivalence.py, ``bench/scale.py --per-row``).

It calls the single-case services that the API and pages still use (``open_case``, ``assign``,
``update_priority``, ``apply_ehr_dates``, ``record_discharge``) once per case, each change flushed
with its event: exactly what ``sync_cases`` did before issue 17.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import and_, exists
from sqlmodel import Session, col, select

from discharge_bridge.cases.assignment import CoordinatorPicker
from discharge_bridge.cases.discharge import load_dispositions, record_discharge
from discharge_bridge.cases.events import EventKind, record_event
from discharge_bridge.cases.models import Case, CaseStatus
from discharge_bridge.cases.readiness import apply_ehr_dates
from discharge_bridge.cases.service import assign, open_case, update_priority
from discharge_bridge.cases.sync import FINISHED, NOT_A_STAY, CaseSyncStats
from discharge_bridge.db import utcnow
from discharge_bridge.ingest.models import EncounterSnapshot
from discharge_bridge.risk.models import RiskAssessment


def open_cases_per_row(
    session: Session, source_id: int, *, rules_version: str, encounter_fhir_ids: Sequence[str] | None = None
) -> int:
    has_case = exists().where(
        col(Case.source_id) == col(RiskAssessment.source_id),
        col(Case.encounter_fhir_id) == col(RiskAssessment.encounter_fhir_id),
    )
    query = select(RiskAssessment).where(
        RiskAssessment.source_id == source_id,
        RiskAssessment.rules_version == rules_version,
        col(RiskAssessment.flagged).is_(True),
        col(RiskAssessment.current).is_(True),
        ~has_case,
    )
    if encounter_fhir_ids is not None:
        query = query.where(col(RiskAssessment.encounter_fhir_id).in_(list(encounter_fhir_ids)))
    opened = 0
    pick = CoordinatorPicker(session, source_id)
    for row in session.exec(query.order_by(col(RiskAssessment.id))).all():
        case, created = open_case(
            session,
            source_id=source_id,
            encounter_fhir_id=row.encounter_fhir_id,
            patient_fhir_id=row.patient_fhir_id,
            priority=row.priority,
            reasons_concepts=[str(r.get("concept")) for r in row.reasons],
        )
        if created:
            assign(session, case, pick(case), actor="system")
        opened += created
    return opened


def _follow_withdrawal(session: Session, case: Case, *, flagged: bool, reasons: list[Any]) -> None:
    if not flagged and case.flag_withdrawn_at is None:
        case.flag_withdrawn_at = utcnow()
        session.add(case)
        record_event(session, case, actor="system", kind=EventKind.flag_withdrawn, data={})
    elif flagged and case.flag_withdrawn_at is not None:
        case.flag_withdrawn_at = None
        session.add(case)
        concepts = [str(r.get("concept")) for r in reasons if isinstance(r, dict)]
        record_event(session, case, actor="system", kind=EventKind.flag_restored, data={"flags": concepts})


def refresh_priorities_per_row(
    session: Session, source_id: int, *, rules_version: str, encounter_fhir_ids: Sequence[str] | None = None
) -> int:
    query = (
        select(Case, RiskAssessment)
        .join(
            RiskAssessment,
            and_(
                col(RiskAssessment.source_id) == Case.source_id,
                col(RiskAssessment.encounter_fhir_id) == Case.encounter_fhir_id,
            ),
        )
        .where(
            Case.source_id == source_id,
            Case.status == CaseStatus.open,
            RiskAssessment.rules_version == rules_version,
            col(RiskAssessment.current).is_(True),
        )
    )
    if encounter_fhir_ids is not None:
        query = query.where(col(Case.encounter_fhir_id).in_(list(encounter_fhir_ids)))
    changed = 0
    for case, row in session.exec(query.order_by(col(Case.id))).all():
        changed += update_priority(session, case, row.priority if row.flagged else None)
        if not case.opened_by_hand:
            _follow_withdrawal(session, case, flagged=row.flagged, reasons=row.reasons)
    return changed


def follow_encounters_per_row(
    session: Session, source_id: int, *, encounter_fhir_ids: Iterable[str] | None, mappings_dir: Path | None
) -> CaseSyncStats:
    stats = CaseSyncStats()
    now = utcnow()
    query = (
        select(Case, EncounterSnapshot)
        .join(
            EncounterSnapshot,
            and_(
                col(EncounterSnapshot.source_id) == Case.source_id,
                col(EncounterSnapshot.fhir_id) == Case.encounter_fhir_id,
            ),
        )
        .where(Case.source_id == source_id)
    )
    if encounter_fhir_ids is None:
        query = query.where(col(Case.actual_discharge_at).is_(None))
    else:
        query = query.where(col(Case.encounter_fhir_id).in_(sorted(set(encounter_fhir_ids))))
    dispositions = None
    for case, enc in session.exec(query.order_by(col(Case.id))).all():
        if enc.status in NOT_A_STAY:
            continue
        if case.actual_discharge_at is None:
            stats.dates += apply_ehr_dates(session, case, expected_discharge_at=enc.planned_end)
        if enc.status in FINISHED or (enc.period_end is not None and enc.period_end <= now):
            if dispositions is None and enc.discharge_disposition is not None:
                dispositions = load_dispositions(mappings_dir)
            stats.discharged += record_discharge(
                session,
                case,
                discharged_at=enc.period_end or enc.last_updated or enc.ingested_at,
                disposition_code=enc.discharge_disposition,
                dispositions=dispositions,
                mappings_dir=mappings_dir,
            )
    return stats


def sync_cases_per_row(
    session: Session,
    source_id: int,
    *,
    rules_version: str,
    encounter_fhir_ids: Iterable[str] | None = None,
    mappings_dir: Path | None = None,
) -> CaseSyncStats:
    """``sync_cases`` as it was: one case at a time."""
    ids = None if encounter_fhir_ids is None else sorted(set(encounter_fhir_ids))
    opened = open_cases_per_row(session, source_id, rules_version=rules_version, encounter_fhir_ids=ids)
    priorities = refresh_priorities_per_row(session, source_id, rules_version=rules_version, encounter_fhir_ids=ids)
    stats = follow_encounters_per_row(session, source_id, encounter_fhir_ids=ids, mappings_dir=mappings_dir)
    stats.opened, stats.priorities = opened, priorities
    return stats
