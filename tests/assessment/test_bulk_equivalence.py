"""The assessment stage's set-based writes (cases/batch.py, cases/sync.py) produce exactly the rows
the per-row services produced (tests/assessment/per_row.py, the path before issue 17).

Each example is a random cohort: old and young patients, children, with or without contacts and
risk conditions, wards, expected discharge dates, earlier stays; coordinators in turn or by ward.
It is stored twice, into two databases, and drained by the real stage: once as it is (bulk), once
with the per-row reference. Then people edit some cases by hand (dates, a coordinator, a closing,
the same edits in both), the EHR changes (a flag corrected or added, a discharge with a
disposition, a new expected date, an admission entered in error, a re-admission, a death) and a
second drain follows. Cases, their events (kinds, actors, times, payloads), tasks and assessments
must be the same after each drain, row versions included.
"""

from __future__ import annotations

import itertools
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
import time_machine
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import Session, col, select

from discharge_bridge.assessment import drain
from discharge_bridge.cases import jobs
from discharge_bridge.cases.batch import refresh_priorities, update_cases
from discharge_bridge.cases.models import Case, CaseEvent, CaseOutcome, CaseStatus
from discharge_bridge.cases.readiness import set_dates_by_person
from discharge_bridge.cases.service import assign, change_status
from discharge_bridge.cases.tasks.models import Task
from discharge_bridge.config import Settings
from discharge_bridge.connections.service import add_source, update_source
from discharge_bridge.db import session_scope
from discharge_bridge.ingest.normalise import normalise
from discharge_bridge.ingest.store import upsert_snapshots
from discharge_bridge.risk.models import RiskAssessment
from tests.assessment.per_row import sync_cases_per_row
from tests.support.factories import RULES, flagged_case, make_source, make_user
from tests.support.fakefhir import BASE

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=1)
PLANNED_END = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Encounter.plannedEndDate"
WARDS = (None, "Ward 3A", "Ward 5")
_ids = itertools.count()


# -- the cohort ------------------------------------------------------------------------------------
patients = st.fixed_dictionaries(
    {
        "birth": st.sampled_from(["1931-02-03", "1950-06-07", "1990-01-01", "2019-05-05"]),
        "contact": st.booleans(),
        "conditions": st.sets(st.sampled_from(["F03.90", "Z60.2", "Z59.0"]), max_size=3),
        "ward": st.sampled_from(WARDS),
        "planned": st.sampled_from([None, "2026-11-25", "2026-11-28T12:00:00+03:00"]),
        "earlier": st.booleans(),  # a finished stay a month before: a re-admission
    }
)
CHANGES = ("finish", "correct", "add_flag", "planned", "in_error", "readmit", "deceased", "none")
EDITS = ("dates", "assign", "close", "none")


def _resources(prefix: str, i: int, spec: dict[str, Any], version: int) -> list[dict[str, Any]]:
    pid, meta = f"{prefix}p{i}", {"versionId": str(version), "lastUpdated": f"2026-11-{19 + version}T08:00:00Z"}
    patient: dict[str, Any] = {"resourceType": "Patient", "id": pid, "birthDate": spec["birth"], "meta": meta}
    if spec["contact"]:
        patient["contact"] = [{"relationship": [{"coding": [{"code": "N"}]}], "name": {"text": "Kin"}}]
    if spec.get("deceased"):
        patient["deceasedBoolean"] = True
    out = [patient]
    for code in ("F03.90", "Z60.2", "Z59.0"):
        status = "active" if code in spec["conditions"] else "resolved"
        out.append(
            {
                "resourceType": "Condition",
                "id": f"{pid}-{code}",
                "clinicalStatus": {"coding": [{"code": status}]},
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": code}]},
                "subject": {"reference": f"Patient/{pid}"},
                "meta": meta,
            }
        )
    stay: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": f"{pid}-e",
        "status": spec.get("status", "in-progress"),
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": f"Patient/{pid}"},
        "period": {"start": "2026-11-18T09:30:00+03:00", **({"end": spec["end"]} if spec.get("end") else {})},
        "meta": meta,
    }
    if spec["ward"]:
        stay["location"] = [{"location": {"display": spec["ward"]}, "physicalType": {"coding": [{"code": "wa"}]}}]
    if spec["planned"]:
        stay["extension"] = [{"url": PLANNED_END, "valueDateTime": spec["planned"]}]
    if spec.get("disposition"):
        stay["hospitalization"] = {"dischargeDisposition": {"coding": [{"code": spec["disposition"]}]}}
    out.append(stay)
    if spec["earlier"]:
        earlier = {**stay, "id": f"{pid}-old", "status": "finished", "meta": {"versionId": "1"}}
        earlier["period"] = {"start": "2026-10-10T09:00:00+03:00", "end": "2026-10-15T09:00:00+03:00"}
        earlier.pop("extension", None)
        out.append(earlier)
    if spec.get("readmit"):
        out.append(
            {
                **stay,
                "id": f"{pid}-e2",
                "status": "in-progress",
                "period": {"start": "2026-11-20T08:00:00+03:00"},
                "meta": {"versionId": "1"},
            }
        )
    return out


