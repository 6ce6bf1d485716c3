"""Reads of cases and their parts, every one scoped to the sources the caller may see.

``source_ids`` None means every source; sign-in will pass the hospitals of the signed-in user.
Scoping lives here and nowhere else, so no route can forget it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import func
from sqlmodel import Session, SQLModel, col, select

from discharge_bridge import keyset
from discharge_bridge.cases.models import Assessment, Barrier, Case, CaseStatus, Priority
from discharge_bridge.ingest.models import EncounterSnapshot
from discharge_bridge.risk.models import RiskAssessment

Row = TypeVar("Row", bound=SQLModel)


def scoped(query: Any, source_ids: list[int] | None) -> Any:
    """Limit a query that selects from (or joins) Case to the given sources."""
    return query if source_ids is None else query.where(col(Case.source_id).in_(source_ids))


def get_case(session: Session, case_id: int, *, source_ids: list[int] | None = None) -> Case | None:
    return session.exec(scoped(select(Case).where(Case.id == case_id), source_ids)).first()


def get_case_for_encounter(
    session: Session, source_id: int, encounter_fhir_id: str, *, source_ids: list[int] | None = None
) -> Case | None:
    query = select(Case).where(Case.source_id == source_id, Case.encounter_fhir_id == encounter_fhir_id)
    return session.exec(scoped(query, source_ids)).first()


def get_child(
    session: Session, model: type[Row], row_id: int, *, source_ids: list[int] | None = None, case_id: int | None = None
) -> Row | None:
    """A task, handoff or barrier by id, if its case is in scope (and is ``case_id``, when given)."""
    query = select(model).join(Case, col(Case.id) == model.case_id).where(model.id == row_id)  # type: ignore[attr-defined]
    if case_id is not None:
        query = query.where(col(Case.id) == case_id)
    return session.exec(scoped(query, source_ids)).first()


@dataclass(frozen=True)
class CasePage:
    total: int  # exact up to keyset.TOTAL_CAP; ``total_more`` says there are more
    total_more: bool
    items: list[Case]
    next_after: str | None  # the cursor of the next page; None on the last


CASE_SORT = "cases"  # the cursor's sort name: highest priority first, then oldest opened, then id
_CASE_KEYS = [
    keyset.Key(col(Case.priority_rank), descending=True),
    keyset.Key(col(Case.opened_at)),
    keyset.Key(col(Case.id)),
]


def list_cases(
    session: Session,
    *,
    source_ids: list[int] | None = None,
    status: CaseStatus | None = None,
    priority: Priority | None = None,
    coordinator: str | None = None,
    limit: int = 50,
    after: str | None = None,
) -> CasePage:
    """Cases, highest priority first, then oldest opened (the order a coordinator works in), ``limit``
    rows after the cursor ``after`` (``keyset.InvalidCursor`` when it is not one of this list's)."""
    where: list[Any] = [] if source_ids is None else [col(Case.source_id).in_(source_ids)]
    if status is not None:
        where.append(col(Case.status) == status)
    if priority is not None:
        where.append(col(Case.priority) == priority)
    if coordinator is not None:
        where.append(col(Case.coordinator) == coordinator)
    total = keyset.capped_total(session, select(col(Case.id)).where(*where))
    page_where = list(where)
    if after is not None:
        last_id = keyset.decode(after, CASE_SORT)
        anchor = session.execute(
            scoped(select(*(k.expression for k in _CASE_KEYS)).where(col(Case.id) == last_id), source_ids)
        ).first()
        if anchor is None:
            raise keyset.InvalidCursor("the case it points after is gone or out of sight")
        page_where.append(keyset.after(_CASE_KEYS, list(anchor)))
    query = select(Case).where(*page_where).order_by(*keyset.order_by(_CASE_KEYS)).limit(limit + 1)
    rows = list(session.exec(query))
    more = len(rows) > limit
    rows = rows[:limit]
    next_after = keyset.encode(CASE_SORT, rows[-1].id) if more and rows and rows[-1].id is not None else None
    return CasePage(min(total, keyset.TOTAL_CAP), total > keyset.TOTAL_CAP, rows, next_after)


def has_open_cases(session: Session, coordinator: str, *, source_ids: list[int] | None = None) -> bool:
    """Whether ``coordinator`` has an open case among the given sources."""
    query = select(Case.id).where(Case.status == CaseStatus.open, Case.coordinator == coordinator)
    return session.exec(scoped(query, source_ids).limit(1)).first() is not None


def get_encounter(session: Session, source_id: int, encounter_fhir_id: str) -> EncounterSnapshot | None:
    query = select(EncounterSnapshot).where(
        EncounterSnapshot.source_id == source_id, EncounterSnapshot.fhir_id == encounter_fhir_id
    )
    return session.exec(query).first()


def latest_risk(session: Session, case: Case) -> RiskAssessment | None:
    """The most recent assessment of the case's admission (under whichever rule set scored it last)."""
    return latest_risk_of(session, case.source_id, case.encounter_fhir_id)


def latest_risk_of(session: Session, source_id: int, encounter_fhir_id: str) -> RiskAssessment | None:
    """The most recent assessment of an admission, with or without a case."""
    query = (
        select(RiskAssessment)
        .where(RiskAssessment.source_id == source_id, RiskAssessment.encounter_fhir_id == encounter_fhir_id)
        .order_by(col(RiskAssessment.assessed_at).desc(), col(RiskAssessment.id).desc())
        .limit(1)
    )
    return session.exec(query).first()


def get_assessment(session: Session, case_id: int) -> Assessment | None:
    return session.exec(select(Assessment).where(Assessment.case_id == case_id)).first()


def list_barriers(session: Session, case_id: int) -> list[Barrier]:
    query = select(Barrier).where(Barrier.case_id == case_id).order_by(col(Barrier.started_at), col(Barrier.id))
    return list(session.exec(query))


def count_by_status(session: Session, model: type[SQLModel], case_id: int) -> dict[str, int]:
    """How many tasks or handoffs of a case are in each status."""
    status = model.status  # type: ignore[attr-defined]
    query = select(status, func.count()).where(model.case_id == case_id).group_by(status)  # type: ignore[attr-defined]
    return {str(s): int(n) for s, n in session.exec(query)}
