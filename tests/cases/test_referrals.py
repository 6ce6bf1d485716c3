"""Referrals followed to delivery: every move allowed and refused, reasons, the destination handoff
following (the bed freed on completion), reminders once after the answer is due, consent."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import respx
import time_machine
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from discharge_bridge.cases.consent.service import record_consent, revoke_consent
from discharge_bridge.cases.discharge import record_discharge
from discharge_bridge.cases.errors import CaseClosed, InvalidInput, StaleVersion
from discharge_bridge.cases.events import EventKind
from discharge_bridge.cases.handoffs.models import DestinationType, Handoff, HandoffStatus
from discharge_bridge.cases.handoffs.service import DocumentsMissing, create_handoff
from discharge_bridge.cases.models import Case, CaseEvent, CaseStatus
from discharge_bridge.cases.referrals.errors import ConsentRequired, InvalidReferralTransition
from discharge_bridge.cases.referrals.models import REFERRAL_TRANSITIONS, Referral, ReferralStatus
from discharge_bridge.cases.referrals.remote import sync_remote_referrals
from discharge_bridge.cases.referrals.service import (
    create_referral,
    move_referral,
    raise_overdue_reminders,
    referrals_of_case,
    tick_referral_document,
)
from discharge_bridge.cases.tasks.models import Task, TaskPriority, TaskStatus
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.directory.models import Organisation, ServiceCategory
from discharge_bridge.scheduling.jobs import escalation_job
from tests.cases.referral_support import make_service
from tests.support.factories import flagged_case, make_source

NOW = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)
_R = ReferralStatus


def _case_with_consent(session: Session) -> Case:
    case = flagged_case(session, make_source(session).id or 0)
    record_consent(session, case, {"method": "signed_form", "categories": list(ServiceCategory)}, actor="anna")
    return case


def _referral(session: Session, case: Case, category: ServiceCategory = ServiceCategory.legal_aid) -> Referral:
    service = make_service(session, f"svc-{category}-{len(referrals_of_case(session, case.id or 0))}", category)
    return create_referral(session, case, service_id=service.id or 0, needs=["legal"], reason="pension", actor="anna")


def _walk(session: Session, referral: Referral, path: list[ReferralStatus]) -> None:
    for status in path:
        reason = "reason" if status in (_R.rejected, _R.cancelled) else None
        move_referral(session, referral, status, actor="org", reason=reason)


# The shortest way from requested to each status.
PATHS: dict[ReferralStatus, list[ReferralStatus]] = {
    _R.requested: [],
    _R.received: [_R.received],
    _R.accepted: [_R.accepted],
    _R.in_progress: [_R.accepted, _R.in_progress],
    _R.completed: [_R.accepted, _R.completed],
    _R.rejected: [_R.rejected],
    _R.cancelled: [_R.cancelled],
}


@pytest.mark.parametrize(
    ("start", "target"), [(s, t) for s in ReferralStatus for t in ReferralStatus if s != t], ids=str
)
def test_every_move_is_allowed_or_refused_as_the_table_says(
    engine: Engine, start: ReferralStatus, target: ReferralStatus
) -> None:
    with session_scope(engine) as session:
        case = _case_with_consent(session)
        referral = _referral(session, case)
        _walk(session, referral, PATHS[start])
        assert referral.status == start
        allowed = target in REFERRAL_TRANSITIONS.moves(start)
        if allowed:
            move_referral(session, referral, target, actor="org", reason="why")
            assert referral.status == target and getattr(referral, f"{target.value.replace('-', '_')}_at")
        else:
            with pytest.raises(InvalidReferralTransition) as refused:
                move_referral(session, referral, target, actor="org", reason="why")
            assert refused.value.extra["allowed"] == sorted(REFERRAL_TRANSITIONS.moves(start))
            assert referral.status == start


@pytest.mark.clock
def test_a_referral_copies_the_checklist_sets_the_answer_due_and_logs_each_move(engine: Engine) -> None:
    with time_machine.travel(NOW, tick=False), session_scope(engine) as session:
        case = _case_with_consent(session)
        service = make_service(session, "lawyers", ServiceCategory.legal_aid, response_days=5)
        referral = create_referral(
            session, case, service_id=service.id or 0, needs=["legal"], reason="pension", actor="anna"
        )
        assert referral.status == _R.requested and referral.requested_at == NOW
        assert referral.answer_due_at == NOW + timedelta(days=5)
        assert [d["code"] for d in referral.documents] == ["passport", "snils"]
        assert not any(d["done"] for d in referral.documents) and referral.consent_id is not None
        assert referral.handoff_id is None  # legal aid is not a discharge destination
        with pytest.raises(InvalidInput) as no_reason:
            move_referral(session, referral, _R.rejected, actor="org")
        assert no_reason.value.loc == ("body", "reason")
        move_referral(session, referral, _R.received, actor="org")
        move_referral(session, referral, _R.accepted, actor="org", proposed_date=date(2026, 11, 9))
        with pytest.raises(StaleVersion):
            move_referral(session, referral, _R.in_progress, actor="org", expected_version=1)
        move_referral(session, referral, _R.accepted, actor="org", proposed_date=date(2026, 11, 10))  # a new date
        move_referral(session, referral, _R.cancelled, actor="anna", reason="the family found a lawyer")
        assert (referral.status_reason, referral.proposed_date) == ("the family found a lawyer", date(2026, 11, 10))
        events = session.exec(
            select(CaseEvent)
            .where(col(CaseEvent.kind).in_([EventKind.referral_created, EventKind.referral_updated]))
            .order_by(col(CaseEvent.id))
        ).all()
        assert [(e.kind, e.actor, e.data.get("status")) for e in events] == [
            (EventKind.referral_created, "anna", None),
            (EventKind.referral_updated, "org", ["requested", "received"]),
            (EventKind.referral_updated, "org", ["received", "accepted"]),
            (EventKind.referral_updated, "org", None),
            (EventKind.referral_updated, "anna", ["accepted", "cancelled"]),
        ]
        assert events[3].data["proposed_date"] == ["2026-11-09", "2026-11-10"]
        assert events[4].data["reason"] == "the family found a lawyer"


def test_a_referral_needing_consent_is_refused_without_one_and_after_revocation(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        charity = make_service(session, "fund", ServiceCategory.charity)
        clinic = make_service(session, "clinic", ServiceCategory.other, requires_consent=False)
        with pytest.raises(ConsentRequired) as refused:
            create_referral(session, case, service_id=charity.id or 0, needs=[], reason=None, actor="anna")
        assert refused.value.status_code == 409 and "consent" in refused.value.message
        free = create_referral(session, case, service_id=clinic.id or 0, needs=[], reason=None, actor="anna")
        assert free.consent_id is None
        other = record_consent(
            session, case, {"method": "signed_form", "organisation_ids": [clinic.organisation_id]}, actor="anna"
        )
        with pytest.raises(ConsentRequired):  # a consent naming another organisation does not cover it
            create_referral(session, case, service_id=charity.id or 0, needs=[], reason=None, actor="anna")
        consent = record_consent(session, case, {"method": "signed_form", "categories": ["charity"]}, actor="anna")
        made = create_referral(session, case, service_id=charity.id or 0, needs=[], reason=None, actor="anna")
        assert made.consent_id == consent.id and other.id != consent.id
        revoke_consent(session, consent, actor="anna", reason="withdrawn")
        with pytest.raises(ConsentRequired):
            create_referral(session, case, service_id=charity.id or 0, needs=[], reason=None, actor="anna")
        with pytest.raises(InvalidInput) as unknown:
            create_referral(session, case, service_id=9999, needs=[], reason=None, actor="anna")
        assert unknown.value.loc == ("body", "service_id")


def _handoff(session: Session, referral: Referral) -> Handoff:
    handoff = session.get(Handoff, referral.handoff_id)
    assert handoff is not None
    return handoff


def test_a_destination_referral_moves_its_handoff_and_frees_the_bed_when_completed(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = _case_with_consent(session)
        referral = _referral(session, case, ServiceCategory.social_home)
        handoff = _handoff(session, referral)
        assert (handoff.destination_type, handoff.status) == (DestinationType.social_home, HandoffStatus.referred)
        assert handoff.organisation == "Organisation svc-social_home-0"
        assert [d["code"] for d in handoff.documents] == ["passport", "snils"]
        move_referral(session, referral, _R.received, actor="org")
        assert handoff.status == HandoffStatus.referred
        move_referral(session, referral, _R.accepted, actor="org")
        assert handoff.status == HandoffStatus.accepted
        move_referral(session, referral, _R.in_progress, actor="org", proposed_date=date(2026, 11, 12))
        assert handoff.status == HandoffStatus.scheduled
        assert handoff.scheduled_for == datetime(2026, 11, 12, 12, tzinfo=UTC)
        with pytest.raises(DocumentsMissing):  # the handoff's documents rule holds for the referral
            move_referral(session, referral, _R.completed, actor="org")
        assert referral.status == _R.in_progress  # refused before anything changed
        tick_referral_document(session, referral, "passport", True, actor="anna")
        tick_referral_document(session, referral, "snils", True, actor="anna")
        assert all(d["done"] for d in handoff.documents)
        record_discharge(session, case, discharged_at=case.opened_at, disposition_code="long")
        move_referral(session, referral, _R.completed, actor="org")
        assert handoff.status == HandoffStatus.completed and handoff.completed_at is not None
        assert case.status == CaseStatus.closed  # the bed is freed: the discharged case closes


def test_a_destination_referral_completed_from_accepted_walks_the_handoff_through_scheduled(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = _case_with_consent(session)
        referral = _referral(session, case, ServiceCategory.home_care)
        move_referral(session, referral, _R.accepted, actor="org", proposed_date=date(2026, 11, 7))
        move_referral(session, referral, _R.completed, actor="org", override_reason="documents follow by post")
        handoff = _handoff(session, referral)
        assert handoff.status == HandoffStatus.completed and handoff.scheduled_at is not None
        assert handoff.documents_override is not None
        assert handoff.documents_override["missing"] == ["passport", "snils"]


@pytest.mark.parametrize(("end", "handoff_end"), [(_R.rejected, "declined"), (_R.cancelled, "cancelled")])
def test_a_refused_or_cancelled_destination_referral_ends_its_handoff(
    engine: Engine, end: ReferralStatus, handoff_end: str
) -> None:
    with session_scope(engine) as session:
        case = _case_with_consent(session)
        referral = _referral(session, case, ServiceCategory.hospice)
        move_referral(session, referral, end, actor="org", reason="no beds")
        assert _handoff(session, referral).status == handoff_end


def test_ticking_a_document_refuses_unknown_codes_and_logs_changes(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = _case_with_consent(session)
        referral = _referral(session, case)
        with pytest.raises(InvalidInput) as unknown:
            tick_referral_document(session, referral, "pasport", True, actor="anna")
        assert unknown.value.loc == ("path", "code") and "passport" in unknown.value.message
        assert tick_referral_document(session, referral, "passport", True, actor="anna") is True
        assert tick_referral_document(session, referral, "passport", True, actor="anna") is False
        assert referral.documents[0]["done"] is True and referral.documents[0]["done_at"]
        tick_referral_document(session, referral, "passport", False, actor="anna")
        assert referral.documents[0] == {"code": "passport", "label": "Passport", "done": False, "done_at": None}


def test_no_referral_is_made_on_a_closed_case(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = _case_with_consent(session)
        case.status = CaseStatus.cancelled
        with pytest.raises(CaseClosed):
            _referral(session, case)


@pytest.mark.clock
def test_a_reminder_is_raised_once_after_the_answer_is_due_and_cleared_by_the_answer(engine: Engine) -> None:
    with time_machine.travel(NOW, tick=False), session_scope(engine) as session:
        case = _case_with_consent(session)
        service = make_service(session, "fund", ServiceCategory.charity, response_days=2)
        late = create_referral(session, case, service_id=service.id or 0, needs=[], reason=None, actor="anna")
        answered = create_referral(session, case, service_id=service.id or 0, needs=[], reason=None, actor="anna")
        move_referral(session, answered, _R.accepted, actor="org")
        received = create_referral(session, case, service_id=service.id or 0, needs=[], reason=None, actor="anna")
        move_referral(session, received, _R.received, actor="org")
        ids = late.id, received.id
    due = NOW + timedelta(days=2)
    with session_scope(engine) as session:
        assert raise_overdue_reminders(session, due) == 0  # not before it is due
    with session_scope(engine) as session:
        assert raise_overdue_reminders(session, due + timedelta(minutes=1)) == 2
    with session_scope(engine) as session:
        assert raise_overdue_reminders(session, due + timedelta(days=3)) == 0  # once per referral
        referrals = {r.id: r for r in session.exec(select(Referral))}
        tasks = {t.id: t for t in session.exec(select(Task))}
        for referral_id in ids:
            task = tasks[referrals[referral_id].reminder_task_id]
            assert task.description == f"No answer from Organisation fund on referral #{referral_id}"
            assert (task.priority, task.status, task.created_by) == (
                TaskPriority.urgent,
                TaskStatus.requested,
                "scheduler",
            )
        assert referrals[answered.id].reminder_task_id is None
        late_row = referrals[ids[0]]
        move_referral(session, late_row, _R.accepted, actor="org")
        assert session.get(Task, late_row.reminder_task_id).status == TaskStatus.cancelled  # type: ignore[union-attr]


@pytest.mark.clock
def test_the_escalation_job_raises_the_reminders_of_unanswered_referrals(engine: Engine, settings: Settings) -> None:
    with time_machine.travel(NOW, tick=False), session_scope(engine) as session:
        case = _case_with_consent(session)
        service = make_service(session, "fund", ServiceCategory.charity, response_days=1)
        create_referral(session, case, service_id=service.id or 0, needs=[], reason=None, actor="anna")
    with time_machine.travel(NOW + timedelta(hours=23), tick=False):
        escalation_job(settings)
    with session_scope(engine) as session:
        assert session.exec(select(Referral)).one().reminder_task_id is None
    with time_machine.travel(NOW + timedelta(days=1, minutes=5), tick=False):
        escalation_job(settings)
    with session_scope(engine) as session:
        reminder = session.get(Task, session.exec(select(Referral)).one().reminder_task_id)
        assert reminder is not None and reminder.description.startswith("No answer from Organisation fund")


def test_a_destination_referral_takes_the_handoff_proposed_by_hand(engine: Engine, settings: Settings) -> None:
    with session_scope(engine) as session:
        case = _case_with_consent(session)
        by_hand = create_handoff(
            session,
            case,
            actor="anna",
            destination_type=DestinationType.social_home,
            mappings_dir=settings.mappings_dir,
        )
        other = create_handoff(
            session, case, actor="anna", destination_type=DestinationType.hospice, mappings_dir=settings.mappings_dir
        )
        referral = _referral(session, case, ServiceCategory.social_home)
        assert referral.handoff_id == by_hand.id and referral.handoff_id != other.id
        assert (by_hand.status, by_hand.organisation) == (HandoffStatus.referred, "Organisation svc-social_home-0")
        assert other.status == HandoffStatus.proposed
        assert len(session.exec(select(Handoff)).all()) == 2  # no second handoff to the same place
        move_referral(session, referral, _R.rejected, actor="org", reason="no places")
        assert by_hand.status == HandoffStatus.declined


def test_a_receivers_fhir_server_at_a_forbidden_address_is_never_called(engine: Engine, settings: Settings) -> None:
    """The directory, not hospital IT, names these servers: the sources' safety rules apply to them, and
    a refusal is one failed referral, retried later, not a crashed job."""
    with session_scope(engine) as session:
        case = _case_with_consent(session)
        referral = _referral(session, case)
        organisation = session.get(Organisation, referral.organisation_id)
        assert organisation is not None
        organisation.fhir_base_url = "http://169.254.169.254/fhir"  # a cloud metadata address
    with respx.mock(assert_all_called=False) as mock:  # were it called, it would answer
        route = mock.route().respond(201, json={"resourceType": "Task", "id": "t1", "meta": {"versionId": "1"}})
        result = sync_remote_referrals(settings)
    assert (result.sent, result.failed, route.call_count) == (0, 1, 0)
    with session_scope(engine) as session:
        assert session.exec(select(Referral)).one().remote_task_id is None
