"""The receiver portal's data ("Gravity Light"): the referrals addressed to one organisation, with the
minimum a receiving organisation needs to give the help, and nothing else.

What a receiver sees of one referral, and why:
- the referral: its id, status and the time each status was reached, the reason and needs the
  coordinator wrote for them, the documents checklist (what is gathered), the date they proposed,
  when their answer is due;
- the service it was sent to (name and category), the hospital (its source name), the coordinator's
  name (the user model holds no phone or e-mail: the hospital's number is in the directory);
- the person: name, age (never the birth date), sex, ward, and the expected discharge date (when the
  help must be ready); the phone only when a recorded consent covers this organisation (a referral
  that needs no consent, to a clinical service, does not pass the phone on);
- never identifiers, the address, diagnoses, flags, the assessment, other referrals or other cases.

A referral is shown only when it is addressed to the organisation AND, if its service requires
consent, a consent covers that organisation or category at the moment of the read
(``consent.service.covering_consent``): a revoked or expired consent hides it at once. Lists page by
referral id (keyset). Callers record each read in the access log (``access.record_view``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from discharge_bridge.cases.consent.service import covering_consent
from discharge_bridge.cases.delivered.catalogue import kind_for_category
from discharge_bridge.cases.delivered.service import record_service
from discharge_bridge.cases.errors import InvalidInput
from discharge_bridge.cases.models import Case
from discharge_bridge.cases.referrals.errors import ReferralNotFound
from discharge_bridge.cases.referrals.models import REFERRAL_TRANSITIONS, Referral, ReferralStatus
from discharge_bridge.cases.referrals.person import briefs
from discharge_bridge.cases.referrals.service import move_referral, status_dates
from discharge_bridge.db import utcnow
from discharge_bridge.directory.models import DirectoryService
from discharge_bridge.sources.models import Source
from discharge_bridge.users.models import User
from discharge_bridge.users.roles import Role

PAGE_MAX = 200
# What a receiver may do: never send (requested) nor cancel for the hospital.
RECEIVER_MOVES = (
    ReferralStatus.received,
    ReferralStatus.accepted,
    ReferralStatus.rejected,
    ReferralStatus.in_progress,
    ReferralStatus.completed,
)
NEW = (ReferralStatus.requested, ReferralStatus.received)
WORKING = (ReferralStatus.accepted, ReferralStatus.in_progress)


@dataclass(frozen=True)
class PortalReferral:
    id: int
    status: ReferralStatus
    version: int
    allowed: list[ReferralStatus]
    status_dates: dict[str, datetime | None]
    status_reason: str | None
    reason: str | None
    needs: list[str]
    documents: list[dict[str, Any]]
    proposed_date: date | None
    answer_due_at: datetime | None
    service_name: str
    service_category: str
    hospital: str
    coordinator: str | None
    name: str | None
    age: int | None
    sex: str | None
    ward: str | None
    expected_discharge_at: datetime | None
    phone: str | None
    timezone: str = "UTC"  # the hospital's, for showing times
    # For the access log only, never shown: whose identity the read showed.
    patient: tuple[int, str] = field(repr=False, default=(0, ""))

    @property
    def group(self) -> str:
        """The portal's tabs: new, in progress, done."""
        if self.status in NEW:
            return "new"
        if self.status in WORKING:
            return "in_progress"
        return "done"


def _document(d: dict[str, Any]) -> dict[str, Any]:
    return {"code": d.get("code"), "label": d.get("label"), "done": bool(d.get("done"))}


def _covered(session: Session, referral: Referral, service: DirectoryService, case: Case, now: datetime) -> bool:
    if not service.requires_consent:
        return True
    found = covering_consent(
        session,
        source_id=case.source_id,
        patient_fhir_id=case.patient_fhir_id,
        organisation_id=referral.organisation_id,
        category=str(service.category),
        at=now,
    )
    return found is not None


