from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discharge_bridge.risk import (
    PatientRecord,
    assess,
    compute_lace,
    extract_facts,
    is_flaggable,
    record_from_bundle,
)
from discharge_bridge.risk.mapping import load_mapping
from discharge_bridge.risk.rules import load_rules

from .factories import ICD, LOINC, SCT, cc, condition, encounter, observation, patient, record, related

DEFAULT = load_mapping("default")
CITY = load_mapping("city-hospital")
RULES = load_rules()


def concepts(rec: PatientRecord, mapping: Any = DEFAULT) -> set[str]:
    return {f.concept for f in extract_facts(rec, mapping)} - {"age"}


# --- codes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("system", "code", "concept"),
    [
        (ICD, "F03.90", "dementia"),
        (ICD, "F0390", "dementia"),
        ("http://hl7.org/fhir/sid/icd-10-cm", "f03.90", "dementia"),
        ("urn:oid:2.16.840.1.113883.6.90", "G30.9", "dementia"),
        (ICD, "F00.1", "dementia"),
        (SCT, "26929004", "dementia"),
        (SCT, "52448006", "dementia"),
        (ICD, "Z59.0", "homeless"),
        ("http://hl7.org/fhir/sid/icd-10-cm", "Z59.01", "homeless"),
        (SCT, "32911000", "homeless"),
        (ICD, "Z60.2", "lives_alone"),
        (SCT, "105529008", "lives_alone"),
        (ICD, "Z73.6", "disability"),
        (ICD, "Z99.3", "disability"),
        (ICD, "Z74.1", "adl_dependency"),
        (ICD, "Z74.09", "adl_dependency"),
        (ICD, "Z74.2", "no_caregiver"),
        (SCT, "422650009", "social_isolation"),
    ],
)
def test_condition_codes(system: str, code: str, concept: str) -> None:
    assert concepts(record(conditions=[condition(system, code)])) == {concept}


@pytest.mark.parametrize(("system", "code"), [(ICD, "F05.0"), (SCT, "F03"), ("http://other", "F03.90"), (ICD, "Z59.1")])
def test_codes_that_do_not_count(system: str, code: str) -> None:
    assert concepts(record(conditions=[condition(system, code)])) == set()


def test_condition_text_and_evidence() -> None:
    [fact] = [f for f in extract_facts(record(conditions=[condition(SCT, "105529008")]), DEFAULT) if f.concept != "age"]
    assert fact.evidence == "Condition/123"
    assert fact.text == "Lives alone (SNOMED 105529008) on Condition/123"


@pytest.mark.parametrize(
    ("clinical", "verification", "counts"),
    [
        ("active", None, True),
        ("recurrence", "confirmed", True),
        ("relapse", "provisional", True),
        (None, None, True),
        (None, "unconfirmed", True),
        ("inactive", None, False),
        ("remission", None, False),
        ("resolved", "confirmed", False),
        ("active", "refuted", False),
        (None, "entered-in-error", False),
    ],
)
def test_condition_status(clinical: str | None, verification: str | None, counts: bool) -> None:
    rec = record(conditions=[condition(ICD, "Z59.0", clinical=clinical, verification=verification)])
    assert (concepts(rec) == {"homeless"}) is counts


@pytest.mark.parametrize(
    ("status", "counts"),
    [
        ("final", True),
        ("amended", True),
        ("corrected", True),
        ("preliminary", True),
        ("registered", False),
        ("cancelled", False),
        ("entered-in-error", False),
        ("", False),
        (None, False),
    ],
)
def test_observation_status(status: str | None, counts: bool) -> None:
    obs = observation(cc(SCT, "105529008"), status=status)  # type: ignore[arg-type]
    assert (concepts(record(observations=[obs])) == {"lives_alone"}) is counts