def _changed(spec: dict[str, Any], change: str, disposition: str | None) -> dict[str, Any]:
    spec = dict(spec)
    if change == "finish":
        spec.update(status="finished", end="2026-11-20T15:00:00+03:00", disposition=disposition)
    elif change == "correct":  # the EHR corrects the risk facts away: the flag is withdrawn
        spec.update(conditions=set(), contact=True, birth="1990-01-01")
    elif change == "add_flag":
        spec.update(conditions={*spec["conditions"], "Z59.0"})
    elif change == "planned":
        spec.update(planned="2026-11-30")
    elif change == "in_error":
        spec.update(status="entered-in-error")
    elif change == "readmit":
        spec.update(status="finished", end="2026-11-20T07:00:00+03:00", readmit=True)
    elif change == "deceased":
        spec.update(deceased=True)
    return spec


# -- running both paths ----------------------------------------------------------------------------
def _drain(engine: Engine, settings: Settings, source_id: int, reference: bool) -> None:
    patch: AbstractContextManager[Any] = (
        mock.patch.object(jobs, "sync_cases", sync_cases_per_row) if reference else nullcontext()
    )
    with patch:
        stats = drain(engine, settings, source_id=source_id, batch_size=4)
    assert stats.failed == 0 and stats.error is None


def _store(engine: Engine, source_id: int, resources: list[dict[str, Any]]) -> None:
    with session_scope(engine) as session:
        upsert_snapshots(session, source_id, [normalise(r) for r in resources])


def _edit(engine: Engine, source_id: int, eid: str, edit: str, coordinator: str | None) -> None:
    with session_scope(engine) as session:
        case = session.exec(select(Case).where(Case.source_id == source_id, Case.encounter_fhir_id == eid)).first()
        if case is None or case.status != CaseStatus.open:
            return
        if edit == "dates":
            values = {"expected_discharge_at": T0 + timedelta(days=3), "medically_ready_at": T0 + timedelta(hours=5)}
            set_dates_by_person(session, case, values, actor="lead")
        elif edit == "assign" and coordinator is not None:
            assign(session, case, coordinator, actor="lead")
        elif edit == "close":
            change_status(session, case, CaseStatus.closed, actor="lead", outcome=CaseOutcome.not_needed)


def _columns(row: Any, exclude: set[str]) -> dict[str, Any]:
    return {name: getattr(row, name) for name in type(row).model_fields if name not in exclude}


def _dump(engine: Engine, source_id: int) -> dict[str, Any]:
    """The source's rows, keyed by admission; task ids in event payloads named by their task."""
    with Session(engine) as session:
        cases = session.exec(select(Case).where(Case.source_id == source_id).order_by(col(Case.id))).all()
        admission = {c.id: c.encounter_fhir_id for c in cases}
        tasks = session.exec(select(Task).where(col(Task.case_id).in_(list(admission))).order_by(col(Task.id))).all()
        events = session.exec(
            select(CaseEvent).where(col(CaseEvent.case_id).in_(list(admission))).order_by(col(CaseEvent.id))
        ).all()
        risks = session.exec(select(RiskAssessment).where(RiskAssessment.source_id == source_id)).all()
    task_name = {t.id: f"{admission[t.case_id]}/{t.kind}/{n}" for n, t in enumerate(tasks)}

    def named(data: dict[str, Any]) -> dict[str, Any]:
        out = dict(data)
        if "task_id" in out:
            out["task_id"] = task_name[out["task_id"]]
        for key in ("tasks_reassigned", "tasks_cancelled"):
            if key in out:
                out[key] = sorted(task_name[t] for t in out[key])
        return out

    timeline: dict[str, list[Any]] = {eid: [] for eid in admission.values()}
    for e in events:
        timeline[admission[e.case_id]].append((e.kind, e.actor, e.at, named(e.data)))
    return {
        "cases": {c.encounter_fhir_id: _columns(c, {"id"}) for c in cases},
        "events": timeline,
        "tasks": [(task_name[t.id], _columns(t, {"id", "case_id"})) for t in tasks],
        "risks": sorted(
            (r.encounter_fhir_id, r.rules_version, _columns(r, {"id", "encounter_fhir_id", "rules_version"}))
            for r in risks
        ),
    }


def _same(bulk: Engine, per_row: Engine, source_id: int) -> dict[str, Any]:
    got, want = _dump(bulk, source_id), _dump(per_row, source_id)
    for table in ("cases", "tasks", "risks", "events"):
        assert got[table] == want[table], table
    return got


