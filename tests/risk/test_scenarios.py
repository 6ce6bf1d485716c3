"""Every folder in fhir_fixtures/scenarios runs through extract_facts + assess against expected.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from discharge_bridge.risk import (
    assess,
    extract_facts,
    is_flaggable,
    record_from_bundle,
)
from discharge_bridge.risk.mapping import load_mapping
from discharge_bridge.risk.rules import load_rules

SCENARIOS = Path(__file__).resolve().parents[2] / "fhir_fixtures" / "scenarios"
NAMES = sorted(p.name for p in SCENARIOS.iterdir() if (p / "bundle.json").is_file())
NOT_RISKS = {"age"}


def test_there_are_scenarios() -> None:
    assert len(NAMES) >= 20


@pytest.mark.parametrize("name", NAMES)
def test_scenario(name: str) -> None:
    folder = SCENARIOS / name
    bundle = json.loads((folder / "bundle.json").read_text())
    expected = yaml.safe_load((folder / "expected.yaml").read_text())
    assert bundle["type"] == "transaction"
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["request"] == {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"}
        assert resource["id"].startswith(name.replace("_", "-"))

    mapping = load_mapping(expected.get("mapping", "default"))
    record = record_from_bundle(bundle, expected.get("encounter"))
    facts = extract_facts(record, mapping)
    assessment = assess(facts, load_rules())

    assert {f.concept for f in facts} - NOT_RISKS == set(expected["concepts"])
    assert is_flaggable(record.encounter, mapping) is expected["flaggable"]
    flagged = is_flaggable(record.encounter, mapping) and assessment.priority is not None
    assert flagged is expected["flagged"]
    if expected["flagged"]:
        assert assessment.priority == expected["priority"]
    rules = {r.rule for r in assessment.reasons}
    assert set(expected.get("rules", [])) <= rules
    evidence = {e for r in assessment.reasons for e in r.evidence}
    assert set(expected.get("evidence", [])) <= evidence
    for reason in assessment.reasons:
        assert reason.evidence and reason.text
