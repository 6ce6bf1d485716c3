"""Referrals to directory services, followed to delivery (the Gravity SDOH pattern: a ServiceRequest
and the Task that tracks it).

A referral moves along REFERRAL_TRANSITIONS (cases/referrals/models.py); each status reached keeps
its time and each move writes one ``referral_updated`` event (who, when, old -> new, why). A
referral to a service that requires consent cannot be made until a consent of the patient covers
the organisation or the service's category (cases/consent/service.py).

A referral to a discharge destination (home care, a social home, a gerontology centre, a hospice,
another facility) carries the case's Handoff with it: the handoff is created at ``referred`` with
the referral's documents checklist, and each referral move is applied to it through the handoff
service, so its documents rule holds and completing it frees the bed (closes a discharged case).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlmodel import Session, col, select

from discharge_bridge.cases.consent.service import covering_consent
from discharge_bridge.cases.errors import InvalidInput, InvalidTransition, check_version, ensure_open
from discharge_bridge.cases.events import EventKind, record_event
from discharge_bridge.cases.handoffs.models import HANDOFF_TRANSITIONS, DestinationType, Handoff, HandoffStatus
from discharge_bridge.cases.handoffs.repository import list_handoffs
from discharge_bridge.cases.handoffs.service import DocumentsMissing, missing_documents, update_handoff
from discharge_bridge.cases.models import Case, CaseStatus
from discharge_bridge.cases.referrals.errors import ConsentRequired, InvalidReferralTransition
from discharge_bridge.cases.referrals.models import REFERRAL_TRANSITIONS, Referral, ReferralStatus
from discharge_bridge.cases.referrals.repository import list_referrals
from discharge_bridge.cases.tasks.models import TASK_TRANSITIONS, Task, TaskDomain, TaskPriority, TaskStatus
from discharge_bridge.cases.tasks.service import create_task, update_task
from discharge_bridge.db import utcnow
from discharge_bridge.directory.models import DirectoryService, Organisation, ServiceCategory

REMINDER_BATCH = 500  # referrals per call, like the overdue-task escalation
REMINDER_DUE = timedelta(days=1)  # a day to chase the receiver before the reminder itself is overdue

# Which handoff a destination referral carries.
DESTINATIONS: dict[ServiceCategory, DestinationType] = {
    ServiceCategory.home_care: DestinationType.home_with_care,
    ServiceCategory.social_home: DestinationType.social_home,
    ServiceCategory.gerontology_centre: DestinationType.gerontology_centre,
    ServiceCategory.hospice: DestinationType.hospice,
    ServiceCategory.other_facility: DestinationType.other_facility,
}

_R = ReferralStatus
AWAITING_ANSWER = (_R.requested, _R.received)
NEEDS_REASON = (_R.rejected, _R.cancelled)


def stamp_field(status: ReferralStatus) -> str:
    """The column that keeps when ``status`` was reached (``in-progress`` -> ``in_progress_at``)."""
    return f"{status.value.replace('-', '_')}_at"


def status_dates(referral: Referral) -> dict[str, datetime | None]:
    return {s.value: getattr(referral, stamp_field(s)) for s in ReferralStatus}


def referrals_of_case(session: Session, case_id: int) -> list[Referral]:
    return list_referrals(session, case_id)


def _service(session: Session, service_id: int) -> tuple[DirectoryService, Organisation]:
    service = session.get(DirectoryService, service_id)
    if service is None or not service.active:
        raise InvalidInput(("body", "service_id"), f"no active directory service {service_id}")
    organisation = session.get(Organisation, service.organisation_id)
    assert organisation is not None  # the foreign key guarantees it
    return service, organisation


def service_of(session: Session, referral: Referral) -> tuple[DirectoryService, Organisation]:
    service = session.get(DirectoryService, referral.service_id)
    organisation = session.get(Organisation, referral.organisation_id)
    assert service is not None and organisation is not None
    return service, organisation


def create_referral(
    session: Session,
    case: Case,
    *,
    service_id: int,
    needs: list[str] | tuple[str, ...] = (),
    reason: str | None = None,
    actor: str,
    now: datetime | None = None,
) -> Referral:
    """Refer the case's patient to a directory service: status requested, the service's documents
    checklist copied in unticked, an answer due after the service's ``response_days``.

    Raises ConsentRequired when the service requires consent and none covers it (the covering
    consent's id is stored otherwise), InvalidInput for an unknown or inactive service.
    """
    ensure_open(case)
    assert case.id is not None
    now = now or utcnow()
    service, organisation = _service(session, service_id)
    assert service.id is not None and organisation.id is not None
    consent = covering_consent(
        session,
        source_id=case.source_id,
        patient_fhir_id=case.patient_fhir_id,
        organisation_id=organisation.id,
        category=service.category,
        at=now,
    )
    if consent is None and service.requires_consent:
        raise ConsentRequired(service.name, organisation.name, str(service.category))
    documents = [
        {"code": str(d["code"]), "label": str(d.get("label") or d["code"]), "done": False, "done_at": None}
        for d in service.documents
    ]
    destination = DESTINATIONS.get(ServiceCategory(service.category))
    handoff_id = None
    if destination is not None:
        handoff_id = _open_handoff(session, case, documents, destination, organisation, actor, now)
    referral = Referral(
        case_id=case.id,
        handoff_id=handoff_id,
        service_id=service.id,
        organisation_id=organisation.id,
        status=ReferralStatus.requested,
        reason=reason,
        needs=sorted({str(n) for n in needs}),
        documents=documents,
        consent_id=consent.id if consent else None,
        requested_at=now,
        answer_due_at=now + timedelta(days=service.response_days),
        created_by=actor,
        updated_at=now,
    )
    session.add(referral)
    session.flush()
    record_event(
        session,
        case,
        actor=actor,
        kind=EventKind.referral_created,
        at=now,
        data={
            "referral_id": referral.id,
            "service_id": service.id,
            "organisation_id": organisation.id,
            "organisation": organisation.name,
            "category": service.category,
            "needs": referral.needs,
            "answer_due_at": referral.answer_due_at,
            "consent_id": referral.consent_id,
            "handoff_id": referral.handoff_id,
        },
    )
    return referral


def _open_handoff(
    session: Session,
    case: Case,
    documents: list[dict[str, Any]],
    destination: DestinationType,
    organisation: Organisation,
    actor: str,
    now: datetime,
) -> int:
    """The handoff a destination referral carries; the ``referral_created`` event that follows names it.

    A handoff of the same destination the coordinator proposed by hand (still ``proposed``, to no
    other organisation) is the one: it moves to referred through the handoff service and keeps its
    checklist. Otherwise a new one starts at referred with the referral's checklist (ticked from the
    referral, so the documents rule of the handoff counts the same documents).
    """
    for proposed in list_handoffs(session, case.id or 0):
        if (
            HandoffStatus(proposed.status) == HandoffStatus.proposed
            and proposed.destination_type == destination
            and proposed.organisation in (None, "", organisation.name)
        ):
            update_handoff(
                session,
                case,
                proposed,
                actor=actor,
                expected_version=None,
                status=HandoffStatus.referred,
                organisation=organisation.name,
            )
            assert proposed.id is not None
            return proposed.id
    handoff = Handoff(
        case_id=case.id or 0,
        destination_type=destination,
        organisation=organisation.name,
        status=HandoffStatus.referred,
        documents=[dict(d) for d in documents],
        proposed_at=now,
        referred_at=now,
        created_by=actor,
        updated_at=now,
    )
    session.add(handoff)
    session.flush()
    record_event(
        session,
        case,
        actor=actor,
        kind=EventKind.handoff_created,
        at=now,
        data={
            "handoff_id": handoff.id,
            "destination_type": destination,
            "organisation": organisation.name,
            "status": HandoffStatus.referred,
        },
    )
    assert handoff.id is not None
    return handoff.id


def move_referral(
    session: Session,
    referral: Referral,
    to: ReferralStatus | str,
    *,
    actor: str,
    reason: str | None = None,
    proposed_date: date | None = None,
    expected_version: int | None = None,
    override_reason: str | None = None,
    now: datetime | None = None,
) -> Referral:
    """Move the referral to ``to`` (stamping ``<status>_at``), or, with ``to`` its current status,
    only change the proposed date.

    rejected and cancelled need a ``reason``. An answer (anything past received) clears the
    reminder task. A destination referral moves its handoff the same way; completing it needs the
    handoff's documents ticked or an ``override_reason`` (DocumentsMissing otherwise).
    """
    case = session.get(Case, referral.case_id)
    assert case is not None
    check_version(f"referral {referral.id}", referral.version, expected_version)
    to = ReferralStatus(to)
    current = ReferralStatus(referral.status)
    what = f"referral {referral.id}"
    moving = to != current
    if moving:
        try:
            REFERRAL_TRANSITIONS.check(what, current, to)
        except InvalidTransition:
            raise InvalidReferralTransition(what, current, to, REFERRAL_TRANSITIONS.moves(current)) from None
    elif proposed_date is None or current not in REFERRAL_TRANSITIONS.active:
        raise InvalidReferralTransition(what, current, to, REFERRAL_TRANSITIONS.moves(current))
    reason = (reason or "").strip() or None
    if moving and to in NEEDS_REASON and reason is None:
        raise InvalidInput(("body", "reason"), f"say why the referral is {to.value}")
    if moving and to == _R.completed:
        _check_documents(session, referral, override_reason)
    now = now or utcnow()
    data: dict[str, Any] = {"referral_id": referral.id}
    if moving:
        data["status"] = [current, to]
        referral.status = to
        setattr(referral, stamp_field(to), now)
    if reason is not None:
        data["reason"] = reason
        referral.status_reason = reason
    if proposed_date is not None and proposed_date != referral.proposed_date:
        data["proposed_date"] = [referral.proposed_date, proposed_date]
        referral.proposed_date = proposed_date
    referral.updated_at = now
    session.add(referral)
    session.flush()
    record_event(session, case, actor=actor, kind=EventKind.referral_updated, at=now, data=data)
    if moving and to not in AWAITING_ANSWER:
        _clear_reminder(session, case, referral, actor)
    if referral.handoff_id is not None:
        _follow(session, case, referral, actor=actor, override_reason=override_reason)
    return referral


def documents_missing_for_completion(session: Session, referral: Referral) -> list[dict[str, Any]]:
    """The documents a destination referral's handoff still misses (its completion needs them, or a reason)."""
    handoff = session.get(Handoff, referral.handoff_id) if referral.handoff_id else None
    if handoff is None or HandoffStatus(handoff.status) in HANDOFF_TRANSITIONS.final:
        return []
    return missing_documents(handoff)