def test_observation_values() -> None:
    household = cc(LOINC, "63512-8")
    assert concepts(record(observations=[observation(household, valueQuantity={"value": 6})])) == {"large_family"}
    assert concepts(record(observations=[observation(household, valueInteger=9)])) == {"large_family"}
    assert concepts(record(observations=[observation(household, valueQuantity={"value": 5})])) == set()
    assert concepts(record(observations=[observation(household, valueQuantity={"value": 5})]), CITY) == {"large_family"}
    assert concepts(record(observations=[observation(household, valueString="big")])) == set()
    housing = observation(cc(LOINC, "71802-3"), valueCodeableConcept=cc(SCT, "32911000"))
    assert concepts(record(observations=[housing])) == {"homeless"}
    arrangement = observation(
        None, valueCoding={"system": "http://terminology.hl7.org/CodeSystem/v3-LivingArrangement", "code": "HL"}
    )
    assert concepts(record(observations=[arrangement])) == {"homeless"}
    panel = observation(
        cc(LOINC, "93025-5"),
        component=[
            {"code": cc(LOINC, "63512-8"), "valueQuantity": {"value": 7}},
        ],
    )
    facts = [f for f in extract_facts(record(observations=[panel]), DEFAULT) if f.concept == "large_family"]
    assert facts[0].value == 7 and facts[0].text == "Large household (LOINC 63512-8 = 7) on Observation/77"


# --- extensions and FHIRPath --------------------------------------------------------------------

LOCAL = "http://their-ehr.example/fhir/StructureDefinition/lives-alone"


@pytest.mark.parametrize(("value", "found"), [(True, True), (False, False), ("true", False)])
def test_local_extension(value: Any, found: bool) -> None:
    rec = record(patient=patient(extension=[{"url": LOCAL, "valueBoolean": value}]))
    facts = [f for f in extract_facts(rec, CITY) if f.concept == "lives_alone"]
    assert bool(facts) is found
    if found:
        assert facts[0].evidence == "Patient/9.extension[lives-alone]"
        assert facts[0].text == "Lives alone (extension lives-alone = true) on Patient/9"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return path


def test_extension_value_codes_and_encounter_extensions(tmp_path: Path) -> None:
    mapping = load_mapping(
        str(
            write(
                tmp_path,
                """
concepts:
  homeless:
    encounter_extensions:
      - url: http://x.example/housing
        value_codes: {system: "*", codes: [NFA]}
  lives_alone:
    patient_extensions:
      - url: http://x.example/arrangement
        value_codes: {system: v2-0220, codes: [A]}
""",
            )
        )
    )
    enc = encounter(extension=[{"url": "http://x.example/housing", "valueCode": "NFA"}])
    pat = patient(
        extension=[
            {
                "url": "http://x.example/arrangement",
                "valueCodeableConcept": cc("http://terminology.hl7.org/CodeSystem/v2-0220", "A"),
            }
        ]
    )
    facts = {f.concept: f for f in extract_facts(record(patient=pat, encounter=enc), mapping)}
    assert facts["homeless"].evidence == "Encounter/5.extension[housing]"
    assert facts["lives_alone"].text == "Lives alone (extension arrangement = v2-0220 A) on Patient/9"


