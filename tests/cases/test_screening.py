"""BRASS and ISAR: the published totals at each threshold, the pre-fill from the data, the service
(start, answer, complete, amend) and the completed screening reaching the risk reasons."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import select

from discharge_bridge.cases.errors import CaseClosed, InvalidInput, StaleVersion
from discharge_bridge.cases.events import timeline
from discharge_bridge.cases.jobs import follow_patients
from discharge_bridge.cases.models import Case, CaseStatus
from discharge_bridge.cases.screening.fhir import questionnaire_response
from discharge_bridge.cases.screening.models import ResponseStatus, ScreeningTool
from discharge_bridge.cases.screening.prefill import prefill
from discharge_bridge.cases.screening.service import (
    IncompleteScreening,
    ScreeningInProgress,
    completed_screenings,
    start_screening,
    update_screening,
)
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope
from discharge_bridge.ingest.models import AssessmentQueueEntry
from discharge_bridge.risk import PatientRecord, assess, extract_facts, loading
from discharge_bridge.risk.mapping import DEFAULT_MAPPINGS_DIR
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.risk.screening import band, definition, total, unanswered
from discharge_bridge.sources.service import get_source
from tests.support.factories import flagged_case, make_source

MAPPINGS = DEFAULT_MAPPINGS_DIR
BRASS = definition("brass", MAPPINGS)
ISAR = definition("isar", MAPPINGS)
ADMITTED = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)


def answers_for(defn: Any, points: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Every item answered; ``points`` picks for some items the answer worth that many points."""
    out = {}
    for link, options in defn.points.items():
        wanted = points.get(link, min(options.values()))
        code = next(c for c, p in options.items() if p == wanted)
        out[link] = {"value": code, "source": "person", "evidence": None}
    return out


# -- the questionnaires and their published scoring ------------------------------------------------


@pytest.mark.parametrize("tool", ["brass", "isar"])
def test_questionnaires_are_valid_r4_with_points_on_every_answer(tool: str) -> None:
    raw = json.loads((MAPPINGS / "questionnaires" / f"{tool}.json").read_text())
    Questionnaire.model_validate(raw)
    defn = definition(tool, MAPPINGS)
    assert defn.url.endswith(f"/Questionnaire/{tool}") and defn.version
    assert all(options for options in defn.points.values())


def test_brass_has_the_published_areas_and_range_0_to_40() -> None:
    assert BRASS.maximum == 40
    assert BRASS.points["age"] == {"55-or-less": 0, "56-64": 1, "65-79": 2, "80-plus": 3}
    assert max(BRASS.points["living"].values()) == 5 and max(BRASS.points["cognition"].values()) == 5
    assert len([k for k in BRASS.points if k.startswith("function.")]) == 11
    assert len([k for k in BRASS.points if k.startswith("behaviour.")]) == 4
    assert {k: max(v.values()) for k, v in BRASS.points.items() if "." not in k} == {
        "age": 3,
        "living": 5,
        "cognition": 5,
        "mobility": 3,
        "sensory": 2,
        "admissions": 3,
        "problems": 2,
        "drugs": 2,
    }


@pytest.mark.parametrize(
    ("score", "expected"),
    [(0, "low"), (10, "low"), (11, "needs_planning"), (19, "needs_planning"), (20, "not_home"), (40, "not_home")],
)
def test_brass_thresholds(score: int, expected: str) -> None:
    assert band("brass", score) == expected


def test_brass_worked_totals_at_each_threshold() -> None:
    # 10: aged 80 (3) + lives alone without support (4) + on more than five drugs (2) + one admission (1)
    ten = answers_for(BRASS, {"age": 3, "living": 4, "drugs": 2, "admissions": 1})
    assert (total(BRASS, ten), band("brass", total(BRASS, ten))) == (10, "low")
    # 11: + needs help with meal preparation
    ten["function.meals"] = {"value": "yes"}
    assert (total(BRASS, ten), band("brass", total(BRASS, ten))) == (11, "needs_planning")
    # 20: + disoriented to all spheres all the time 4, confused 1, walks with human help 2, sight and hearing 2
    twenty = answers_for(
        BRASS,
        {
            "age": 3,
            "living": 4,
            "drugs": 2,
            "admissions": 1,
            "function.meals": 1,
            "cognition": 4,
            "behaviour.confused": 1,
            "mobility": 2,
            "sensory": 2,
        },
    )
    assert total(BRASS, twenty) == 20 and band("brass", 20) == "not_home"
    everything = answers_for(BRASS, {k: max(v.values()) for k, v in BRASS.points.items()})
    assert total(BRASS, everything) == 40