def _check_documents(session: Session, referral: Referral, override_reason: str | None) -> None:
    """Refuse a completion the handoff would refuse, before anything changes."""
    missing = documents_missing_for_completion(session, referral)
    if missing and not (override_reason or "").strip():
        raise DocumentsMissing(referral.handoff_id, missing)


def _clear_reminder(session: Session, case: Case, referral: Referral, actor: str) -> None:
    """The receiver answered: the "no answer" task is done (or cancelled, if nobody started it)."""
    if referral.reminder_task_id is None or str(case.status) != CaseStatus.open:
        return
    task = session.get(Task, referral.reminder_task_id)
    if task is None or TaskStatus(task.status) not in TASK_TRANSITIONS.active:
        return
    if TaskStatus.completed in TASK_TRANSITIONS.moves(task.status):
        update_task(session, case, task, actor=actor, expected_version=None, status=TaskStatus.completed)
    else:
        update_task(
            session,
            case,
            task,
            actor=actor,
            expected_version=None,
            status=TaskStatus.cancelled,
            status_reason=f"the receiver answered referral #{referral.id}",
        )


def _scheduled_for(proposed: date | None) -> datetime | None:
    # The referral carries a day; the handoff keeps an instant: midday UTC stays on the same day
    # in every hospital zone from UTC-11 to UTC+11.
    return datetime.combine(proposed, time(12), UTC) if proposed else None


