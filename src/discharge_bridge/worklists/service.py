"""The coordinator's worklist: current flagged admissions, highest priority first."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func
from sqlmodel import Session, and_, col, select

from discharge_bridge.ingest.models import EncounterSnapshot
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.sources.models import Source
from discharge_bridge.worklists.schemas import WorklistItem, WorklistPage

PRIORITY_RANK = {"high": 3, "medium": 2, "low": 1}


def worklist(
    session: Session,
    *,
    rules_version: str,
    source_ids: list[int] | None = None,
    min_priority: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> WorklistPage:
    """Flagged assessments of the active rule set whose encounter is still a current stay."""
    conditions: list[ColumnElement[bool]] = [
        col(RiskAssessment.rules_version) == rules_version,
        col(RiskAssessment.flagged).is_(True),
        col(RiskAssessment.current).is_(True),
    ]
    if source_ids is not None:
        conditions.append(col(RiskAssessment.source_id).in_(source_ids))
    if min_priority:
        conditions.append(col(RiskAssessment.priority_rank) >= PRIORITY_RANK[min_priority])
    where = and_(*conditions)
    total = session.exec(select(func.count()).select_from(RiskAssessment).where(where)).one()
    query = (
        select(RiskAssessment, EncounterSnapshot, Source)
        .join(
            EncounterSnapshot,
            and_(
                EncounterSnapshot.source_id == RiskAssessment.source_id,
                EncounterSnapshot.fhir_id == RiskAssessment.encounter_fhir_id,
            ),
        )
        .join(Source, col(Source.id) == RiskAssessment.source_id)
        .where(where)
        .order_by(
            col(RiskAssessment.priority_rank).desc(),
            col(RiskAssessment.score).desc(),
            col(EncounterSnapshot.period_start).asc(),
            col(RiskAssessment.id).asc(),
        )
        .limit(limit)
        .offset(offset)
    )
    items = [
        WorklistItem(
            source=source.name,
            hospital=source.hospital,
            patient=row.patient_fhir_id,
            encounter=row.encounter_fhir_id,
            priority=row.priority or "low",
            score=row.score,
            reasons=row.reasons,  # type: ignore[arg-type]
            admitted_at=enc.period_start,
            age=row.age,
            ward=enc.ward,
            bed=enc.bed,
            encounter_status=enc.status,
            lace=WorklistItem.lace_of(row.lace),
            rules_version=row.rules_version,
            flagged_at=row.first_flagged_at,
        )
        for row, enc, source in session.exec(query)
    ]
    return WorklistPage(total=total, items=items)