def test_isar_item_four_scores_on_no_and_two_is_at_risk() -> None:
    assert ISAR.maximum == 6
    assert ISAR.points["sees-well"] == {"yes": 0, "no": 1}
    one = answers_for(ISAR, {"memory": 1})
    assert (total(ISAR, one), band("isar", total(ISAR, one))) == (1, "not_at_risk")
    two = answers_for(ISAR, {"memory": 1, "sees-well": 1})
    assert (total(ISAR, two), band("isar", total(ISAR, two))) == (2, "at_risk")
    assert total(ISAR, answers_for(ISAR, {k: 1 for k in ISAR.points})) == 6


@given(st.data())
def test_totals_stay_within_range(data: st.DataObject) -> None:
    for defn in (BRASS, ISAR):
        answers = {
            link: {"value": data.draw(st.sampled_from(sorted(options)))}
            for link, options in defn.points.items()
            if data.draw(st.booleans())
        }
        score = total(defn, answers)
        assert 0 <= score <= defn.maximum
        assert band(defn.tool, score) in {"low", "needs_planning", "not_home", "at_risk", "not_at_risk"}
        assert set(unanswered(defn, answers)) == set(defn.points) - set(answers)


# -- pre-fill -----------------------------------------------------------------------------------------


def _encounter(eid: str, start: str, cls: str = "IMP") -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "class": {"code": cls},
        "period": {"start": start, "end": start},
    }


def test_prefill_from_the_data_keeps_each_evidence() -> None:
    facts = [
        {"concept": "lives_alone", "evidence": "Observation/la"},
        {"concept": "no_contacts", "evidence": "Patient/p1"},
        {"concept": "dementia", "evidence": "Condition/d"},
        {"concept": "adl_dependency", "evidence": "Observation/adl"},
    ]
    others = [
        _encounter("e1", "2026-10-01T10:00:00Z"),  # inpatient, a month before
        _encounter("e2", "2026-09-15T10:00:00Z", cls="EMER"),  # ED, in 3 months
        _encounter("e3", "2026-06-01T10:00:00Z"),  # inpatient, 5 months before: ISAR only
        _encounter("e4", "2026-01-01T10:00:00Z"),  # too old for both
    ]
    kwargs: dict[str, Any] = {
        "age": 82,
        "facts": facts,
        "other_encounters": others,
        "admitted_at": ADMITTED,
        "daily_living": {"cook": "dependent", "wash": "independent", "clean": "dependent"},
        "living_situation": {},
    }
    brass = prefill("brass", **kwargs)
    assert brass == {
        "age": {"value": "80-plus", "source": "prefilled", "evidence": "Patient"},
        "living": {"value": "alone-none", "source": "prefilled", "evidence": "Observation/la"},
        "cognition": {"value": "some-spheres-some-time", "source": "prefilled", "evidence": "Condition/d"},
        "function.meals": {"value": "yes", "source": "prefilled", "evidence": "case assessment"},
        "function.bathing": {"value": "no", "source": "prefilled", "evidence": "case assessment"},
        "admissions": {"value": "two", "source": "prefilled", "evidence": "Encounter/e1, Encounter/e2"},
    }
    assert "drugs" not in brass  # MedicationRequest is not fetched: left to the bedside
    isar = prefill("isar", **kwargs)
    assert isar == {
        "help-before": {"value": "yes", "source": "prefilled", "evidence": "Observation/adl"},
        "hospitalised": {"value": "yes", "source": "prefilled", "evidence": "Encounter/e1, Encounter/e3"},
        "memory": {"value": "yes", "source": "prefilled", "evidence": "Condition/d"},
    }
    # the bedside living situation wins over the chart
    bedside = prefill("brass", **{**kwargs, "living_situation": {"housing": "institution"}})
    assert bedside["living"] == {"value": "care-home", "source": "prefilled", "evidence": "case assessment"}