def _handoff_path(referral: Referral) -> list[tuple[HandoffStatus, dict[str, Any]]]:
    """The handoff moves that bring it level with the referral's status."""
    status = ReferralStatus(referral.status)
    scheduled = (HandoffStatus.scheduled, {"scheduled_for": _scheduled_for(referral.proposed_date)})
    if status == ReferralStatus.accepted:
        return [(HandoffStatus.accepted, {})]
    if status == ReferralStatus.in_progress:
        return [(HandoffStatus.accepted, {}), scheduled] if referral.proposed_date else [(HandoffStatus.accepted, {})]
    if status == ReferralStatus.completed:
        return [(HandoffStatus.accepted, {}), scheduled, (HandoffStatus.completed, {})]
    if status == ReferralStatus.rejected:
        return [(HandoffStatus.declined, {})]
    if status == ReferralStatus.cancelled:
        return [(HandoffStatus.cancelled, {})]
    return []


def _follow(session: Session, case: Case, referral: Referral, *, actor: str, override_reason: str | None) -> None:
    """Walk the handoff through the handoff service up to the referral's status (a step it has
    already passed is skipped; a handoff someone ended by hand is left alone)."""
    handoff = session.get(Handoff, referral.handoff_id)
    if handoff is None:
        return
    order = list(HandoffStatus)
    for target, extra in _handoff_path(referral):
        current = HandoffStatus(handoff.status)
        if current in HANDOFF_TRANSITIONS.final:
            return
        if target not in HANDOFF_TRANSITIONS.moves(current):
            if order.index(current) >= order.index(target):
                continue  # already there or past it
            return
        values: dict[str, Any] = {"status": target, **{k: v for k, v in extra.items() if v is not None}}
        update_handoff(
            session,
            case,
            handoff,
            actor=actor,
            expected_version=None,
            override_reason=override_reason if target == HandoffStatus.completed else None,
            **values,
        )


