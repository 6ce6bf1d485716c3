"""What a sync pass does to cases: open them for new flags, follow priorities, dates and discharges.

Call ``sync_cases`` in the same transaction as the scoring of the pass (after it), so a case is
never opened for a flag that rolled back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Table, and_, select
from sqlmodel import Session

from discharge_bridge.cases.batch import (
    CASES,
    event_row,
    open_cases_for_flags,
    refresh_priorities,
    update_cases,
    write_events,
)
from discharge_bridge.cases.discharge import load_dispositions, record_discharge
from discharge_bridge.cases.events import EventKind
from discharge_bridge.cases.models import Case, DateSource
from discharge_bridge.cases.readiness import take_ehr_dates
from discharge_bridge.db import utcnow
from discharge_bridge.ingest.models import EncounterSnapshot

# Encounter.status values that end a stay; `period.end` on any other status counts too (some EHRs
# close the period first and flip the status in a later batch).
FINISHED = frozenset({"finished"})
NOT_A_STAY = frozenset({"cancelled", "entered-in-error"})


@dataclass
class CaseSyncStats:
    opened: int = 0
    priorities: int = 0
    dates: int = 0
    discharged: int = 0


_ENCOUNTERS: Table = EncounterSnapshot.__table__  # type: ignore[attr-defined]
_DATE_COLUMNS = (
    "expected_discharge_at",
    "expected_discharge_source",
    "expected_discharge_set_by",
    "medically_ready_at",
    "medically_ready_source",
    "medically_ready_set_by",
    "updated_at",
)


def follow_encounters(
    session: Session,
    source_id: int,
    *,
    encounter_fhir_ids: Iterable[str] | None = None,
    mappings_dir: Path | None = None,
) -> CaseSyncStats:
    """Apply the EHR's expected discharge date and discharges to the source's cases.

    Without ``encounter_fhir_ids`` every case not yet discharged is checked; with them (the
    encounters a pass changed), those cases are checked even if discharged, so a corrected
    discharge time or disposition is taken.

    Read in one query; the dates of the batch are written in bulk (what ``apply_ehr_dates`` writes
    per case); a discharge that changes something, rare in a batch, goes through ``record_discharge``
    (barriers, handoffs, closing).
    """
    stats = CaseSyncStats()
    now = utcnow()
    c, e = CASES, _ENCOUNTERS
    query = (
        select(
            c.c.id,
            c.c.version,
            c.c.actual_discharge_at,
            c.c.discharge_disposition,
            c.c.discharge_destination,
            c.c.updated_at,
            *(c.c[name] for name in _DATE_COLUMNS[:-1]),
            e.c.status.label("enc_status"),
            e.c.planned_end,
            e.c.period_end,
            e.c.last_updated,
            e.c.ingested_at,
            e.c.discharge_disposition.label("enc_disposition"),
        )
        .join(e, and_(e.c.source_id == c.c.source_id, e.c.fhir_id == c.c.encounter_fhir_id))
        .where(c.c.source_id == source_id)
        .order_by(c.c.id)
    )
    if encounter_fhir_ids is None:
        query = query.where(c.c.actual_discharge_at.is_(None))
    else:
        query = query.where(c.c.encounter_fhir_id.in_(sorted(set(encounter_fhir_ids))))
    session.flush()  # Core reads do not autoflush
    dispositions = None
    dated: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    leaving: list[tuple[int, datetime, str | None]] = []
    for row in session.execute(query).mappings():
        if row["enc_status"] in NOT_A_STAY:
            continue
        if row["actual_discharge_at"] is None:
            case = SimpleNamespace(**{name: row[name] for name in _DATE_COLUMNS[:-1]})
            changed = take_ehr_dates(
                case, expected_discharge_at=row["planned_end"], medically_ready_at=None, actor="ehr"
            )
            if changed:
                dated.append({**vars(case), "updated_at": now, "_id": row["id"], "_version": row["version"]})
                data = {**changed, "source": DateSource.ehr}
                events.append(event_row(row["id"], EventKind.dates_changed, data, actor="ehr", at=now))
        # A period.end in the past ends the stay whatever the status says (EHRs close the period first).
        period_end = row["period_end"]
        if row["enc_status"] in FINISHED or (period_end is not None and period_end <= now):
            code = row["enc_disposition"]
            if dispositions is None and code is not None:
                dispositions = load_dispositions(mappings_dir)
            discharged_at = period_end or row["last_updated"] or row["ingested_at"]
            destination = None if code is None or dispositions is None else dispositions.destination(code)
            stored = (row["actual_discharge_at"], row["discharge_disposition"], row["discharge_destination"])
            if stored != (discharged_at, code, destination):
                leaving.append((row["id"], discharged_at, code))
    update_cases(session, dated, _DATE_COLUMNS)
    write_events(session, events)
    stats.dates = len(dated)
    for case_id, discharged_at, code in leaving:
        found = session.get(Case, case_id)
        assert found is not None
        stats.discharged += record_discharge(
            session,
            found,
            discharged_at=discharged_at,
            disposition_code=code,
            dispositions=dispositions,
            mappings_dir=mappings_dir,
        )
    return stats


def sync_cases(
    session: Session,
    source_id: int,
    *,
    rules_version: str,
    encounter_fhir_ids: Iterable[str] | None = None,
    mappings_dir: Path | None = None,
) -> CaseSyncStats:
    """The one call after scoring: open, re-prioritise, then follow dates and discharges, for the
    admissions ``encounter_fhir_ids`` (the assessment stage's batch) or the whole source (None)."""
    ids = None if encounter_fhir_ids is None else sorted(set(encounter_fhir_ids))
    opened = open_cases_for_flags(session, source_id, rules_version=rules_version, encounter_fhir_ids=ids)
    priorities = refresh_priorities(session, source_id, rules_version=rules_version, encounter_fhir_ids=ids)
    # After opening, so a case opened in this pass already gets the EHR's expected discharge date.
    stats = follow_encounters(session, source_id, encounter_fhir_ids=ids, mappings_dir=mappings_dir)
    stats.opened, stats.priorities = opened, priorities
    return stats
