"""Every scenario folder through the real path: EHR simulator -> poll sync -> scoring -> worklist."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import Engine
from sqlmodel import Session

from discharge_bridge.assessment import sync_and_assess
from discharge_bridge.config import Settings
from discharge_bridge.connections.service import add_source
from discharge_bridge.db import session_scope
from discharge_bridge.risk.rules import load_rules
from discharge_bridge.sources.models import SyncStatus
from discharge_bridge.sources.service import get_source
from discharge_bridge.worklists.service import worklist
from tests.support.sekmet import SekmetServer

pytestmark = pytest.mark.slow

SCENARIOS = Path(__file__).resolve().parents[2] / "fhir_fixtures" / "scenarios"
NOT_RISKS = {"age"}


def _scenarios() -> dict[str, dict[str, Any]]:
    return {
        folder.name: yaml.safe_load((folder / "expected.yaml").read_text())
        for folder in sorted(SCENARIOS.iterdir())
        if (folder / "bundle.json").is_file()
    }


def test_every_scenario_lands_on_the_worklist_as_expected(
    sekmet: SekmetServer, engine: Engine, settings: Settings
) -> None:
    scenarios = _scenarios()
    for name in scenarios:
        sekmet.transaction(json.loads((SCENARIOS / name / "bundle.json").read_text()))
    mappings = sorted({spec.get("mapping", "default") for spec in scenarios.values()})
    with session_scope(engine) as session:
        for mapping in mappings:
            add_source(session, name=f"site-{mapping}", hospital=mapping, base_url=sekmet.base_url, mapping=mapping)
    for mapping in mappings:
        result = sync_and_assess(f"site-{mapping}", engine=engine, settings=settings)
        assert result.status == SyncStatus.ok, result.error

    version = load_rules().version
    by_site: dict[str, dict[str, Any]] = {}
    with Session(engine) as session:
        for mapping in mappings:
            source = get_source(session, f"site-{mapping}")
            page = worklist(session, rules_version=version, source_ids=[source.id or 0], limit=500)
            by_site[mapping] = {item.patient: item for item in page.items}

    failures = []
    for name, spec in scenarios.items():
        prefix = name.replace("_", "-")
        items = [item for pid, item in by_site[spec.get("mapping", "default")].items() if pid.startswith(prefix)]
        if not spec["flagged"]:
            if items:
                failures.append(
                    f"{name}: expected no flag, got {items[0].priority} {[r.concept for r in items[0].reasons]}"
                )
            continue
        if len(items) != 1:
            failures.append(f"{name}: expected one worklist item, got {len(items)}")
            continue
        item = items[0]
        concepts = {c for r in item.reasons for c in r.concept.split("+")} - NOT_RISKS
        if item.priority != spec["priority"]:
            failures.append(f"{name}: priority {item.priority}, expected {spec['priority']}")
        missing = set(spec["concepts"]) - NOT_RISKS - concepts
        if missing:
            failures.append(f"{name}: concepts {sorted(concepts)} lack {sorted(missing)}")
        evidence = {e for r in item.reasons for e in r.evidence}
        if not set(spec.get("evidence") or []) <= evidence:
            failures.append(f"{name}: evidence {sorted(evidence)} lacks {spec.get('evidence')}")
    assert not failures, "\n".join(failures)

    # a second pass and a rescore never duplicate assessments
    for mapping in mappings:
        sync_and_assess(f"site-{mapping}", engine=engine, settings=settings)
    with Session(engine) as session:
        again = worklist(session, rules_version=version, limit=1000)
    assert again.total == sum(len(v) for v in by_site.values())