@given(
    cohort=st.lists(patients, min_size=1, max_size=6),
    coordinators=st.integers(min_value=0, max_value=3),
    by_ward=st.booleans(),
    edits=st.lists(st.sampled_from(EDITS), min_size=6, max_size=6),
    changes=st.lists(st.sampled_from(CHANGES), min_size=6, max_size=6),
    dispositions=st.lists(st.sampled_from([None, "home", "hosp", "zz-local"]), min_size=6, max_size=6),
)
@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@pytest.mark.clock
def test_bulk_writes_the_rows_the_per_row_path_wrote(
    two_engines: tuple[Engine, Engine, Settings],
    cohort: list[dict[str, Any]],
    coordinators: int,
    by_ward: bool,
    edits: list[str],
    changes: list[str],
    dispositions: list[str | None],
) -> None:
    bulk, per_row, settings = two_engines
    prefix = f"x{next(_ids)}"
    names = [f"{prefix}c{i}" for i in range(coordinators)]
    ids = []
    for engine in (bulk, per_row):
        with session_scope(engine) as session:
            source = add_source(session, name=prefix, hospital=f"H {prefix}", base_url=BASE)
            ids.append(source.id)
            for name in names:
                make_user(session, name, "coordinator", (prefix,))
            if by_ward and names:
                wards = {"Ward 3A": names[0], "Ward 5": names[-1]}
                update_source(session, prefix, {"assignment": {"mode": "ward", "wards": wards}})
    assert ids[0] == ids[1] and ids[0] is not None
    source_id = ids[0]

    with time_machine.travel(T0, tick=False):
        for engine, reference in ((bulk, False), (per_row, True)):
            _store(engine, source_id, [r for i, spec in enumerate(cohort) for r in _resources(prefix, i, spec, 1)])
            _drain(engine, settings, source_id, reference)
        _same(bulk, per_row, source_id)
        for engine in (bulk, per_row):
            for i, edit in enumerate(edits[: len(cohort)]):
                _edit(engine, source_id, f"{prefix}p{i}-e", edit, names[0] if names else None)
        _same(bulk, per_row, source_id)

    with time_machine.travel(T1, tick=False):
        later = [_changed(spec, changes[i], dispositions[i]) for i, spec in enumerate(cohort)]
        for engine, reference in ((bulk, False), (per_row, True)):
            _store(engine, source_id, [r for i, spec in enumerate(later) for r in _resources(prefix, i, spec, 2)])
            _drain(engine, settings, source_id, reference)
        _same(bulk, per_row, source_id)


def test_a_larger_batch_takes_no_more_statements(two_engines: tuple[Engine, Engine, Settings]) -> None:
    """Opening cases is set-based: 4 or 16 new flagged admissions in a batch, the same statements."""
    engine, _, settings = two_engines
    counts = []
    for size in (4, 16):
        prefix = f"n{next(_ids)}"
        with session_scope(engine) as session:
            source = add_source(session, name=prefix, hospital=f"H {prefix}", base_url=BASE)
            source_id = source.id
            for name in ("ann", "ben"):
                make_user(session, f"{prefix}{name}", "coordinator", (prefix,))
        assert source_id is not None
        spec = {"birth": "1931-02-03", "contact": False, "conditions": {"Z60.2"}, "ward": None, "planned": "2026-11-25"}
        spec["earlier"] = False
        _store(engine, source_id, [r for i in range(size) for r in _resources(prefix, i, spec, 1)])
        statements = [0]

        def count(*_: Any) -> None:
            statements[0] += 1

        event.listen(engine, "before_cursor_execute", count)
        try:
            with time_machine.travel(T0, tick=False):
                stats = drain(engine, settings, source_id=source_id, batch_size=100)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert stats.cases_opened == size
        with Session(engine) as session:
            opened = session.exec(select(Case).where(Case.source_id == source_id)).all()
            assert all(c.expected_discharge_source == "ehr" for c in opened)
        counts.append(statements[0])
    assert counts[0] == counts[1], counts


def test_a_bulk_update_is_seen_by_the_session_and_refuses_a_version_changed_meanwhile(engine: Engine) -> None:
    with session_scope(engine) as session:
        source_id = make_source(session).id or 0
        case = flagged_case(session, source_id)
        assert (case.priority, case.version) == ("high", 1)
        risk = session.exec(select(RiskAssessment).where(RiskAssessment.encounter_fhir_id == "adm1")).one()
        risk.priority, risk.flagged = None, False
        session.add(risk)
        # One UPDATE for the batch; the Case the session holds is expired, so it reads what was written.
        assert refresh_priorities(session, source_id, rules_version=RULES) == 1
        assert (case.priority, case.flag_withdrawn_at is not None, case.version) == (None, True, 3)
        with pytest.raises(StaleDataError):  # someone else's write since version 2 was read
            update_cases(session, [{"_id": case.id, "_version": 2, "updated_at": T0}], ("updated_at",))
        assert case.version == 3
