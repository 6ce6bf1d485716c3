"""What a sync pass does to cases: open them for new flags, follow priorities, dates and discharges.

Call ``sync_cases`` in the same transaction as the scoring of the pass (after it), so a case is
never opened for a flag that rolled back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import and_
from sqlmodel import Session, col, select

from discharge_bridge.cases.discharge import load_dispositions, record_discharge
from discharge_bridge.cases.models import Case
from discharge_bridge.cases.readiness import apply_ehr_dates
from discharge_bridge.cases.service import open_cases_for_flags, refresh_priorities
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
    """
    stats = CaseSyncStats()
    now = utcnow()
    query = (
        select(Case, EncounterSnapshot)
        .join(
            EncounterSnapshot,
            and_(
                col(EncounterSnapshot.source_id) == Case.source_id,
                col(EncounterSnapshot.fhir_id) == Case.encounter_fhir_id,
            ),
        )
        .where(Case.source_id == source_id)
    )
    if encounter_fhir_ids is None:
        query = query.where(col(Case.actual_discharge_at).is_(None))
    else:
        query = query.where(col(Case.encounter_fhir_id).in_(sorted(set(encounter_fhir_ids))))
    dispositions = None
    for case, enc in session.exec(query).all():
        if enc.status in NOT_A_STAY:
            continue
        if case.actual_discharge_at is None:
            stats.dates += apply_ehr_dates(session, case, expected_discharge_at=enc.planned_end)
        # A period.end in the past ends the stay whatever the status says (EHRs close the period first).
        if enc.status in FINISHED or (enc.period_end is not None and enc.period_end <= now):
            if dispositions is None and enc.discharge_disposition is not None:
                dispositions = load_dispositions(mappings_dir)
            discharged_at = enc.period_end or enc.last_updated or enc.ingested_at
            stats.discharged += record_discharge(
                session,
                case,
                discharged_at=discharged_at,
                disposition_code=enc.discharge_disposition,
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