def _views(session: Session, referrals: list[Referral], now: datetime) -> list[PortalReferral]:
    """The shown ones among ``referrals`` (consent checked), in their order."""
    if not referrals:
        return []
    service_ids = {r.service_id for r in referrals}
    query = select(DirectoryService).where(col(DirectoryService.id).in_(service_ids))
    services = {s.id: s for s in session.exec(query)}
    cases = {c.id: c for c in session.exec(select(Case).where(col(Case.id).in_({r.case_id for r in referrals})))}
    shown = [r for r in referrals if _covered(session, r, services[r.service_id], cases[r.case_id], now)]
    if not shown:
        return []
    # The phone goes only where a consent covers this organisation (not for no-consent services).
    phoned = {r.case_id for r in shown if services[r.service_id].requires_consent}
    shown_cases = [cases[r.case_id] for r in shown]
    people = briefs(session, shown_cases, now.date(), with_phone=True)
    source_ids = {c.source_id for c in shown_cases}
    hospitals = {s.id: s for s in session.exec(select(Source).where(col(Source.id).in_(source_ids)))}
    wanted = {c.coordinator for c in shown_cases if c.coordinator}
    names = {u.username: u.display_name for u in session.exec(select(User).where(col(User.username).in_(wanted)))}
    views = []
    for r in shown:
        case, service = cases[r.case_id], services[r.service_id]
        person = people[r.case_id]
        assert r.id is not None
        status = ReferralStatus(r.status)
        views.append(
            PortalReferral(
                id=r.id,
                status=status,
                version=r.version,
                allowed=[s for s in REFERRAL_TRANSITIONS.allowed(status) if s in RECEIVER_MOVES],
                status_dates=status_dates(r),
                status_reason=r.status_reason,
                reason=r.reason,
                needs=list(r.needs),
                documents=[_document(d) for d in r.documents],
                proposed_date=r.proposed_date,
                answer_due_at=r.answer_due_at,
                service_name=service.name,
                service_category=str(service.category),
                hospital=hospitals[case.source_id].name,
                coordinator=names.get(case.coordinator or "", case.coordinator),
                name=person.name,
                age=person.age,
                sex=person.sex,
                ward=person.ward,
                expected_discharge_at=case.expected_discharge_at,
                phone=person.phone if r.case_id in phoned else None,
                timezone=hospitals[case.source_id].timezone,
                patient=(case.source_id, case.patient_fhir_id),
            )
        )
    return views


def portal_referrals(
    session: Session,
    organisation_id: int,
    *,
    after: int | None = None,
    limit: int = 50,
    now: datetime | None = None,
) -> list[PortalReferral]:
    """The organisation's referrals with id > ``after``, by id, at most ``limit`` shown ones."""
    now = now or utcnow()
    limit = min(max(limit, 1), PAGE_MAX)
    found: list[PortalReferral] = []
    cursor = after
    while len(found) < limit:
        query = select(Referral).where(Referral.organisation_id == organisation_id).order_by(col(Referral.id))
        if cursor is not None:
            query = query.where(col(Referral.id) > cursor)
        batch = list(session.exec(query.limit(limit)))
        if not batch:
            break
        found += _views(session, batch, now)
        cursor = batch[-1].id
        if len(batch) < limit:
            break
    return found[:limit]


def portal_referral(
    session: Session, organisation_id: int, referral_id: int, *, now: datetime | None = None
) -> PortalReferral | None:
    """One referral as the organisation may see it; None when it is another's or its consent is missing."""
    referral = session.get(Referral, referral_id)
    if referral is None or referral.organisation_id != organisation_id:
        return None
    views = _views(session, [referral], now or utcnow())
    return views[0] if views else None


def portal_move(
    session: Session,
    organisation_id: int,
    referral_id: int,
    to: ReferralStatus | str,
    *,
    actor: str,
    reason: str | None = None,
    proposed_date: date | None = None,
    note: str | None = None,
    expected_version: int | None = None,
    mappings_dir: Path | None = None,
) -> Referral:
    """A receiver's answer, through the referral service (``move_referral``): received, accepted,
    rejected (with a reason), in progress, completed; or, with ``to`` the current status, only a
    proposed date. A referral the organisation may not see is ReferralNotFound, as for a read.

    Completing it ("help delivered") also records one service delivered of the kind the catalogue
    ties to the service's category (if any), by the receiver, with ``note``, in the same transaction.
    """
    referral = session.get(Referral, referral_id)
    if referral is None or portal_referral(session, organisation_id, referral_id) is None:
        raise ReferralNotFound(referral_id)
    target = ReferralStatus(to)
    if target != referral.status and target not in RECEIVER_MOVES:
        moves = ", ".join(s.value for s in RECEIVER_MOVES)
        raise InvalidInput(("body", "status"), f"a receiver may move a referral to: {moves}")
    move_referral(
        session,
        referral,
        target,
        actor=actor,
        reason=reason,
        proposed_date=proposed_date,
        expected_version=expected_version,
    )
    if target == ReferralStatus.completed:
        service = session.get(DirectoryService, referral.service_id)
        case = session.get(Case, referral.case_id)
        assert service is not None and case is not None
        kind = kind_for_category(str(service.category), mappings_dir)
        if kind is not None:
            record_service(
                session,
                case,
                kind=kind.code,
                delivered_at=None,
                actor=actor,
                role=Role.receiver,
                note=note,
                referral_id=referral.id,
                mappings_dir=mappings_dir,
            )
    return referral
