"""The bundled demo hospital: readable by the file source, in step with its generator, and covering
every concept of the default mapping while leaving a dozen admissions unflagged."""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from discharge_bridge.config import PROJECT_ROOT
from discharge_bridge.ingest.files import BadRecord, iter_resources
from discharge_bridge.risk import PatientRecord, assess, extract_facts, is_flaggable
from discharge_bridge.risk.mapping import load_mapping
from discharge_bridge.risk.rules import load_rules

FIXTURES = PROJECT_ROOT / "fhir_fixtures"
DEMO = FIXTURES / "demo-hospital"
BUILT_IN = {"elderly", "no_contacts", "no_guardian", "readmission"}
PARENT_CODES = {"MTH", "FTH", "PRN", "GUARD"}


@functools.cache
def _generator() -> ModuleType:
    """fhir_fixtures/ is no package: load the script by path (registered, as dataclasses need)."""
    spec = importlib.util.spec_from_file_location("make_demo_hospital", FIXTURES / "make_demo_hospital.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def resources() -> list[Any]:
    return list(iter_resources(DEMO))


@pytest.fixture(scope="module")
def by_patient(resources: list[Any]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for resource in resources:
        if isinstance(resource, BadRecord):
            continue
        rtype = resource["resourceType"]
        holder = resource.get("patient" if rtype == "RelatedPerson" else "subject")
        if rtype == "Patient":
            grouped[resource["id"]]["Patient"].append(resource)
        elif holder:
            grouped[holder["reference"].removeprefix("Patient/")][rtype].append(resource)
    return grouped


def _admissions(by_patient: dict[str, dict[str, list[dict[str, Any]]]]) -> list[PatientRecord]:
    mapping = load_mapping("default")
    records = []
    for group in by_patient.values():
        for encounter in group["Encounter"]:
            if not is_flaggable(encounter, mapping):
                continue
            records.append(
                PatientRecord(
                    patient=group["Patient"][0],
                    encounter=encounter,
                    conditions=group["Condition"],
                    observations=group["Observation"],
                    related_persons=group["RelatedPerson"],
                    other_encounters=[e for e in group["Encounter"] if e is not encounter],
                )
            )
    return records


def test_file_source_reads_every_file(resources: list[Any]) -> None:
    bad = [r for r in resources if isinstance(r, BadRecord)]
    good = [r for r in resources if not isinstance(r, BadRecord)]
    assert len(bad) == 1 and "Encounter.broken.ndjson line 2" in bad[0].reason
    assert Counter(r["resourceType"] for r in good) == {
        "Patient": 52,  # with a record merged into another (Patient.link)
        "Encounter": 67,  # with a stay sent as a parent and two legs (ICU, then the ward)
        "Condition": 101,
        "Observation": 9,
        "RelatedPerson": 33,
    }
    assert [r["id"] for r in good if r["resourceType"] == "Encounter" and "subject" not in r] == ["demo-enc-broken-1"]
    for resource in good:
        assert resource["id"].startswith("demo-")
        assert resource["meta"]["versionId"] == "1"
        assert resource["meta"]["lastUpdated"] <= "2026-11-23T07:00:00+03:00"


def test_committed_files_match_the_generator(tmp_path: Path) -> None:
    _generator().generate(tmp_path)
    committed = sorted(p.name for p in DEMO.iterdir() if p.name.endswith(".ndjson"))
    assert committed == sorted(p.name for p in tmp_path.iterdir())
    for name in committed:
        assert (tmp_path / name).read_bytes() == (DEMO / name).read_bytes(), (
            f"{name} drifted: run .venv/bin/python fhir_fixtures/make_demo_hospital.py"
        )


def test_generator_follows_the_anchor(tmp_path: Path) -> None:
    anchor = date(2027, 3, 1)
    _generator().generate(tmp_path, anchor=anchor)
    mapping = load_mapping("default")
    ages = [
        (anchor - date.fromisoformat(r["period"]["start"][:10])).days
        for r in iter_resources(tmp_path)
        if isinstance(r, dict) and r["resourceType"] == "Encounter" and is_flaggable(r, mapping)
    ]
    assert len(ages) >= 38 and min(ages) >= 1 and max(ages) <= 20


def test_every_concept_is_proved_and_a_dozen_are_not_flagged(by_patient: dict[str, Any]) -> None:
    mapping, rules = load_mapping("default"), load_rules()
    admissions = _admissions(by_patient)
    assert 38 <= len(admissions) <= 48
    proved: Counter[str] = Counter()
    unflagged = 0
    for record in admissions:
        assert record.encounter["class"]["code"] in {"IMP", "ACUTE"}
        facts = extract_facts(record, mapping)
        concepts = {f.concept for f in facts}
        proved.update(concepts)
        if not assess(facts, rules).flagged:
            unflagged += 1
        parents = {
            c["code"]
            for rp in record.related_persons
            if rp.get("active") is not False
            for r in rp["relationship"]
            for c in r["coding"]
        }
        if parents & PARENT_CODES:
            assert "no_guardian" not in concepts, record.patient["id"]
    for concept in set(mapping.concepts) | BUILT_IN:
        assert proved[concept] >= 2, f"{concept} is proved by {proved[concept]} demo admission(s)"
    assert unflagged >= 10


def test_outpatient_cancelled_and_finished_are_never_flaggable(by_patient: dict[str, Any]) -> None:
    mapping = load_mapping("default")
    seen: Counter[str] = Counter()
    for group in by_patient.values():
        for encounter in group["Encounter"]:
            cls, status = encounter["class"]["code"], encounter["status"]
            if cls in {"AMB", "EMER"} or status in {"cancelled", "finished"}:
                seen[cls if cls in {"AMB", "EMER"} else status] += 1
                assert not is_flaggable(encounter, mapping), encounter["id"]
    assert seen["AMB"] >= 2 and seen["EMER"] >= 3 and seen["cancelled"] >= 2 and seen["finished"] >= 3
