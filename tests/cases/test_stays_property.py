"""Any split of one stay into legs, and any order in which the legs reach us across syncs, gives
exactly one case, on the stay's current leg, with the flags of the stay sent whole at once.

Each example stores its syncs through the real store (``upsert_snapshots``, which queues the
patients) and drains the real assessment stage; examples share one database, each with its own ids.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from discharge_bridge.assessment import drain
from discharge_bridge.cases.models import Case
from discharge_bridge.config import Settings
from discharge_bridge.connections.service import add_source
from discharge_bridge.db import session_scope
from discharge_bridge.ingest.normalise import normalise
from discharge_bridge.ingest.store import upsert_snapshots
from discharge_bridge.risk.models import RiskAssessment
from discharge_bridge.sources.models import Source
from tests.support.fakefhir import BASE

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
START = NOW - timedelta(days=3)
_ids = itertools.count()


def _stay(prefix: str, legs: int, linked: bool) -> list[dict[str, Any]]:
    """Patient, the flag's evidence (homelessness), and ``legs`` consecutive ward legs; the last goes on."""
    pid = f"{prefix}-p"
    out: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": pid, "birthDate": "1941-02-03", "meta": {"versionId": "1"}},
        {
            "resourceType": "Condition",
            "id": f"{prefix}-c",
            "subject": {"reference": f"Patient/{pid}"},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "Z59.0"}]},
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "meta": {"versionId": "1"},
        },
    ]
    if linked:
        out.append(_leg(f"{prefix}-adm", pid, START, None, None))
    for n in range(legs):
        begins = START + timedelta(hours=12 * n)
        ends = begins + timedelta(hours=12) if n < legs - 1 else None
        out.append(_leg(f"{prefix}-leg{n}", pid, begins, ends, f"{prefix}-adm" if linked else None))
    return out


def _leg(eid: str, pid: str, start: datetime, end: datetime | None, part_of: str | None) -> dict[str, Any]:
    leg: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished" if end else "in-progress",
        "class": {"code": "IMP"},
        "subject": {"reference": f"Patient/{pid}"},
        "period": {"start": start.isoformat(), **({"end": end.isoformat()} if end else {})},
        "meta": {"versionId": "1"},
    }
    if part_of:
        leg["partOf"] = {"reference": f"Encounter/{part_of}"}
    return leg


def _sync(engine: Engine, settings: Settings, source_id: int, resources: list[dict[str, Any]]) -> None:
    with session_scope(engine) as session:
        upsert_snapshots(session, source_id, [normalise(r) for r in resources])
    drain(engine, settings)


def _result(engine: Engine, prefix: str) -> tuple[list[tuple[str, str]], set[str]]:
    with Session(engine) as session:
        cases = session.exec(select(Case).where(Case.patient_fhir_id == f"{prefix}-p")).all()
        rows = session.exec(
            select(RiskAssessment).where(
                RiskAssessment.patient_fhir_id == f"{prefix}-p", col(RiskAssessment.current).is_(True)
            )
        ).all()
    flags = {str(r["concept"]) for row in rows for r in row.reasons}
    return sorted((c.encounter_fhir_id, str(c.status)) for c in cases), flags


@given(
    legs=st.integers(min_value=1, max_value=4),
    linked=st.booleans(),
    order=st.randoms(use_true_random=False),
    cuts=st.lists(st.booleans(), min_size=8, max_size=8),
)
@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_one_stay_in_any_shape_and_order_is_one_case(
    engine: Engine, settings: Settings, legs: int, linked: bool, order: Any, cuts: list[bool]
) -> None:
    with session_scope(engine) as session:
        source = session.exec(select(Source).where(Source.name == "city")).first() or add_source(
            session, name="city", hospital="City", base_url=BASE
        )
        source_id = source.id
    assert source_id is not None
    n = next(_ids)
    whole, split = f"w{n}", f"s{n}"
    with time_machine.travel(NOW, tick=False):
        _sync(engine, settings, source_id, _stay(whole, legs, linked))
        parts = _stay(split, legs, linked)
        order.shuffle(parts)
        batch: list[dict[str, Any]] = []
        for resource, cut in zip(parts, itertools.cycle(cuts), strict=False):
            batch.append(resource)
            if cut:
                _sync(engine, settings, source_id, batch)
                batch = []
        if batch:
            _sync(engine, settings, source_id, batch)

    reference_cases, reference_flags = _result(engine, whole)
    cases, flags = _result(engine, split)
    last = f"leg{legs - 1}"
    assert reference_cases == [(f"{whole}-{last}", "open")]
    assert cases == [(f"{split}-{last}", "open")], cases
    assert flags == reference_flags and "homeless" in flags
