"""What a psychologist may see: the open cases of their hospitals with a live referral to a psychologist.

A referral counts unless it was rejected or cancelled (a completed one keeps the case in view: the
psychologist records the sessions given). ``psychology_case`` is the one check the API and the pages
use (``deps.get_case_or_404`` for the psychology permission), so no route can show another case.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import Session, col, select

from discharge_bridge.cases.models import Case, CaseStatus
from discharge_bridge.cases.referrals.models import Referral, ReferralStatus
from discharge_bridge.cases.referrals.person import PersonBrief, briefs
from discharge_bridge.directory.models import DirectoryService, ServiceCategory

_DEAD = (ReferralStatus.rejected.value, ReferralStatus.cancelled.value)


def _psychology_referrals(case_ids: list[int] | None = None):  # type: ignore[no-untyped-def]
    query = (
        select(Referral)
        .join(DirectoryService, col(DirectoryService.id) == Referral.service_id)
        .where(DirectoryService.category == ServiceCategory.psychologist.value, col(Referral.status).not_in(_DEAD))
    )
    if case_ids is not None:
        query = query.where(col(Referral.case_id).in_(case_ids))
    return query


def referred_to_psychologist(session: Session, case_id: int) -> bool:
    return session.exec(_psychology_referrals([case_id]).limit(1)).first() is not None


def psychology_case(session: Session, case_id: int, *, source_ids: list[int] | None) -> Case | None:
    """The case if it is of a hospital in ``source_ids`` and has a live referral to a psychologist."""
    case = session.get(Case, case_id)
    if case is None or (source_ids is not None and case.source_id not in source_ids):
        return None
    return case if referred_to_psychologist(session, case_id) else None


@dataclass(frozen=True)
class PsychologyCase:
    case_id: int
    source_id: int
    patient_fhir_id: str
    person: PersonBrief
    referral_id: int
    referral_status: str
    reason: str | None
    needs: list[str]
    requested_at: datetime


def psychology_cases(
    session: Session,
    *,
    source_ids: list[int] | None,
    today: date,
    after: int | None = None,
    limit: int = 100,
    case_id: int | None = None,
) -> list[PsychologyCase]:
    """Open cases of these hospitals with a live psychologist referral, one row per referral, by referral id."""
    query = (
        _psychology_referrals()
        .join(Case, col(Case.id) == Referral.case_id)
        .where(Case.status == CaseStatus.open.value)
        .order_by(col(Referral.id))
        .limit(limit)
    )
    if source_ids is not None:
        query = query.where(col(Case.source_id).in_(source_ids))
    if after is not None:
        query = query.where(col(Referral.id) > after)
    if case_id is not None:
        query = query.where(Referral.case_id == case_id)
    referrals = list(session.exec(query))
    cases = {c.id: c for c in session.exec(select(Case).where(col(Case.id).in_({r.case_id for r in referrals})))}
    people = briefs(session, list(cases.values()), today)
    rows = []
    for r in referrals:
        case = cases[r.case_id]
        assert r.id is not None and case.id is not None
        rows.append(
            PsychologyCase(
                case.id,
                case.source_id,
                case.patient_fhir_id,
                people[case.id],
                r.id,
                str(r.status),
                r.reason,
                list(r.needs),
                r.requested_at,
            )
        )
    return rows