def test_fhirpath_on_each_resource(tmp_path: Path) -> None:
    mapping = load_mapping(
        str(
            write(
                tmp_path,
                """
concepts:
  social_isolation:
    fhirpath:
      - resource: Patient
        expression: maritalStatus.coding.code = 'W'
      - resource: Encounter
        expression: "hospitalization.admitSource.coding.code contains 'nursing'"
      - resource: Observation
        expression: value.ofType(Quantity).value > 3 and code.coding.code = 'x'
      - resource: Condition
        expression: code.text = 'isolated'
      - resource: RelatedPerson
        expression: "%patient.id = '9' and active = false"
""",
            )
        )
    )
    rec = record(
        patient=patient(maritalStatus=cc("http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "W")),
        encounter=encounter(hospitalization={"admitSource": cc("x", "nursing")}),
        observations=[
            observation(cc("y", "x"), valueQuantity={"value": 4}),
            observation(cc("y", "x"), oid="78", status="cancelled", valueQuantity={"value": 4}),
        ],
        conditions=[{"resourceType": "Condition", "id": "c1", "code": {"text": "isolated"}}],
        related_persons=[related(active=True)],
    )
    evidence = {f.evidence for f in extract_facts(rec, mapping) if f.concept == "social_isolation"}
    assert evidence == {"Patient/9", "Encounter/5", "Observation/77", "Condition/c1"}


def test_fhirpath_runtime_error_is_skipped(tmp_path: Path) -> None:
    mapping = load_mapping(
        str(
            write(
                tmp_path,
                """
concepts:
  large_family:
    fhirpath:
      - {resource: Observation, expression: "value > 4"}
""",
            )
        )
    )
    rec = record(observations=[observation(cc(LOINC, "1"), valueQuantity={"value": 5})])
    assert concepts(rec, mapping) == set()


# --- computed concepts --------------------------------------------------------------------------


def test_elderly_and_age_facts() -> None:
    facts = {f.concept: f for f in extract_facts(record(patient=patient("1940-06-15")), DEFAULT)}
    assert facts["age"].value == 83 and facts["elderly"].value == 83
    assert facts["elderly"].evidence == "Patient/9.birthDate"
    assert "elderly" not in concepts(record(patient=patient("1960-06-15")))
    assert concepts(record(patient=patient(None))) == set()
    assert concepts(record(encounter=encounter(start=None), patient=patient("1930"))) == set()


def test_no_contacts() -> None:
    assert concepts(record(related_persons=[])) == {"no_contacts"}
    assert concepts(record(related_persons=[related(active=False)])) == {"no_contacts"}
    assert concepts(record(related_persons=[related(active=None)])) == set()
    other = related()
    other["patient"] = {"reference": "Patient/someone-else"}
    assert concepts(record(related_persons=[other])) == {"no_contacts"}
    with_contact = patient(contact=[{"name": {"family": "Neighbour"}}])
    assert concepts(record(patient=with_contact, related_persons=[])) == set()
    empty_contact = patient(contact=[{}, None, {"name": None}])
    assert concepts(record(patient=empty_contact, related_persons=[])) == {"no_contacts"}


@pytest.mark.parametrize(
    ("people", "contact", "expected"),
    [
        ([], None, {"no_guardian", "no_contacts"}),
        ([related("MTH")], None, set()),
        ([related("GUARD", system="http://terminology.hl7.org/CodeSystem/v3-RoleClass")], None, set()),
        ([related("STPPRN")], None, set()),
        ([related("MTH", active=False)], None, {"no_guardian", "no_contacts"}),
        ([related("BRO")], None, {"no_guardian"}),
        ([], [{"relationship": [cc("http://terminology.hl7.org/CodeSystem/v2-0063", "PAR")]}], set()),
        ([], [{"relationship": [cc("http://terminology.hl7.org/CodeSystem/v2-0131", "N")]}], {"no_guardian"}),
    ],
)
def test_no_guardian(people: list[dict[str, Any]], contact: Any, expected: set[str]) -> None:
    pat = patient("2015-07-01", **({"contact": contact} if contact else {}))
    assert concepts(record(patient=pat, related_persons=people)) == expected


def test_adult_needs_no_guardian() -> None:
    assert concepts(record(patient=patient("2005-07-01"), related_persons=[related("BRO")])) == set()


def prior(eid: str, end: str, cls: str = "IMP", status: str = "finished") -> dict[str, Any]:
    return encounter(cls=cls, status=status, eid=eid, start="2024-01-01T00:00:00Z", end=end)


@pytest.mark.parametrize(
    ("other", "found"),
    [
        (prior("p", "2024-02-09T23:00:00Z"), True),  # 30 calendar days before
        (prior("p", "2024-02-08T10:00:00Z"), False),  # 31 days
        (prior("p", "2024-03-10T07:00:00Z"), True),  # same day transfer
        (prior("p", "2024-03-11T07:00:00Z"), False),  # ends after this admission started
        (prior("p", "2024-02-20T10:00:00Z", cls="EMER"), False),
        (prior("p", "2024-02-20T10:00:00Z", status="cancelled"), False),
        (prior("p", "2024-02-20T10:00:00Z", status="entered-in-error"), False),
        (encounter(eid="p", status="finished", start="2024-02-01"), False),  # no end
        (prior("5", "2024-02-20T10:00:00Z"), False),  # the admission itself
    ],
)
def test_readmission(other: dict[str, Any], found: bool) -> None:
    facts = [f for f in extract_facts(record(other_encounters=[other]), DEFAULT) if f.concept == "readmission"]
    assert bool(facts) is found
    if found:
        assert facts[0].evidence == "Encounter/p"


# --- which encounters may be flagged ------------------------------------------------------------


@pytest.mark.parametrize(
    ("enc", "flaggable"),
    [
        (encounter("IMP", "in-progress"), True),
        (encounter("ACUTE", "arrived"), True),
        (encounter("NONAC", "onleave"), True),
        (encounter("AMB", "in-progress"), False),
        (encounter("EMER", "in-progress"), False),
        (encounter("IMP", "cancelled"), False),
        (encounter("IMP", "entered-in-error"), False),
        (encounter("IMP", "finished"), False),
        (encounter("IMP", "planned"), False),
        ({"resourceType": "Encounter", "status": "in-progress", "class": [cc("x", "IMP")]}, True),  # R5 shape
        ({"resourceType": "Encounter", "status": "in-progress"}, False),
        ({}, False),
    ],
)
def test_is_flaggable(enc: dict[str, Any], flaggable: bool) -> None:
    assert is_flaggable(enc, DEFAULT) is flaggable


def test_site_can_change_classes(tmp_path: Path) -> None:
    site = "encounters: {inpatient_classes: [OBSENC], current_statuses: [triaged]}"
    mapping = load_mapping(str(write(tmp_path, site)))
    assert is_flaggable(encounter("OBSENC", "triaged"), mapping)
    assert not is_flaggable(encounter("IMP", "in-progress"), mapping)


# --- messy input never crashes ------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.sampled_from(["", "IMP", "active", "1938"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "coding",
                    "code",
                    "system",
                    "value",
                    "url",
                    "valueBoolean",
                    "start",
                    "end",
                    "reference",
                    "extension",
                    "relationship",
                    "active",
                    "text",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)
resources = st.dictionaries(
    st.sampled_from(
        [
            "id",
            "birthDate",
            "class",
            "status",
            "period",
            "code",
            "clinicalStatus",
            "verificationStatus",
            "valueQuantity",
            "valueCodeableConcept",
            "extension",
            "contact",
            "relationship",
            "patient",
            "component",
            "hospitalization",
            "priority",
            "partOf",
        ]
    ),
    json_values,
    max_size=6,
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    resources,
    resources,
    st.lists(resources, max_size=2),
    st.lists(resources, max_size=2),
    st.lists(resources, max_size=2),
    st.lists(resources, max_size=2),
)
def test_messy_resources_never_crash(
    pat: dict[str, Any],
    enc: dict[str, Any],
    conds: list[dict[str, Any]],
    obs: list[dict[str, Any]],
    people: list[dict[str, Any]],
    others: list[dict[str, Any]],
) -> None:
    rec = PatientRecord(pat, enc, conds, obs, people, others)
    for mapping in (DEFAULT, CITY):
        assess(extract_facts(rec, mapping), RULES)
        is_flaggable(enc, mapping)
    compute_lace(rec, datetime(2024, 3, 15, tzinfo=UTC))


def test_record_from_bundle() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": patient()},
            {"resource": encounter(eid="old", start="2023-01-01")},
            {"resource": encounter(eid="new")},
            {"resource": condition(ICD, "Z59.0")},
            None,
            {"resource": None},
        ],
    }
    rec = record_from_bundle(bundle)
    assert rec.encounter["id"] == "new" and [e["id"] for e in rec.other_encounters] == ["old"]
    assert record_from_bundle(bundle, "old").encounter["id"] == "old"
    with pytest.raises(ValueError, match="Encounter/nope"):
        record_from_bundle(bundle, "nope")
    with pytest.raises(ValueError, match="needs a Patient"):
        record_from_bundle({"entry": [{"resource": patient()}]})
