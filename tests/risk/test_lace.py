from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from discharge_bridge.risk import compute_lace
from discharge_bridge.risk.charlson import categories_for, charlson_index
from discharge_bridge.risk.lace import PLANNED_END_URL, charlson_points, length_points

from .factories import ICD, SCT, cc, condition, encounter, record

NOW = datetime(2024, 3, 15, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("days", "points"),
    [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (6, 4), (7, 5), (13, 5), (14, 7), (60, 7)],
)
def test_length_points(days: int, points: int) -> None:
    assert length_points(days) == points


@pytest.mark.parametrize(("index", "points"), [(0, 0), (1, 1), (2, 2), (3, 3), (4, 5), (9, 5)])
def test_charlson_points(index: int, points: int) -> None:
    assert charlson_points(index) == points


@pytest.mark.parametrize(
    ("codes", "index"),
    [
        ([], 0),
        (["I21.0"], 1),
        (["I50.9", "I25.2"], 2),
        (["E11.9"], 1),
        (["E11.9", "E11.21"], 2),  # complicated diabetes replaces uncomplicated
        (["C50.9", "C78.0"], 6),  # metastases replace the primary tumour's 2
        (["K70.3", "K72.10"], 3),  # severe liver disease replaces mild
        (["B20"], 6),
        (["N18.5", "G81.9"], 4),
        (["F03.90", "J44.9", "M05.79"], 3),
        (["C44.9"], 0),  # skin cancer other than melanoma is not counted
        (["I21.0", "I21.4"], 1),  # a category counts once
    ],
)
def test_charlson_index(codes: list[str], index: int) -> None:
    assert charlson_index(codes) == index


def test_charlson_categories_accept_cm_codes() -> None:
    assert categories_for(["I50.32", "E1122"]) == {"congestive_heart_failure", "diabetes_complicated"}


def test_full_lace_for_a_finished_acute_stay() -> None:
    enc = encounter(
        status="finished",
        start="2024-03-01T08:00:00Z",
        end="2024-03-09T10:00:00Z",
        hospitalization={"admitSource": cc("http://terminology.hl7.org/CodeSystem/admit-source", "emd")},
    )
    eds = [
        encounter("EMER", "finished", start=f"2024-0{m}-05T10:00:00Z", end=f"2024-0{m}-05T14:00:00Z", eid=f"ed{m}")
        for m in (1, 2)
    ]
    rec = record(
        encounter=enc, conditions=[condition(ICD, "I50.9", "c1"), condition(ICD, "C78.0", "c2")], other_encounters=eds
    )
    lace = compute_lace(rec, NOW)
    assert lace.components == {"L": 5, "A": 3, "C": 5, "E": 2}
    assert lace.total == 15 and lace.high and not lace.partial


def test_current_stay_counts_days_so_far() -> None:
    rec = record(conditions=[condition(ICD, "J44.9")])
    assert compute_lace(rec, NOW).components["L"] == 4  # 10 -> 15 March: 5 days
    assert compute_lace(rec, datetime(2024, 3, 10, 20)).components["L"] == 0  # naive now read as UTC


def test_current_stay_uses_the_expected_end_when_given() -> None:
    enc = encounter(extension=[{"url": PLANNED_END_URL, "valueDateTime": "2024-03-30T10:00:00Z"}])
    assert compute_lace(record(encounter=enc, conditions=[condition(ICD, "J44.9")]), NOW).components["L"] == 7


@pytest.mark.parametrize(
    ("extra", "acute"),
    [
        ({}, 0),
        ({"class": {"code": "EMER"}}, 3),
        ({"priority": cc("http://terminology.hl7.org/CodeSystem/v3-ActPriority", "EM")}, 3),
        ({"priority": cc("http://terminology.hl7.org/CodeSystem/v3-ActPriority", "UR")}, 3),
        ({"priority": cc("http://terminology.hl7.org/CodeSystem/v3-ActPriority", "EL")}, 0),
        ({"hospitalization": {"admitSource": {"coding": [{"code": "gp"}]}}}, 0),
    ],
)
def test_acute_admission(extra: dict[str, Any], acute: int) -> None:
    assert compute_lace(record(encounter=encounter(**extra)), NOW).components["A"] == acute


def test_ed_visit_before_admission_makes_it_acute_and_is_not_counted_as_a_prior_visit() -> None:
    front_door = encounter("EMER", "finished", start="2024-03-10T02:00:00Z", end="2024-03-10T07:30:00Z", eid="ed")
    earlier = encounter("EMER", "finished", start="2024-01-10T02:00:00Z", end="2024-01-10T07:30:00Z", eid="ed0")
    lace = compute_lace(record(other_encounters=[front_door, earlier]), NOW)
    assert lace.components["A"] == 3 and lace.components["E"] == 1


def test_ed_visits_window_and_cap() -> None:
    visits = [encounter("EMER", "finished", start=f"2024-0{m}-01T00:00:00Z", eid=f"e{m}") for m in (1, 2, 3)]
    visits += [encounter("EMER", "finished", start=f"2023-12-{d}T00:00:00Z", eid=f"d{d}") for d in (10, 11)]
    visits += [
        encounter("EMER", "finished", start="2023-08-01T00:00:00Z", eid="old"),  # over 6 months
        encounter("EMER", "cancelled", start="2024-01-15T00:00:00Z", eid="cx"),
        encounter("AMB", "finished", start="2024-01-15T00:00:00Z", eid="amb"),
    ]
    assert compute_lace(record(other_encounters=visits), NOW).components["E"] == 4
    assert compute_lace(record(other_encounters=visits[5:]), NOW).components["E"] == 0


def test_partial_when_inputs_are_missing() -> None:
    lace = compute_lace(record(conditions=[condition(SCT, "52448006")]), NOW)
    assert lace.components["C"] is None and lace.partial
    assert lace.total == 4  # L 4 + A 0 + E 0: the known part, a floor
    nothing = compute_lace(record(encounter={"resourceType": "Encounter", "id": "x"}), NOW)
    assert nothing.total is None and nothing.partial and not nothing.high
    assert nothing.components == {"L": None, "A": None, "C": None, "E": None}


def test_refuted_conditions_do_not_count_for_charlson() -> None:
    rec = record(conditions=[condition(ICD, "C78.0", verification="refuted"), condition(ICD, "J44.9", "c2")])
    assert compute_lace(rec, NOW).components["C"] == 1
