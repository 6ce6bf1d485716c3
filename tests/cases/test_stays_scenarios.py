"""Every folder of fhir_fixtures/stays through the real path, sync after sync: a file source and the
EHR simulator. One case per stay following its current leg, the live worklist, readmission reasons
counting stays (never legs), death and errors ending coordination, withdrawn flags marked."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
import yaml
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from discharge_bridge.assessment import sync_and_assess
from discharge_bridge.cases.models import Case, CaseEvent
from discharge_bridge.cases.tasks.models import TASK_TRANSITIONS, Task
from discharge_bridge.config import Settings
from discharge_bridge.connections.service import add_source
from discharge_bridge.db import session_scope
from discharge_bridge.ingest.aliases import possible_duplicates
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.risk.rules import load_rules
from discharge_bridge.sources.models import SourceMode, SyncStatus
from discharge_bridge.sources.service import get_source
from discharge_bridge.worklists.service import worklist
from tests.support.sekmet import SekmetServer

STAYS = Path(__file__).resolve().parents[2] / "fhir_fixtures" / "stays"
SCENARIOS = {f.name: yaml.safe_load((f / "expected.yaml").read_text()) for f in sorted(STAYS.iterdir()) if f.is_dir()}
NOW = datetime.fromisoformat(next(iter(SCENARIOS.values()))["now"])
STEPS = max(len(list((STAYS / name).glob("sync*.json"))) for name in SCENARIOS)


def _patients(name: str) -> list[str]:
    """Every Patient record of the scenario (a merged person has several)."""
    found: list[str] = []
    for path in sorted((STAYS / name).glob("sync*.json")):
        for entry in json.loads(path.read_text())["entry"]:
            res = entry["resource"]
            if res["resourceType"] == "Patient" and res["id"] not in found:
                found.append(res["id"])
    return found


def _outcome(engine: Engine, source_name: str) -> dict[str, dict[str, Any]]:
    """Per scenario: its cases, its worklist items, readmission on its current assessment, the timeline."""
    version = load_rules().version
    found: dict[str, dict[str, Any]] = {}
    with Session(engine) as session:
        source = get_source(session, source_name)
        listed = worklist(session, rules_version=version, source_ids=[source.id or 0], limit=500).items
        for name in SCENARIOS:
            pids = _patients(name)
            cases = session.exec(
                select(Case).where(Case.source_id == source.id, col(Case.patient_fhir_id).in_(pids))
            ).all()
            rows = session.exec(
                select(RiskAssessment).where(
                    RiskAssessment.source_id == source.id,
                    col(RiskAssessment.patient_fhir_id).in_(pids),
                    col(RiskAssessment.current).is_(True),
                )
            ).all()
            kinds: list[str] = []
            open_tasks = 0
            for case in cases:
                events = session.exec(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(col(CaseEvent.id)))
                kinds += [e.kind for e in events]
                tasks = session.exec(select(Task).where(Task.case_id == case.id)).all()
                open_tasks += sum(1 for t in tasks if t.status in TASK_TRANSITIONS.active)
            found[name] = {
                "cases": [
                    {
                        "encounter": c.encounter_fhir_id,
                        "status": str(c.status),
                        "outcome": str(c.outcome) if c.outcome else None,
                        "discharged": c.actual_discharge_at is not None,
                        "flag_withdrawn": c.flag_withdrawn_at is not None,
                        "priority": str(c.priority) if c.priority else None,
                        "patient": c.patient_fhir_id,
                        "possibly_same_person": possible_duplicates(session, c.source_id, c.patient_fhir_id),
                    }
                    for c in cases
                ],
                "worklist": sorted(i.encounter for i in listed if i.patient in pids),
                "readmission": any(f["concept"] == "readmission" for r in rows for f in r.facts),
                "timeline": kinds,
                "open_tasks": open_tasks,
            }
    return found


def _check(found: dict[str, dict[str, Any]]) -> None:
    failures = []
    for name, spec in SCENARIOS.items():
        got = found[name]
        wanted_cases = spec["cases"]
        if len(got["cases"]) != len(wanted_cases):
            failures.append(f"{name}: {len(got['cases'])} cases, expected {len(wanted_cases)}: {got['cases']}")
            continue
        for want, have in zip(wanted_cases, got["cases"], strict=True):
            for key, value in want.items():
                if have[key] != value:
                    failures.append(f"{name}: case {key} is {have[key]!r}, expected {value!r}")
        if got["worklist"] != sorted(spec["worklist"]):
            failures.append(f"{name}: worklist {got['worklist']}, expected {spec['worklist']}")
        if got["readmission"] != spec["readmission"]:
            failures.append(f"{name}: readmission {got['readmission']}, expected {spec['readmission']}")
        missing = [k for k in spec["timeline"] if k not in got["timeline"]]
        if missing:
            failures.append(f"{name}: timeline {got['timeline']} lacks {missing}")
        if "open_tasks" in spec and got["open_tasks"] != spec["open_tasks"]:
            failures.append(f"{name}: {got['open_tasks']} open tasks, expected {spec['open_tasks']}")
    assert not failures, "\n".join(failures)


def _run(engine: Engine, settings: Settings, source_name: str, load_step: Callable[[int], None]) -> None:
    for step in range(1, STEPS + 1):
        load_step(step)
        with time_machine.travel(NOW + timedelta(minutes=step), tick=False):
            result = sync_and_assess(source_name, engine=engine, settings=settings)
        assert result.status == SyncStatus.ok, result.error
    _check(_outcome(engine, source_name))


def test_every_stay_shape_through_a_file_source(engine: Engine, settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "ehr"
    folder.mkdir()
    with session_scope(engine) as session:
        add_source(session, name="files", hospital="Files", base_url=str(folder), mode=SourceMode.file)

    def load(step: int) -> None:
        for name in SCENARIOS:
            if (STAYS / name / f"sync{step}.json").exists():
                shutil.copy(STAYS / name / f"sync{step}.json", folder / f"{name}-sync{step}.json")

    _run(engine, settings, "files", load)


@pytest.mark.slow
def test_every_stay_shape_through_the_simulator(sekmet: SekmetServer, engine: Engine, settings: Settings) -> None:
    with session_scope(engine) as session:
        add_source(session, name="sim", hospital="Sim", base_url=sekmet.base_url)

    def load(step: int) -> None:
        for name in SCENARIOS:
            path = STAYS / name / f"sync{step}.json"
            if path.exists():
                sekmet.transaction(json.loads(path.read_text()))

    _run(engine, settings, "sim", load)
