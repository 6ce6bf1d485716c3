"""A few days of coordination work on the demo hospital, so every page has something to show.

Run once, after the first load: some patients medically ready for days with open barriers,
handoffs at several steps, and on the next cases the handoff network: a consent, referrals to the
demo directory's services (one waiting on the receiver portal, one accepted there, one to legal
aid) and the services delivered so far. Every change goes through the same services a coordinator's clicks
use (events, versions and checklists included), acted by the demo coordinators.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from discharge_bridge.cases.barriers import add_barrier
from discharge_bridge.cases.consent.service import record_consent
from discharge_bridge.cases.delivered.service import record_service
from discharge_bridge.cases.handoffs.models import DestinationType, HandoffStatus
from discharge_bridge.cases.handoffs.service import create_handoff, update_handoff
from discharge_bridge.cases.models import Barrier, BarrierCode, Case, CaseStatus
from discharge_bridge.cases.readiness import set_dates_by_person
from discharge_bridge.cases.referrals.models import ReferralStatus
from discharge_bridge.cases.referrals.service import create_referral, move_referral
from discharge_bridge.config import Settings
from discharge_bridge.db import get_engine, session_scope, utcnow
from discharge_bridge.directory.service import service_by_code
from discharge_bridge.users.roles import Role

# (days medically ready, barriers, destination, how far the handoff has come)
STORIES: list[tuple[int, list[BarrierCode], DestinationType, list[HandoffStatus]]] = [
    (6, [BarrierCode.awaiting_placement, BarrierCode.documents], DestinationType.social_home, [HandoffStatus.referred]),
    (
        4,
        [BarrierCode.awaiting_care_package],
        DestinationType.home_with_care,
        [HandoffStatus.referred, HandoffStatus.accepted],
    ),
    (3, [BarrierCode.guardianship], DestinationType.gerontology_centre, []),
    (
        2,
        [BarrierCode.family_choice],
        DestinationType.relatives,
        [HandoffStatus.referred, HandoffStatus.accepted, HandoffStatus.scheduled],
    ),
    (1, [BarrierCode.awaiting_equipment], DestinationType.home_with_care, [HandoffStatus.referred]),
]


def seed_demo_activity(settings: Settings, source_id: int) -> int:
    """Write the stories onto the oldest open cases, once (a case with a barrier means done)."""
    now = utcnow()
    with session_scope(get_engine(settings)) as session:
        if _already_seeded(session, source_id):
            return 0
        cases = list(
            session.exec(
                select(Case)
                .where(Case.source_id == source_id, Case.status == CaseStatus.open)
                .order_by(col(Case.priority_rank).desc(), col(Case.id))
                .limit(len(STORIES))
            )
        )
        network = list(
            session.exec(
                select(Case)
                .where(Case.source_id == source_id, Case.status == CaseStatus.open)
                .order_by(col(Case.priority_rank).desc(), col(Case.id))
                .offset(len(STORIES))
                .limit(len(NETWORK))
            )
        )
        for case, (ready_days, barriers, destination, steps) in zip(cases, STORIES, strict=False):
            actor = case.coordinator or "anna"
            set_dates_by_person(session, case, {"medically_ready_at": now - timedelta(days=ready_days)}, actor=actor)
            for n, code in enumerate(barriers):
                add_barrier(
                    session, case, actor=actor, code=code, owner=actor, started_at=now - timedelta(days=ready_days - n)
                )
            handoff = create_handoff(
                session, case, actor=actor, destination_type=destination, mappings_dir=settings.mappings_dir
            )
            for step in steps:
                session.flush()
                update_handoff(session, case, handoff, actor=actor, expected_version=handoff.version, status=step)
        for case, (service_code, moves, delivered) in zip(network, NETWORK, strict=False):
            _network_story(session, settings, case, service_code, moves, delivered, now=now)
        return len(cases) + len(network)


# (the directory service referred to, the receiver's moves so far, services delivered on the case)
NETWORK: list[tuple[str, list[ReferralStatus], list[str]]] = [
    ("home-care-tverskoy", [], ["consultation", "referral_made"]),  # new on svetlana's portal
    ("home-care-tverskoy", [ReferralStatus.received, ReferralStatus.accepted], ["consultation", "referral_made"]),
    ("legal-aid", [ReferralStatus.accepted], ["consultation", "my_documents_application"]),
]


def _network_story(
    session: Session,
    settings: Settings,
    case: Case,
    service_code: str,
    moves: list[ReferralStatus],
    delivered: list[str],
    *,
    now: datetime,
) -> None:
    service = service_by_code(session, service_code)
    if service is None or service.id is None:  # an edited directory: no story
        return
    actor = case.coordinator or "anna"
    categories = ["home_care", "legal_aid", "psychologist", "social_protection"]
    record_consent(session, case, {"method": "signed_form", "categories": categories}, actor=actor)
    referral = create_referral(
        session, case, service_id=service.id, needs=["social"], reason="lives alone", actor=actor
    )
    for step in moves:
        session.flush()
        move_referral(session, referral, step, actor="svetlana", expected_version=referral.version)
    for kind in delivered:
        record_service(
            session,
            case,
            kind=kind,
            delivered_at=now - timedelta(hours=2),
            actor=actor,
            role=Role.coordinator,
            mappings_dir=settings.mappings_dir,
        )


def _already_seeded(session: Session, source_id: int) -> bool:
    query = select(Barrier.id).join(Case, col(Case.id) == Barrier.case_id).where(Case.source_id == source_id)
    return session.exec(query.limit(1)).first() is not None