def tick_referral_document(
    session: Session, referral: Referral, code: str, done: bool, *, actor: str, now: datetime | None = None
) -> bool:
    """Tick (or untick) a document of the referral's checklist; a destination referral's handoff
    gets the same tick. False when nothing changed."""
    known = [str(d["code"]) for d in referral.documents]
    if code not in known:
        raise InvalidInput(
            ("path", "code"),
            f"unknown document code {code!r} for referral {referral.id}; its checklist has: "
            f"{', '.join(known) or 'no documents'}",
        )
    now = now or utcnow()
    documents = []
    changed = False
    for doc in referral.documents:
        if doc["code"] == code and bool(doc.get("done")) != done:
            doc = {**doc, "done": done, "done_at": now.isoformat() if done else None}
            changed = True
        documents.append(doc)
    if not changed:
        return False
    referral.documents = documents  # a new list: the JSON column notices assignment, not mutation
    referral.updated_at = now
    session.add(referral)
    session.flush()
    case = session.get(Case, referral.case_id)
    assert case is not None
    record_event(
        session,
        case,
        actor=actor,
        kind=EventKind.referral_updated,
        at=now,
        data={"referral_id": referral.id, "documents": {code: [not done, done]}},
    )
    handoff = session.get(Handoff, referral.handoff_id) if referral.handoff_id else None
    if (
        handoff is not None
        and HandoffStatus(handoff.status) not in HANDOFF_TRANSITIONS.final
        and code in {d["code"] for d in handoff.documents}
    ):
        update_handoff(session, case, handoff, actor=actor, expected_version=None, documents={code: done})
    return True


def raise_overdue_reminders(session: Session, now: datetime, *, actor: str = "scheduler") -> int:
    """For each referral still unanswered (requested / received) past ``answer_due_at`` with no
    reminder yet, add a coordinator task to its open case; return how many. Once per referral:
    ``reminder_task_id`` remembers it."""
    query = (
        select(Referral, Case, Organisation)
        .join(Case, col(Case.id) == Referral.case_id)
        .join(Organisation, col(Organisation.id) == Referral.organisation_id)
        .where(
            col(Referral.status).in_(AWAITING_ANSWER),
            col(Referral.answer_due_at) < now,
            col(Referral.reminder_task_id).is_(None),
            Case.status == CaseStatus.open,
        )
        .order_by(col(Referral.answer_due_at), col(Referral.id))
        .limit(REMINDER_BATCH)
    )
    count = 0
    for referral, case, organisation in session.exec(query).all():
        task = create_task(
            session,
            case,
            actor=actor,
            description=f"No answer from {organisation.name} on referral #{referral.id}",
            domain=TaskDomain.social,
            priority=TaskPriority.urgent,
            due_at=now + REMINDER_DUE,
            now=now,
        )
        referral.reminder_task_id = task.id
        session.add(referral)
        count += 1
    session.flush()
    return count