def test_prefill_with_nothing_known_answers_nothing_but_admissions() -> None:
    empty: dict[str, Any] = {
        "age": None,
        "facts": [],
        "other_encounters": [],
        "admitted_at": None,
        "daily_living": {},
        "living_situation": {},
    }
    assert prefill("brass", **empty) == {} and prefill("isar", **empty) == {}


# -- the service, and the way back into the risk reasons ------------------------------------------


def _case(engine: Engine, age: int = 84) -> int:
    with session_scope(engine) as session:
        source = make_source(session)
        assert source.id is not None
        case = flagged_case(session, source.id)
        risk = session.exec(select(RiskAssessment)).one()
        risk.age = age
        risk.facts = [{"concept": "dementia", "evidence": "Condition/dem", "text": "dementia"}]
        session.add(risk)
        assert case.id is not None
        return case.id


def test_start_answer_complete_and_amend(engine: Engine, settings: Settings) -> None:
    case_id = _case(engine)
    with session_scope(engine) as session:
        case = session.get(Case, case_id)
        assert case is not None
        response = start_screening(session, case, ScreeningTool.isar, actor="anna", mappings_dir=settings.mappings_dir)
        assert response.status == ResponseStatus.in_progress and response.total is None
        assert response.answers["memory"] == {"value": "yes", "source": "prefilled", "evidence": "Condition/dem"}
        with pytest.raises(ScreeningInProgress):
            start_screening(session, case, ScreeningTool.isar, actor="anna", mappings_dir=settings.mappings_dir)
        with pytest.raises(InvalidInput) as bad:
            update_screening(
                session, case, response, actor="anna", mappings_dir=settings.mappings_dir, answers={"memory": "maybe"}
            )
        assert bad.value.loc == ("body", "answers", "memory")
        with pytest.raises(InvalidInput) as unknown:
            update_screening(
                session, case, response, actor="anna", mappings_dir=settings.mappings_dir, answers={"memroy": "yes"}
            )
        assert unknown.value.loc == ("body", "answers", "memroy")
        with pytest.raises(IncompleteScreening) as incomplete:
            update_screening(session, case, response, actor="anna", mappings_dir=settings.mappings_dir, complete=True)
        assert incomplete.value.missing == ["help-before", "help-more", "sees-well", "medications"]
        with pytest.raises(StaleVersion):
            update_screening(
                session,
                case,
                response,
                actor="anna",
                mappings_dir=settings.mappings_dir,
                answers={"help-more": "no"},
                expected_version=7,
            )
        done = update_screening(
            session,
            case,
            response,
            actor="anna",
            mappings_dir=settings.mappings_dir,
            complete=True,
            answers={
                "help-before": "no",
                "help-more": "no",
                "hospitalised": "no",
                "sees-well": "no",
                "medications": "no",
            },
        )
        assert done and response.status == ResponseStatus.completed
        assert (response.total, response.band, response.completed_by) == (2, "at_risk", "anna")
        assert response.answers["sees-well"]["source"] == "person"
        assert response.answers["memory"]["source"] == "prefilled"  # confirmed by completing, evidence kept
        with pytest.raises(IncompleteScreening):  # a completed screening stays complete
            update_screening(
                session, case, response, actor="anna", mappings_dir=settings.mappings_dir, answers={"memory": None}
            )
        update_screening(
            session, case, response, actor="bob", mappings_dir=settings.mappings_dir, answers={"sees-well": "yes"}
        )
        assert (response.status, response.total, response.band) == (ResponseStatus.amended, 1, "not_at_risk")
        kinds = [e.kind for e in timeline(session, case_id)]
        assert kinds[-3:] == ["screening_started", "screening_completed", "screening_updated"]
        case.status = CaseStatus.closed
        with pytest.raises(CaseClosed):
            update_screening(
                session, case, response, actor="bob", mappings_dir=settings.mappings_dir, answers={"sees-well": "no"}
            )


