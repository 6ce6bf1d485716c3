"""Case services on SQLite and PostgreSQL: opening, priorities, readiness, barriers, discharge, log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from discharge_bridge.cases.assessment import add_flag_correction, put_assessment
from discharge_bridge.cases.barriers import add_barrier, delayed_days, update_barrier
from discharge_bridge.cases.batch import open_cases_for_flags, refresh_priorities
from discharge_bridge.cases.discharge import record_discharge
from discharge_bridge.cases.errors import CaseClosed, InvalidTransition, StaleVersion
from discharge_bridge.cases.events import timeline
from discharge_bridge.cases.handoffs.models import DestinationType, HandoffStatus
from discharge_bridge.cases.handoffs.service import create_handoff, update_handoff
from discharge_bridge.cases.models import BarrierCode, Case, CaseOutcome, CaseStatus, DateSource
from discharge_bridge.cases.readiness import apply_ehr_dates, bed_days_lost, set_dates_by_person
from discharge_bridge.cases.service import assign, change_status, open_case, update_priority
from discharge_bridge.cases.sync import sync_cases
from discharge_bridge.cases.tasks.models import Task, TaskKind, TaskPriority, TaskStatus
from discharge_bridge.config import PROJECT_ROOT
from discharge_bridge.db import session_scope
from tests.support.factories import RULES, flagged_case, make_source, put_encounter, put_risk

MAPPINGS = PROJECT_ROOT / "mappings"
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def _tasks(session: Session, case_id: int) -> list[Task]:
    return list(session.exec(select(Task).where(Task.case_id == case_id).order_by(Task.id)))


def test_opening_twice_gives_one_case_and_one_first_visit_task(engine: Engine) -> None:
    with session_scope(engine) as session:
        source = make_source(session)
        assert source.id is not None
        put_encounter(session, source.id, "adm1", "p1")
        first, created = open_case(
            session,
            source_id=source.id,
            encounter_fhir_id="adm1",
            patient_fhir_id="p1",
            priority="high",
            reasons_concepts=["lives_alone"],
            now=T0,
        )
        again, created_again = open_case(
            session,
            source_id=source.id,
            encounter_fhir_id="adm1",
            patient_fhir_id="p1",
            priority="high",
            reasons_concepts=["lives_alone"],
        )
        assert (created, created_again) == (True, False) and first.id == again.id
    with session_scope(engine) as session:  # and again in a later transaction, as a re-sync would
        _, created_later = open_case(
            session,
            source_id=source.id,
            encounter_fhir_id="adm1",
            patient_fhir_id="p1",
            priority="low",
            reasons_concepts=[],
        )
        assert created_later is False
        assert session.exec(select(func.count()).select_from(Case)).one() == 1
        tasks = _tasks(session, first.id or 0)
        assert [(t.kind, t.status, t.due_at) for t in tasks] == [
            (TaskKind.first_visit, TaskStatus.requested, T0 + timedelta(days=1))
        ]
        assert [e.kind for e in timeline(session, first.id or 0)] == ["opened", "task_created"]


def test_a_child_without_guardian_gets_an_urgent_find_guardian_task(engine: Engine) -> None:
    with session_scope(engine) as session:
        source = make_source(session)
        case, _ = open_case(
            session,
            source_id=source.id or 0,
            encounter_fhir_id="kid",
            patient_fhir_id="k",
            priority="high",
            reasons_concepts=["no_guardian+no_contacts"],
            now=T0,
        )
        tasks = _tasks(session, case.id or 0)
        assert [t.kind for t in tasks] == [TaskKind.first_visit, TaskKind.find_guardian]
        assert tasks[1].priority == TaskPriority.urgent and tasks[1].due_at == T0 + timedelta(hours=4)


def test_an_adult_with_no_one_on_file_gets_a_find_relatives_task(engine: Engine) -> None:
    with session_scope(engine) as session:
        source = make_source(session)
        case, _ = open_case(
            session,
            source_id=source.id or 0,
            encounter_fhir_id="alone",
            patient_fhir_id="a",
            priority="high",
            reasons_concepts=["elderly+no_contacts", "lives_alone"],
            now=T0,
        )
        tasks = _tasks(session, case.id or 0)
        assert [t.kind for t in tasks] == [TaskKind.first_visit, TaskKind.find_relatives]
        assert tasks[1].due_at == T0 + timedelta(days=2) and tasks[1].description.startswith("Find relatives")


def test_flags_open_cases_once_and_rescoring_updates_priority_with_an_event(engine: Engine) -> None:
    with session_scope(engine) as session:
        source = make_source(session)
        sid = source.id or 0
        for eid in ("a1", "a2"):
            put_encounter(session, sid, eid, f"p-{eid}")
        put_risk(session, sid, "a1", "p-a1", priority="medium")
        put_risk(session, sid, "a2", "p-a2", flagged=False)
        put_risk(session, sid, "a1", "p-a1", priority="low", rules_version="old-rules")
        assert open_cases_for_flags(session, sid, rules_version=RULES) == 1
        assert open_cases_for_flags(session, sid, rules_version=RULES) == 0
    with session_scope(engine) as session:
        case = session.exec(select(Case)).one()
        assert case.priority == "medium" and case.encounter_fhir_id == "a1"
        assert update_priority(session, case, "medium") is False
        assert update_priority(session, case, "high", actor="rescore") is True
        event = timeline(session, case.id or 0)[-1]
        assert (event.kind, event.actor, event.data) == (
            "priority_changed",
            "rescore",
            {"priority": ["medium", "high"]},
        )
        assert refresh_priorities(session, sid, rules_version=RULES) == 1  # back to what the assessment says
        assert case.priority == "medium"


def test_a_person_date_is_not_overwritten_by_the_ehr(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        ehr_date = T0 + timedelta(days=3)
        assert apply_ehr_dates(session, case, expected_discharge_at=ehr_date) is True
        assert apply_ehr_dates(session, case, expected_discharge_at=ehr_date) is False  # unchanged: no event
        assert (case.expected_discharge_at, case.expected_discharge_source) == (ehr_date, DateSource.ehr)
        person_date = T0 + timedelta(days=5)
        set_dates_by_person(session, case, {"expected_discharge_at": person_date}, actor="anna")
        assert apply_ehr_dates(session, case, expected_discharge_at=T0 + timedelta(days=1)) is False
        assert (case.expected_discharge_at, case.expected_discharge_source, case.expected_discharge_set_by) == (
            person_date,
            DateSource.person,
            "anna",
        )
        set_dates_by_person(session, case, {"expected_discharge_at": None}, actor="anna")  # hand back to the feed
        assert apply_ehr_dates(session, case, expected_discharge_at=ehr_date) is True
        kinds = [(e.kind, e.data.get("source")) for e in timeline(session, case.id or 0) if e.kind == "dates_changed"]
        assert kinds == [
            ("dates_changed", "ehr"),
            ("dates_changed", "person"),
            ("dates_changed", "person"),
            ("dates_changed", "ehr"),
        ]


def test_barriers_count_delayed_days_and_bed_days_lost(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        now = T0 + timedelta(days=4)
        placement = add_barrier(session, case, actor="anna", code=BarrierCode.awaiting_placement, started_at=T0)
        docs = add_barrier(session, case, actor="anna", code=BarrierCode.documents, started_at=T0 + timedelta(days=1))
        assert (delayed_days(placement, now), delayed_days(docs, now)) == (4.0, 3.0)
        update_barrier(session, case, docs, actor="anna", ended_at=T0 + timedelta(days=2, hours=12))
        assert delayed_days(docs, now) == 1.5
        with pytest.raises(StaleVersion):
            update_barrier(session, case, docs, actor="anna", expected_version=1, note="late")
        set_dates_by_person(session, case, {"medically_ready_at": T0}, actor="dr")
        assert bed_days_lost(case, now) == 4.0


def test_discharge_is_recorded_once_and_closes_when_the_handoff_completes(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        barrier = add_barrier(session, case, actor="anna", code=BarrierCode.awaiting_placement, started_at=T0)
        handoff = create_handoff(
            session, case, actor="anna", destination_type=DestinationType.gerontology_centre, mappings_dir=MAPPINGS
        )
        for status in (HandoffStatus.referred, HandoffStatus.accepted, HandoffStatus.scheduled):
            update_handoff(session, case, handoff, actor="anna", expected_version=handoff.version, status=status)
            session.flush()
        out = T0 + timedelta(days=2)
        assert record_discharge(session, case, discharged_at=out, disposition_code="long", mappings_dir=MAPPINGS)
        assert (case.status, case.discharge_destination, barrier.ended_at) == (CaseStatus.open, "long_term_care", out)
        events = len(timeline(session, case.id or 0))
        assert not record_discharge(session, case, discharged_at=out, disposition_code="long", mappings_dir=MAPPINGS)
        assert len(timeline(session, case.id or 0)) == events  # idempotent: no second event
        every_document = {str(d["code"]): True for d in handoff.documents}  # a handoff completes with them
        update_handoff(
            session,
            case,
            handoff,
            actor="anna",
            expected_version=handoff.version,
            status=HandoffStatus.completed,
            documents=every_document,
        )
        assert (case.status, case.outcome) == (CaseStatus.closed, CaseOutcome.discharged)
        with pytest.raises(CaseClosed):
            add_barrier(session, case, actor="anna", code=BarrierCode.other)


def test_discharge_after_a_completed_handoff_closes_at_once_and_unknown_codes_are_other(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        handoff = create_handoff(
            session, case, actor="anna", destination_type=DestinationType.relatives, mappings_dir=MAPPINGS
        )
        update_handoff(session, case, handoff, actor="a", expected_version=1, documents={"passport": True})
        session.flush()
        for status in ("referred", "accepted", "scheduled", "completed"):
            update_handoff(
                session,
                case,
                handoff,
                actor="a",
                expected_version=handoff.version,
                status=HandoffStatus(status),
                override_reason="the consent comes with the family" if status == "completed" else None,
            )
            session.flush()
        assert case.status == CaseStatus.open  # not discharged yet
        record_discharge(session, case, discharged_at=T0, disposition_code="LOCAL-42", mappings_dir=MAPPINGS)
        assert (case.status, case.discharge_destination, case.discharge_disposition) == ("closed", "other", "LOCAL-42")


def test_sync_cases_follows_the_encounter_to_discharge(engine: Engine) -> None:
    with session_scope(engine) as session:
        sid = make_source(session).id or 0
        put_encounter(session, sid, "adm1", "p1", planned_end="2026-11-06T12:00:00Z")
        put_risk(session, sid, "adm1", "p1")
        stats = sync_cases(session, sid, rules_version=RULES, mappings_dir=MAPPINGS)
        assert (stats.opened, stats.dates, stats.discharged) == (1, 1, 0)
        case = session.exec(select(Case)).one()
        assert case.expected_discharge_at == datetime(2026, 11, 6, 12, tzinfo=UTC)
        put_encounter(session, sid, "adm1", "p1", status="finished", end="2026-11-05T10:00:00Z", disposition="home")
        stats = sync_cases(session, sid, rules_version=RULES, mappings_dir=MAPPINGS)
        assert (stats.opened, stats.discharged) == (0, 1)
        assert (case.actual_discharge_at, case.discharge_destination) == (datetime(2026, 11, 5, 10, tzinfo=UTC), "home")
        again = sync_cases(session, sid, rules_version=RULES, encounter_fhir_ids=["adm1"], mappings_dir=MAPPINGS)
        assert again.discharged == 0
        # Discharged without a handoff: open until the coordinator closes it, no outcome needed.
        assert change_status(session, case, CaseStatus.closed, actor="anna")
        assert case.outcome == CaseOutcome.discharged


def test_closing_cancels_open_work_and_case_transitions_are_checked(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        assign(session, case, "anna", actor="lead")
        assert [t.owner for t in _tasks(session, case.id or 0)] == ["anna"]  # the first visit moved with the case
        change_status(session, case, CaseStatus.cancelled, outcome=CaseOutcome.not_needed, actor="anna")
        assert [t.status for t in _tasks(session, case.id or 0)] == [TaskStatus.cancelled]
        with pytest.raises(InvalidTransition) as err:
            change_status(session, case, CaseStatus.closed, actor="anna", outcome=CaseOutcome.other)
        assert err.value.extra["allowed"] == ["open"]
        change_status(session, case, CaseStatus.open, actor="anna")
        assert case.closed_at is None and case.outcome is None


def test_bedside_living_situation_corrects_a_flag_and_corrections_accumulate(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0, concepts=("lives_alone", "dementia"))
        assessment = put_assessment(
            session,
            case,
            actor="anna",
            domains={"social": {"findings": "daughter visits", "needs": []}},
            daily_living={"cook": "needs_help"},
            living_situation={"lives_alone": False, "housing": "own_home"},
            expected_version=0,
        )
        assert [(c["concept"], c["flagged"], c["correct"]) for c in assessment.flag_corrections] == [
            ("lives_alone", True, False)
        ]
        session.flush()
        version = assessment.version
        put_assessment(  # the same again: nothing new to record
            session,
            case,
            actor="anna",
            domains={"social": {"findings": "daughter visits", "needs": []}},
            daily_living={"cook": "needs_help"},
            living_situation={"lives_alone": False, "housing": "own_home"},
            expected_version=version,
        )
        add_flag_correction(session, case, actor="anna", concept="dementia", correct=True, note="MMSE 18")
        assert [c["concept"] for c in assessment.flag_corrections] == ["lives_alone", "dementia"]
        with pytest.raises(StaleVersion):
            put_assessment(
                session,
                case,
                actor="bob",
                domains={},
                daily_living={},
                living_situation={},
                expected_version=version - 1,
            )
        kinds = [e.kind for e in timeline(session, case.id or 0)]
        assert kinds.count("flag_corrected") == 2 and kinds.count("assessment_updated") == 1


def test_timeline_is_in_order_with_actors(engine: Engine) -> None:
    with session_scope(engine) as session:
        case = flagged_case(session, make_source(session).id or 0)
        assign(session, case, "anna", actor="lead")
        add_barrier(session, case, actor="anna", code=BarrierCode.housing)
        change_status(session, case, CaseStatus.closed, outcome=CaseOutcome.declined, actor="anna")
        events = timeline(session, case.id or 0)
        assert [(e.kind, e.actor) for e in events] == [
            ("opened", "system"),
            ("task_created", "system"),
            ("assigned", "lead"),
            ("barrier_added", "anna"),
            ("status_changed", "anna"),
        ]
        assert events[-1].data["status"] == ["open", "closed"]
        assert [e.at for e in events] == sorted(e.at for e in events)
