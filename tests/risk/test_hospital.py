"""HOSPITAL score (Donzé 2013): each item as published, the band boundaries, and missing inputs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discharge_bridge.risk import PatientRecord, compute_hospital
from discharge_bridge.risk.hospital import MAX_POINTS, admission_points, band_of
from tests.risk.factories import LOINC, SCT, cc, encounter, observation, patient

NOW = datetime(2024, 3, 20, 12, tzinfo=UTC)
ADMITTED = "2024-03-10T08:00:00Z"
SERVICE_TYPE = "http://terminology.hl7.org/CodeSystem/service-type"


def lab(code: str, value: float, unit: str, oid: str, when: str = "2024-03-11T06:00:00Z") -> dict[str, Any]:
    return observation(
        cc(LOINC, code), oid=oid, effectiveDateTime=when, valueQuantity={"value": value, "unit": unit, "code": unit}
    )


def procedure(pid: str = "pr1", when: str = "2024-03-11T10:00:00Z", status: str = "completed") -> dict[str, Any]:
    return {
        "resourceType": "Procedure",
        "id": pid,
        "status": status,
        "subject": {"reference": "Patient/9"},
        "performedDateTime": when,
    }


def prior(eid: str, start: str, cls: str = "IMP") -> dict[str, Any]:
    return encounter(cls=cls, status="finished", start=start, end=start.replace("T08", "T18"), eid=eid)


def full_record(
    *,
    hb: float = 13.5,
    sodium: float = 140,
    oncology: bool = False,
    procedures: list[dict[str, Any]] | None = None,
    priority: str = "el",
    admissions: int = 0,
    end: str | None = "2024-03-12T10:00:00Z",
) -> PatientRecord:
    """Every HOSPITAL input known; each argument sets one item."""
    service = cc(SCT, "394593009") if oncology else cc(SCT, "394802001")  # medical oncology / general medicine
    stay = encounter(
        status="finished" if end else "in-progress",
        start=ADMITTED,
        end=end,
        serviceType=service,
        priority=cc("http://terminology.hl7.org/CodeSystem/v3-ActPriority", priority),
    )
    others = [prior(f"p{i}", f"2023-{4 + i % 9:02d}-{10 + i // 9:02d}T08:00:00Z") for i in range(admissions)]
    return PatientRecord(
        patient=patient(),
        encounter=stay,
        observations=[lab("718-7", hb, "g/dL", "hb"), lab("2951-2", sodium, "mmol/L", "na")],
        other_encounters=others,
        procedures=procedures if procedures is not None else [procedure(when="2024-02-01T10:00:00Z")],
    )


def test_no_risk_item_scores_zero_and_low() -> None:
    score = compute_hospital(full_record(), NOW)
    assert score.total == 0
    assert score.partial is False
    assert score.band == "low"
    assert score.missing == []
    assert list(score.inputs) == ["H", "O", "S", "P", "IT", "A", "L"]
    assert score.inputs["P"] == {"points": 0, "value": False, "evidence": None}  # the procedure was before the stay


def test_every_item_at_its_published_maximum_totals_13() -> None:
    record = full_record(
        hb=11.9,
        sodium=134,
        oncology=True,
        procedures=[procedure()],
        priority="em",
        admissions=6,
        end="2024-03-15T10:00:00Z",
    )
    score = compute_hospital(record, NOW)
    assert {k: v["points"] for k, v in score.inputs.items()} == {
        "H": 1,
        "O": 2,
        "S": 1,
        "P": 1,
        "IT": 1,
        "A": 5,
        "L": 2,
    }
    assert score.total == 13
    assert score.band == "high"
    assert score.inputs["H"]["evidence"] == "Observation/hb"
    assert score.inputs["S"] == {"points": 1, "value": 134.0, "evidence": "Observation/na"}
    assert score.inputs["P"]["evidence"] == "Procedure/pr1"
    assert score.inputs["A"]["value"] == 6
    assert score.inputs["L"]["value"] == 5


@pytest.mark.parametrize(
    ("kwargs", "total", "band"),
    [
        # 4: A (2 admissions) 2 + L (5 days) 2 -> the top of "low"
        ({"admissions": 2, "end": "2024-03-15T09:00:00Z"}, 4, "low"),
        # 5: + urgent admission 1 -> the bottom of "intermediate"
        ({"admissions": 2, "end": "2024-03-15T09:00:00Z", "priority": "ur"}, 5, "intermediate"),
        # 6: + haemoglobin 11.9 -> the top of "intermediate"
        ({"admissions": 2, "end": "2024-03-15T09:00:00Z", "priority": "ur", "hb": 11.9}, 6, "intermediate"),
        # 7: + sodium 134 -> the bottom of "high"
        ({"admissions": 2, "end": "2024-03-15T09:00:00Z", "priority": "ur", "hb": 11.9, "sodium": 134}, 7, "high"),
    ],
)
def test_band_boundaries_as_published(kwargs: dict[str, Any], total: int, band: str) -> None:
    score = compute_hospital(full_record(**kwargs), NOW)
    assert (score.total, score.band) == (total, band)


def test_thresholds_are_strict_below_12_and_135_and_from_5_days() -> None:
    score = compute_hospital(full_record(hb=12.0, sodium=135, end="2024-03-14T23:00:00Z"), NOW)
    assert score.inputs["H"]["points"] == 0
    assert score.inputs["S"]["points"] == 0
    assert score.inputs["L"] == {"points": 0, "value": 4, "evidence": "Encounter/5"}


@pytest.mark.parametrize(("count", "points"), [(0, 0), (1, 0), (2, 2), (5, 2), (6, 5), (20, 5)])
def test_admissions_in_12_months(count: int, points: int) -> None:
    assert admission_points(count) == points
    assert compute_hospital(full_record(admissions=count), NOW).inputs["A"]["points"] == points


def test_admissions_count_only_inpatient_stays_of_the_previous_year() -> None:
    record = full_record()
    record.other_encounters = [
        prior("old", "2023-03-01T08:00:00Z"),  # more than 12 months before
        prior("ed", "2023-10-01T08:00:00Z", cls="EMER"),
        prior("amb", "2023-10-02T08:00:00Z", cls="AMB"),
        prior("in1", "2023-11-01T08:00:00Z"),
        prior("in2", "2024-01-05T08:00:00Z"),
    ]
    score = compute_hospital(record, NOW)
    assert score.inputs["A"] == {"points": 2, "value": 2, "evidence": "Encounter/in1, Encounter/in2"}


def test_units_are_converted() -> None:
    record = full_record()
    record.observations = [lab("718-7", 115, "g/L", "hb"), lab("2947-0", 133, "mEq/L", "na")]
    score = compute_hospital(record, NOW)
    assert score.inputs["H"] == {"points": 1, "value": 11.5, "evidence": "Observation/hb"}
    assert score.inputs["S"]["points"] == 1
    record.observations = [lab("718-7", 7.0, "mmol/L", "hb")]  # 11.3 g/dL
    assert compute_hospital(record, NOW).inputs["H"]["value"] == 11.3


def test_the_last_value_within_the_stay_counts() -> None:
    record = full_record()
    record.observations = [
        lab("718-7", 9.0, "g/dL", "before", when="2024-03-01T06:00:00Z"),  # before admission
        lab("718-7", 10.5, "g/dL", "early", when="2024-03-11T06:00:00Z"),
        lab("718-7", 12.4, "g/dL", "last", when="2024-03-12T06:00:00Z"),
        lab("718-7", 8.0, "g/dL", "after", when="2024-03-13T06:00:00Z"),  # after discharge
        {**lab("718-7", 8.0, "g/dL", "wrong", when="2024-03-12T07:00:00Z"), "status": "entered-in-error"},
    ]
    assert compute_hospital(record, NOW).inputs["H"] == {"points": 0, "value": 12.4, "evidence": "Observation/last"}


def test_while_in_hospital_the_stay_runs_to_now() -> None:
    score = compute_hospital(full_record(end=None), NOW)
    assert score.inputs["L"]["value"] == 10
    assert score.inputs["L"]["points"] == 2


def test_missing_inputs_are_not_zero_and_the_total_is_a_floor() -> None:
    record = PatientRecord(
        patient=patient(),
        encounter=encounter(start=ADMITTED, priority=cc("http://terminology.hl7.org/CodeSystem/v3-ActPriority", "em")),
    )
    score = compute_hospital(record, NOW)
    assert score.missing == ["H", "O", "S", "P"]
    assert score.partial is True
    assert score.total == 3  # IT 1 + L 2 (10 days so far) + A 0
    assert score.band is None  # 3 known, up to 3 + 5 more: low or high
    assert set(score.inputs) == {"IT", "A", "L"}


def test_a_partial_score_already_high_keeps_its_band() -> None:
    record = full_record(admissions=6, end="2024-03-15T09:00:00Z")
    record.observations = []
    record.procedures = []
    score = compute_hospital(record, NOW)
    assert score.missing == ["H", "S", "P"]
    assert (score.total, score.band) == (7, "high")


def test_oncology_service_from_a_local_text() -> None:
    record = full_record()
    record.encounter["serviceType"] = {"coding": [{"system": SERVICE_TYPE, "code": "x1", "display": "Терапия"}]}
    assert compute_hospital(record, NOW).inputs["O"]["points"] == 0
    record.encounter["serviceType"] = {"text": "Haematology-Oncology ward"}
    assert compute_hospital(record, NOW).inputs["O"]["points"] == 2
    record.encounter["serviceType"] = {
        "coding": [{"system": SERVICE_TYPE, "code": "x1", "display": "Отделение онкологии"}]
    }
    assert compute_hospital(record, NOW).inputs["O"]["points"] == 2
    del record.encounter["serviceType"]
    assert "O" in compute_hospital(record, NOW).missing


def test_cancelled_procedures_do_not_count() -> None:
    record = full_record(procedures=[procedure(status="not-done")])
    assert compute_hospital(record, NOW).inputs["P"]["points"] == 0


@given(
    hb=st.floats(min_value=3, max_value=20),
    sodium=st.floats(min_value=110, max_value=160),
    oncology=st.booleans(),
    urgent=st.booleans(),
    admissions=st.integers(min_value=0, max_value=12),
    days=st.integers(min_value=0, max_value=9),
    drop=st.sets(st.sampled_from(["hb", "na", "proc"])),
)
def test_totals_stay_within_0_13_and_bands_match(
    hb: float, sodium: float, oncology: bool, urgent: bool, admissions: int, days: int, drop: set[str]
) -> None:
    record = full_record(
        hb=hb,
        sodium=sodium,
        oncology=oncology,
        priority="em" if urgent else "el",
        admissions=admissions,
        end=f"2024-03-{10 + days:02d}T20:00:00Z",
        procedures=[procedure()],
    )
    record.observations = [o for o in record.observations if o["id"] not in drop]
    if "proc" in drop:
        record.procedures = []
    score = compute_hospital(record, NOW)
    assert 0 <= score.total <= 13
    assert score.total == sum(i["points"] for i in score.inputs.values())
    assert all(0 <= i["points"] <= MAX_POINTS[k] for k, i in score.inputs.items())
    if not score.partial:
        assert score.band == band_of(score.total)
    elif score.band is not None:
        ceiling = score.total + sum(MAX_POINTS[k] for k in score.missing)
        assert band_of(score.total) == band_of(ceiling) == score.band