def test_a_completed_screening_is_a_valid_questionnaire_response(engine: Engine, settings: Settings) -> None:
    case_id = _case(engine)
    with session_scope(engine) as session:
        case = session.get(Case, case_id)
        assert case is not None
        response = start_screening(session, case, ScreeningTool.brass, actor="anna", mappings_dir=settings.mappings_dir)
        in_progress = questionnaire_response(response, BRASS, patient_ref="Patient/p1", encounter_ref="Encounter/adm1")
        QuestionnaireResponse.model_validate(in_progress)
        assert in_progress["status"] == "in-progress" and "extension" not in in_progress
        age = next(i for i in in_progress["item"] if i["linkId"] == "age")
        assert age["answer"][0]["valueCoding"]["code"] == "80-plus"
        assert age["answer"][0]["extension"][0]["valueString"] == "Patient"
        answers = {link: code for link, v in answers_for(BRASS, {"drugs": 2}).items() for code in [v["value"]]}
        update_screening(
            session, case, response, actor="anna", mappings_dir=settings.mappings_dir, answers=answers, complete=True
        )
        done = questionnaire_response(response, BRASS, patient_ref="Patient/p1", encounter_ref="Encounter/adm1")
        QuestionnaireResponse.model_validate(done)
        assert done["status"] == "completed" and done["questionnaire"] == f"{BRASS.url}|{BRASS.version}"
        assert [e["valueInteger"] for e in done["extension"] if "valueInteger" in e] == [2]
        function = next(i for i in done["item"] if i["linkId"] == "function")
        assert len(function["item"]) == 11


def test_completing_queues_the_patient_and_the_rescore_gives_the_screening_as_a_reason(
    engine: Engine, settings: Settings
) -> None:
    case_id = _case(engine)
    with session_scope(engine) as session:
        case = session.get(Case, case_id)
        assert case is not None
        response = start_screening(session, case, ScreeningTool.brass, actor="anna", mappings_dir=settings.mappings_dir)
        heavy = answers_for(
            BRASS,
            {"living": 5, "cognition": 5, "mobility": 3, "sensory": 2, "admissions": 3, "problems": 2, "drugs": 2},
        )
        update_screening(
            session,
            case,
            response,
            actor="anna",
            mappings_dir=settings.mappings_dir,
            answers={k: v["value"] for k, v in heavy.items()},
            complete=True,
        )
        assert response.total == 22 and response.band == "not_home"  # every answer given at the bedside
        queued = session.exec(select(AssessmentQueueEntry.patient_fhir_id)).all()
        assert list(queued) == ["p1"]
        assert completed_screenings(session, case.source_id, ["adm1"])["adm1"][0]["band"] == "not_home"
        follow_patients(session, get_source(session, "city"), settings, ["p1"])
        rules = loading.rule_set(settings.mappings_dir)
        row = session.exec(select(RiskAssessment).where(RiskAssessment.rules_version == rules.version)).one()
        reasons = {r["concept"]: r for r in row.reasons}
        assert "brass_high" in reasons
        assert reasons["brass_high"]["evidence"] == [f"QuestionnaireResponse/{response.id}"]
        assert row.priority == "high"
        assert row.hospital_score is not None and "L" in row.hospital_score["inputs"]


def test_screening_facts_in_the_pure_core() -> None:
    mapping = loading.mapping("default", MAPPINGS)
    record = PatientRecord(
        patient={"resourceType": "Patient", "id": "9", "birthDate": "1990-01-01"},
        encounter={
            "resourceType": "Encounter",
            "id": "5",
            "status": "in-progress",
            "class": {"code": "IMP"},
            "period": {"start": "2026-11-01T00:00:00Z"},
        },
        screenings=[
            {"id": 1, "tool": "brass", "total": 25, "band": "not_home", "evidence": "QuestionnaireResponse/1"},
            {"id": 2, "tool": "brass", "total": 12, "band": "needs_planning", "evidence": "QuestionnaireResponse/2"},
            {"id": 3, "tool": "isar", "total": 3, "band": "at_risk", "evidence": "QuestionnaireResponse/3"},
        ],
    )
    facts = [f for f in extract_facts(record, mapping) if f.concept != "age"]
    assert [(f.concept, f.evidence) for f in facts if f.concept.startswith(("brass", "isar"))] == [
        ("brass_planning", "QuestionnaireResponse/2"),  # the latest BRASS counts
        ("isar_at_risk", "QuestionnaireResponse/3"),
    ]
    result = assess(facts, loading.rule_set(MAPPINGS))
    assert {r.concept for r in result.reasons} >= {"brass_planning", "isar_at_risk"}
    assert result.priority == "medium"  # 4 + 2 points
    assert "ISAR 3" in next(f for f in facts if f.concept == "isar_at_risk").text
    assert Path(mapping.files[0]).is_file()
