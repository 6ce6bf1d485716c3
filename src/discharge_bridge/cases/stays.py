"""What the shape of a stay does to its case (risk/stays.py says what a stay is).

Run by the assessment stage after scoring, before cases are opened and followed, in one transaction:

- **One case per stay, following the current leg.** A case whose admission became an earlier leg
  of a longer stay (a ward transfer, a partOf chain, a stay continued after a short gap) moves to
  the stay's current leg, with a timeline entry naming the legs and the ward. Two cases already
  open for one stay (made before this rule) become one: the case on the current leg, else the
  oldest, stays; the others are cancelled with the reason.
- **Death ends coordination.** A patient with ``deceased[x]`` gets no new case; an open case is
  closed with outcome "died" and its open tasks and handoffs cancelled with that reason.
- **An admission entered in error** cancels its case, with the reason.
- **One person, several records** (``Patient.link``, ingest/aliases.py): a case on a merged record
  moves to the surviving record, with a timeline entry; its stays are read across every record.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from discharge_bridge.cases.events import EventKind, record_event
from discharge_bridge.cases.models import Case, CaseOutcome, CaseStatus
from discharge_bridge.cases.service import change_status
from discharge_bridge.ingest.aliases import records_of, survivors
from discharge_bridge.ingest.models import EncounterSnapshot, PatientSnapshot
from discharge_bridge.risk import Mapping
from discharge_bridge.risk.stays import group_stays

DIED = "the patient died (Patient.deceased in the EHR)"
IN_ERROR = "the admission was marked entered-in-error in the EHR"


@dataclass
class StayStats:
    moved: int = 0  # cases moved to their stay's current leg
    re_pointed: int = 0  # cases moved from a merged record to the surviving one
    merged: int = 0  # duplicate cases of one stay cancelled
    died: int = 0
    in_error: int = 0


def open_cases_of(source_id: int, patient_ids: Iterable[str]) -> SelectOfScalar[Case]:
    """The hospital's open cases of these patient records (by ``ix_coordination_case_patient``)."""
    return select(Case).where(
        Case.source_id == source_id, Case.status == CaseStatus.open, col(Case.patient_fhir_id).in_(sorted(patient_ids))
    )


def follow_stays(
    session: Session,
    source_id: int,
    patient_ids: Sequence[str],
    mapping: Mapping,
    *,
    now: datetime,
    actor: str = "system",
) -> StayStats:
    """Bring the open cases of these patients in line with their stays (see the module docstring)."""
    stats = StayStats()
    if not patient_ids:
        return stats
    to_survivor = survivors(session, source_id, set(patient_ids))
    records = records_of(session, source_id, set(to_survivor.values()))
    person = {rid: survivor for survivor, group in records.items() for rid in group}
    cases: dict[str, list[Case]] = defaultdict(list)
    for case in session.exec(open_cases_of(source_id, person)):
        survivor = person[case.patient_fhir_id]
        if case.patient_fhir_id != survivor:  # the record was merged: the case follows the person
            record_event(
                session, case, actor=actor, kind=EventKind.merged, data={"patient": [case.patient_fhir_id, survivor]}
            )
            case.patient_fhir_id = survivor
            case.updated_at = now
            session.add(case)
            stats.re_pointed += 1
        cases[survivor].append(case)
    if not cases:
        return stats
    with_cases = sorted(cases)
    dead = set(
        session.exec(
            select(PatientSnapshot.fhir_id).where(
                PatientSnapshot.source_id == source_id,
                col(PatientSnapshot.fhir_id).in_(with_cases),
                col(PatientSnapshot.deceased).is_(True),
            )
        )
    )
    encounters: dict[str, list[dict[str, Any]]] = defaultdict(list)
    status: dict[str, str] = {}
    wards: dict[str, str | None] = {}
    query = sa_select(
        col(EncounterSnapshot.fhir_id),
        col(EncounterSnapshot.patient_fhir_id),
        col(EncounterSnapshot.status),
        col(EncounterSnapshot.ward),
        col(EncounterSnapshot.raw),
    ).where(
        col(EncounterSnapshot.source_id) == source_id,
        col(EncounterSnapshot.patient_fhir_id).in_(sorted(r for r in person if person[r] in cases)),
    )
    for fid, pid, enc_status, ward, raw in session.execute(query):
        encounters[person[pid]].append(dict(raw))
        status[fid], wards[fid] = enc_status, ward
    for pid, open_cases in cases.items():
        if pid in dead:
            for case in open_cases:
                change_status(session, case, CaseStatus.closed, actor=actor, outcome=CaseOutcome.died, reason=DIED)
                stats.died += 1
            continue
        live = []
        for case in open_cases:
            if status.get(case.encounter_fhir_id) == "entered-in-error":
                change_status(session, case, CaseStatus.cancelled, actor=actor, reason=IN_ERROR)
                stats.in_error += 1
            else:
                live.append(case)
        for stay in group_stays(encounters.get(pid, []), mapping, now=now):
            legs = set(stay.leg_ids)
            same = sorted((c for c in live if c.encounter_fhir_id in legs), key=lambda c: (c.opened_at, c.id or 0))
            if not same:
                continue
            keep = next((c for c in same if c.encounter_fhir_id == stay.current_id), same[0])
            for other in same:
                if other is not keep:
                    change_status(
                        session, other, CaseStatus.cancelled, actor=actor, reason=f"the same stay as case #{keep.id}"
                    )
                    stats.merged += 1
            if keep.encounter_fhir_id != stay.current_id and not _taken(session, source_id, stay.current_id):
                ward = wards.get(stay.current_id)
                record_event(
                    session,
                    keep,
                    actor=actor,
                    kind=EventKind.leg_changed,
                    data={
                        "encounter": [keep.encounter_fhir_id, stay.current_id],
                        "ward": ward,
                        "legs": list(stay.leg_ids),
                    },
                )
                keep.encounter_fhir_id = stay.current_id
                keep.updated_at = now
                session.add(keep)
                stats.moved += 1
    session.flush()
    return stats


def _taken(session: Session, source_id: int, encounter_id: str) -> bool:
    """A closed or cancelled case on the leg already (one case per admission is a unique key)."""
    query = select(Case.id).where(Case.source_id == source_id, Case.encounter_fhir_id == encounter_id)
    return session.exec(query).first() is not None
