"""A few days of coordination work on the demo hospital, so every page has something to show.

Run once, after the first load: some patients medically ready for days with open barriers,
handoffs at several steps. Every change goes through the same services a coordinator's clicks
use (events, versions and checklists included), acted by the demo coordinators.
"""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, col, select

from discharge_bridge.cases.barriers import add_barrier
from discharge_bridge.cases.handoffs.models import DestinationType, HandoffStatus
from discharge_bridge.cases.handoffs.service import create_handoff, update_handoff
from discharge_bridge.cases.models import Barrier, BarrierCode, Case, CaseStatus
from discharge_bridge.cases.readiness import set_dates_by_person
from discharge_bridge.config import Settings
from discharge_bridge.db import get_engine, session_scope, utcnow

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
        return len(cases)


def _already_seeded(session: Session, source_id: int) -> bool:
    query = select(Barrier.id).join(Case, col(Case.id) == Barrier.case_id).where(Case.source_id == source_id)
    return session.exec(query.limit(1)).first() is not None
