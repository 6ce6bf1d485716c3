"""The coordinator's worklist: current flagged admissions, highest priority first."""

from __future__ import annotations

from typing import Literal

from sqlalchemy import ColumnElement, func
from sqlmodel import Session, and_, col, select

from discharge_bridge.cases.models import Case
from discharge_bridge.cases.repository import has_open_cases, scoped
from discharge_bridge.ingest.models import EncounterSnapshot
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.sources.models import Source
from discharge_bridge.users.principal import Principal
from discharge_bridge.users.roles import Role
from discharge_bridge.worklists.schemas import WorklistItem, WorklistPage

PRIORITY_RANK = {"high": 3, "medium": 2, "low": 1}
Half = Literal["mine", "all"]  # a coordinator's own cases, or every case of the hospitals they see


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


def cases_of(
    session: Session, items: list[WorklistItem], *, source_ids: list[int] | None
) -> dict[tuple[str, str], Case]:
    """The case each listed admission already has, by (source name, encounter), among visible sources."""
    if not items:
        return {}
    query = (
        select(Case, Source.name)
        .join(Source, col(Source.id) == Case.source_id)
        .where(col(Case.encounter_fhir_id).in_({i.encounter for i in items}))
    )
    return {(name, case.encounter_fhir_id): case for case, name in session.exec(scoped(query, source_ids))}


def worklist_half(session: Session, principal: Principal, asked: Half | None) -> tuple[Half, bool]:
    """Which part of the lists the reader sees ("mine" or "all") and whether they may switch: a
    coordinator may, and starts on their own cases when they have open ones; everyone else sees all."""
    if principal.role != Role.coordinator:
        return "all", False
    if asked is not None:
        return asked, True
    mine = has_open_cases(session, principal.username, source_ids=principal.scope)
    return ("mine" if mine else "all"), True
