"""A small city with known answers for the figures and the situation report (tests/worklists).

Two hospitals: "city" in Europe/Moscow (UTC+3 all year) and "north" in UTC. The period is
Monday 2026-11-23 to Sunday 2026-12-06: ISO weeks 2026-W48 and 2026-W49. Case B is opened on
Sunday 2026-11-29 at 22:00 UTC, already Monday 01:00 in Moscow: week W49 on its hospital's
calendar, W48 on UTC's.

Cases (opened / first visit / first plan by a person / handoff completed / ready -> discharged, UTC):

- A city, Therapy, anna: 11-24 10:00 / +2 h assessment / +5 h / +3 days / 11-26 10:00 -> 11-28 (2 d)
- B city, Surgery, boris: 11-29 22:00 / +4 h first-visit task done / +10 h / none / still in
- C city, Therapy, anna: 12-01 08:00 / none / none (the scheduler's) / none / 12-02 08:00 -> 12-03 (1 d)
- D north, Ward 1, anna: 11-30 09:00 / +8 h assessment / +1 h / +5 days / 12-01 09:00 -> 12-05 (4 d)
- E city, Surgery, boris: opened before the period; 11-20 12:00 -> 11-25 (5 d)
- F city, Therapy, anna: opened before; ready 12-04 12:00 after it left at 06:00 (0 d)
- G city, Therapy, anna: opened before; no ready date, discharged 12-02
- X "other" hospital (never among the hospitals asked about): a bit of everything
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import time_machine
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from discharge_bridge.cases.delivered.models import ServiceDelivered
from discharge_bridge.cases.handoffs.models import DestinationType, Handoff, HandoffStatus
from discharge_bridge.cases.models import Case, CaseEvent
from discharge_bridge.cases.referrals.models import Referral, ReferralStatus
from discharge_bridge.cases.tasks.models import Task, TaskDomain, TaskKind, TaskStatus
from discharge_bridge.db import session_scope
from discharge_bridge.directory.models import DirectoryService, Organisation, ServiceCategory
from discharge_bridge.ingest.models import EncounterSnapshot
from discharge_bridge.worklists.periods import Period
from tests.support.factories import flagged_case, make_source

H = timedelta(hours=1)
D = timedelta(days=1)
PERIOD = Period(date(2026, 11, 23), date(2026, 12, 6))
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def at(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


@dataclass
class City:
    city: int
    north: int
    other: int
    cases: dict[str, int]


def _case(session: Session, source: int, name: str, *, opened: datetime, ward: str, coordinator: str) -> Case:
    with time_machine.travel(opened, tick=False):
        case = flagged_case(session, source, f"enc-{name}", f"p-{name}")
    enc = session.exec(
        select(EncounterSnapshot).where(
            EncounterSnapshot.source_id == source, EncounterSnapshot.fhir_id == f"enc-{name}"
        )
    ).one()
    enc.ward = ward
    session.add(enc)
    case.coordinator = coordinator
    session.add(case)
    session.flush()
    return case


def _discharge(session: Session, case: Case, ready: datetime | None, left: datetime) -> None:
    case.medically_ready_at = ready
    case.actual_discharge_at = left
    session.add(case)


def _event(session: Session, case: Case, kind: str, when: datetime, actor: str) -> None:
    assert case.id is not None
    session.add(CaseEvent(case_id=case.id, at=when, actor=actor, kind=kind, data={}))


def _task(session: Session, case: Case, when: datetime, actor: str) -> None:
    assert case.id is not None
    session.add(
        Task(
            case_id=case.id,
            domain=TaskDomain.social,
            description="Apply for home care",
            created_at=when,
            created_by=actor,
            status_changed_at=when,
            updated_at=when,
        )
    )


def _handoff_done(session: Session, case: Case, proposed: datetime, done: datetime) -> None:
    assert case.id is not None
    session.add(
        Handoff(
            case_id=case.id,
            destination_type=DestinationType.home_with_care,
            status=HandoffStatus.completed,
            proposed_at=proposed,
            completed_at=done,
        )
    )


def _referral(
    session: Session,
    case: Case,
    service: DirectoryService,
    status: ReferralStatus,
    requested: datetime,
    **times: datetime,
) -> None:
    assert case.id is not None and service.id is not None
    session.add(
        Referral(
            case_id=case.id,
            service_id=service.id,
            organisation_id=service.organisation_id,
            status=status,
            requested_at=requested,
            **times,  # type: ignore[arg-type]
        )
    )


def _delivered(session: Session, case: Case, kind: str, when: datetime, by: str, *, cancelled: bool = False) -> None:
    assert case.id is not None
    session.add(
        ServiceDelivered(
            case_id=case.id,
            kind=kind,
            delivered_at=when,
            delivered_by=by,
            role="psychologist" if by == "petra" else "coordinator",
            recorded_at=when,
            cancelled_at=when + H if cancelled else None,
            cancelled_by=by if cancelled else None,
        )
    )


def _directory(session: Session) -> tuple[DirectoryService, DirectoryService]:
    care = Organisation(code="homecare", name="City Home Care")
    fund = Organisation(code="fund", name="Helping Hand Fund", kind="charity")
    session.add_all([care, fund])
    session.flush()
    assert care.id is not None and fund.id is not None
    home = DirectoryService(
        code="home-care", organisation_id=care.id, name="Home care", category=ServiceCategory.home_care
    )
    charity = DirectoryService(
        code="fund-pay", organisation_id=fund.id, name="Payments", category=ServiceCategory.charity
    )
    session.add_all([home, charity])
    session.flush()
    return home, charity


def seed_city(engine: Engine) -> City:
    with session_scope(engine) as session:
        city, north, other = (make_source(session, n) for n in ("city", "north", "other"))
        city.timezone = "Europe/Moscow"
        session.add(city)
        assert city.id is not None and north.id is not None and other.id is not None
        c, n = city.id, north.id
        a = _case(session, c, "A", opened=at(11, 24, 10), ward="Therapy", coordinator="anna")
        b = _case(session, c, "B", opened=at(11, 29, 22), ward="Surgery", coordinator="boris")
        cc = _case(session, c, "C", opened=at(12, 1, 8), ward="Therapy", coordinator="anna")
        d = _case(session, n, "D", opened=at(11, 30, 9), ward="Ward 1", coordinator="anna")
        e = _case(session, c, "E", opened=at(11, 10, 9), ward="Surgery", coordinator="boris")
        f = _case(session, c, "F", opened=at(11, 10, 9), ward="Therapy", coordinator="anna")
        g = _case(session, c, "G", opened=at(11, 10, 9), ward="Therapy", coordinator="anna")
        x = _case(session, other.id, "X", opened=at(11, 24, 9), ward="Other", coordinator="olga")

        # First visits: a person's assessment / flag correction, or the first-visit task completed.
        _event(session, a, "assessment_updated", at(11, 24, 11), "system")  # the machine's: not a visit
        _event(session, a, "assessment_updated", at(11, 24, 12), "anna")
        visit = session.exec(select(Task).where(Task.case_id == b.id, Task.kind == TaskKind.first_visit)).one()
        visit.status, visit.status_changed_at = TaskStatus.completed, at(11, 30, 2)
        session.add(visit)
        _event(session, b, "flag_corrected", at(11, 30, 4), "boris")
        _event(session, cc, "contact_logged", at(12, 1, 9), "anna")  # a call to a relative: not a visit
        _event(session, d, "assessment_updated", at(11, 30, 17), "anna")
        _event(session, x, "assessment_updated", at(11, 24, 10), "olga")

        # First plans: a task a person added (the first-visit task the case opened with is the system's).
        _task(session, a, at(11, 24, 15), "anna")
        _task(session, b, at(11, 30, 8), "boris")
        _task(session, cc, at(12, 1, 9), "scheduler")
        _task(session, d, at(11, 30, 10), "anna")

        _handoff_done(session, a, at(11, 25, 10), at(11, 27, 10))
        _handoff_done(session, d, at(12, 2, 9), at(12, 5, 9))

        _discharge(session, a, at(11, 26, 10), at(11, 28, 10))
        _discharge(session, cc, at(12, 2, 8), at(12, 3, 8))
        _discharge(session, d, at(12, 1, 9), at(12, 5, 9))
        _discharge(session, e, at(11, 20, 12), at(11, 25, 12))
        _discharge(session, f, at(12, 4, 12), at(12, 4, 6))
        _discharge(session, g, None, at(12, 2, 12))
        _discharge(session, x, at(11, 24, 9), at(11, 30, 9))

        home, charity = _directory(session)
        R = ReferralStatus
        _referral(session, a, home, R.completed, at(11, 24, 12), accepted_at=at(11, 24, 18), completed_at=at(11, 27, 9))
        _referral(session, b, charity, R.rejected, at(11, 30, 10), rejected_at=at(12, 1, 10))
        _referral(session, d, home, R.in_progress, at(12, 1, 9), accepted_at=at(12, 1, 11), in_progress_at=at(12, 2, 9))
        _referral(session, cc, charity, R.requested, at(12, 2, 9))
        _referral(session, a, charity, R.cancelled, at(11, 20, 9), cancelled_at=at(11, 21, 9))  # before the period
        _referral(session, x, home, R.rejected, at(11, 25, 9), rejected_at=at(11, 25, 10))  # another hospital

        _delivered(session, a, "consultation", at(11, 24, 13), "anna")
        _delivered(session, a, "consultation", at(11, 25, 13), "anna")
        _delivered(session, b, "document_filed", at(12, 1, 13), "boris")
        _delivered(session, d, "psychologist_session", at(12, 2, 13), "petra")
        _delivered(session, cc, "consultation", at(12, 2, 13), "anna", cancelled=True)
        _delivered(session, b, "consultation", at(11, 20, 13), "anna")  # before the period
        _delivered(session, x, "consultation", at(11, 26, 13), "olga")  # another hospital
        ids = {k: v.id for k, v in dict(A=a, B=b, C=cc, D=d, E=e, F=f, G=g, X=x).items()}
        return City(c, n, other.id, {k: v for k, v in ids.items() if v is not None})
