"""The resources write-back keeps on the EHR: their shapes, R4B validity, and no patient identity."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.riskassessment import RiskAssessment
from fhir.resources.R4B.task import Task

from discharge_bridge.ehr.writeback.resources import (
    CaseFacts,
    RiskFacts,
    TaskFacts,
    digest,
    evidence_references,
    flag,
    risk_assessment,
    task,
)

SYSTEM = "https://bridge.example/fhir/sid/writeback"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
T1 = datetime(2026, 3, 5, 15, 30, tzinfo=UTC)
REASONS = [
    {
        "concept": "lives_alone",
        "rule": "lives_alone",
        "points": 3,
        "evidence": ["Observation/obs-1"],
        "text": "Lives alone",
    },
    {
        "concept": "dementia",
        "rule": "dementia",
        "points": 4,
        "evidence": ["Condition/c-9", "Patient/p-1.extension[lives-alone]", "Observation/obs-1"],
        "text": "Dementia",
    },
]


def case(**overrides: object) -> CaseFacts:
    values: dict[str, object] = {
        "id": 12,
        "source": "city",
        "patient_id": "p-1",
        "encounter_id": "e-1",
        "status": "open",
        "opened_at": T0,
    }
    values.update(overrides)
    return CaseFacts(**values)  # type: ignore[arg-type]


RISK = RiskFacts("2026.1", 7, "high", REASONS, assessed_at=T0, first_flagged_at=T0)
JOB = TaskFacts(
    id=40,
    status="in-progress",
    kind="first_visit",
    domain="social",
    description="See the patient, start the assessment",
    owner="anna",
    due_at=T1,
    created_at=T0,
    updated_at=T1,
)


def test_flag_shape_and_validity() -> None:
    made = flag(case(), RISK, system=SYSTEM)
    Flag.model_validate(made)
    assert made["identifier"] == [{"use": "official", "system": SYSTEM, "value": "flag-city-12"}]
    assert made["status"] == "active"
    assert made["category"][0]["coding"][0] == {
        "system": "urn:discharge-bridge:flag-category",
        "code": "social",
        "display": "Social",
    }
    assert made["code"]["text"] == "Patient at social risk: Lives alone; Dementia"
    assert made["subject"] == {"reference": "Patient/p-1"}
    assert made["encounter"] == {"reference": "Encounter/e-1"}
    assert made["period"] == {"start": T0.isoformat()}


def test_a_closed_case_makes_the_flag_inactive_with_an_end() -> None:
    made = flag(case(status="closed", closed_at=T1), RISK, system=SYSTEM)
    Flag.model_validate(made)
    assert made["status"] == "inactive"
    assert made["period"] == {"start": T0.isoformat(), "end": T1.isoformat()}


@pytest.mark.parametrize("overrides", [{"flag_withdrawn_at": T1}, {"corrected_away": True}])
def test_a_withdrawn_or_corrected_flag_is_inactive(overrides: dict[str, object]) -> None:
    assert flag(case(**overrides), RISK, system=SYSTEM)["status"] == "inactive"


def test_risk_assessment_shape_and_validity() -> None:
    made = risk_assessment(case(), RISK, system=SYSTEM)
    RiskAssessment.model_validate(made)
    assert made["identifier"][0]["value"] == "risk-city-12"
    assert made["status"] == "final"
    assert made["method"]["coding"] == [{"system": "urn:discharge-bridge:rule-set", "code": "2026.1"}]
    assert made["basis"] == [
        {"reference": "Observation/obs-1"},
        {"reference": "Condition/c-9"},
        {"reference": "Patient/p-1"},
    ]
    prediction = made["prediction"][0]
    assert prediction["qualitativeRisk"]["coding"] == [
        {"system": "http://terminology.hl7.org/CodeSystem/risk-probability", "code": "high"}
    ]
    assert "probabilityDecimal" not in prediction
    assert made["note"] == [{"text": "Score 7: Lives alone; Dementia"}]
    assert made["occurrenceDateTime"] == T0.isoformat()


def test_medium_is_moderate_and_statuses() -> None:
    medium = RiskFacts("2026.1", 4, "medium", REASONS, assessed_at=T0)
    made = risk_assessment(case(), medium, system=SYSTEM, amended=True)
    assert made["prediction"][0]["qualitativeRisk"]["coding"][0]["code"] == "moderate"
    assert made["status"] == "amended"
    corrected = risk_assessment(case(corrected_away=True), medium, system=SYSTEM)
    RiskAssessment.model_validate(corrected)
    assert corrected["status"] == "entered-in-error"


def test_task_shape_and_validity() -> None:
    made = task(case(), JOB, system=SYSTEM)
    Task.model_validate(made)
    assert made["identifier"][0]["value"] == "task-city-40"
    assert made["status"] == "in-progress"
    assert made["intent"] == "order"
    assert made["description"] == "See the patient, start the assessment"
    assert made["for"] == {"reference": "Patient/p-1"}
    assert made["owner"] == {"display": "anna"}
    assert made["restriction"] == {"period": {"end": T1.isoformat()}}
    assert made["authoredOn"] == T0.isoformat()
    assert made["lastModified"] == T1.isoformat()


@pytest.mark.parametrize(
    "status", ["requested", "accepted", "in-progress", "on-hold", "completed", "cancelled", "failed"]
)
def test_every_task_status_is_valid_fhir(status: str) -> None:
    job = TaskFacts(**{**JOB.__dict__, "status": status, "due_at": None, "owner": None})
    Task.model_validate(task(case(), job, system=SYSTEM))


def test_no_patient_identity_beyond_references() -> None:
    made = [
        flag(case(), RISK, system=SYSTEM),
        risk_assessment(case(), RISK, system=SYSTEM),
        task(case(), JOB, system=SYSTEM),
    ]
    text = orjson.dumps(made).decode()
    for key in ('"name"', "birthDate", "telecom", "address", '"gender"', "contained"):
        assert key not in text
    # the patient appears only as a reference
    assert text.count("p-1") == text.count("Patient/p-1")


def test_evidence_references_and_digest() -> None:
    assert evidence_references([{"evidence": ["not a reference", "Condition/x"]}]) == ["Condition/x"]
    one = flag(case(), RISK, system=SYSTEM)
    assert digest(one) == digest(dict(reversed(list(one.items()))))
    assert digest(one) != digest(flag(case(status="closed", closed_at=T1), RISK, system=SYSTEM))
