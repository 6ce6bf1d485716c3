"""Shared by the crash test and bench/crash.py: a file-source hospital, the CLI as a real process,
and the state a sync should reach (risk, cases, tasks), compared without ids or timestamps."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from discharge_bridge.cases.models import Case
from discharge_bridge.cases.tasks.models import Task
from discharge_bridge.config import Settings
from discharge_bridge.connections.service import add_source
from discharge_bridge.db import session_scope
from discharge_bridge.ingest.models import AssessmentQueueEntry
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.sources.models import SourceMode
from tests.support.clock import child_env
from tests.support.synthetic import generate

CLI = str(Path(sys.executable).with_name("discharge-bridge"))


def write_hospital(folder: Path, n_resources: int) -> int:
    """The synthetic hospital (tests/support/synthetic.py) as one NDJSON file; returns its size."""
    folder.mkdir(parents=True, exist_ok=True)
    items = generate(n_resources).items
    with (folder / "hospital.ndjson").open("wb") as out:
        for item in items:
            out.write(orjson.dumps(item.resource) + b"\n")
    return len(items)


def add_file_source(engine: Engine, folder: Path, name: str = "city") -> None:
    with session_scope(engine) as session:
        add_source(
            session, name=name, hospital="City", base_url=str(folder), mode=SourceMode.file, timezone="Europe/Moscow"
        )


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = child_env()
    env.pop("DISCHARGE_BRIDGE_DATABASE_URL", None)
    env["DISCHARGE_BRIDGE_DATA_DIR"] = str(settings.data_dir)
    if settings.database_url:
        env["DISCHARGE_BRIDGE_DATABASE_URL"] = settings.database_url
    env.update(extra)
    return env


def start_sync(settings: Settings, **extra: str) -> subprocess.Popen[bytes]:
    """``discharge-bridge sync --once`` as its own process (so it can be killed for real)."""
    return subprocess.Popen(
        [CLI, "sync", "--once", "--format", "json"],
        env=cli_env(settings, **extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def run_sync(settings: Settings, timeout: float = 600, **extra: str) -> None:
    proc = start_sync(settings, **extra)
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode()[-3000:]


def outcome(engine: Engine) -> dict[str, Any]:
    """What a sync leaves for the coordinators: assessments, cases and tasks, by admission."""
    with Session(engine) as session:
        risks = sorted(
            (r.encounter_fhir_id, r.rules_version, r.flagged, r.priority or "", r.score, r.current)
            for r in session.exec(select(RiskAssessment))
        )
        cases = session.exec(select(Case)).all()
        by_id = {c.id: c.encounter_fhir_id for c in cases}
        tasks = sorted(
            (by_id[t.case_id], t.description, str(t.status), str(t.kind)) for t in session.exec(select(Task))
        )
        queued = len(session.exec(select(AssessmentQueueEntry.id)).all())
    per_stay = Counter(c.encounter_fhir_id for c in cases)
    return {
        "risks": risks,
        "cases": sorted((c.encounter_fhir_id, str(c.status), str(c.priority or "")) for c in cases),
        "duplicated_cases": sorted(e for e, n in per_stay.items() if n > 1),
        "tasks": tasks,
        "queued": queued,
    }


def count_assessments(engine: Engine) -> int:
    with Session(engine) as session:
        return len(session.exec(select(RiskAssessment.id)).all())
