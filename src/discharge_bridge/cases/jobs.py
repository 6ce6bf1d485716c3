"""Assess admissions, then bring their cases up to date: the body of the assessment stage and of `rescore`.

Both in one transaction, so a case is never opened for an assessment that rolled back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from discharge_bridge.cases.screening.service import completed_screenings
from discharge_bridge.cases.stays import follow_stays
from discharge_bridge.cases.sync import CaseSyncStats, sync_cases
from discharge_bridge.config import Settings
from discharge_bridge.db import session_scope, utcnow
from discharge_bridge.ingest.aliases import records_of, survivors
from discharge_bridge.ingest.models import EncounterSnapshot
from discharge_bridge.risk.service import (
    Offload,
    ScoreStats,
    patients_to_rescore,
    score_patients,
    scoring_context,
)
from discharge_bridge.sources.models import Source
from discharge_bridge.sources.service import get_source


@dataclass
class FollowUp:
    scores: ScoreStats
    cases: CaseSyncStats


def follow_patients(
    session: Session,
    source: Source,
    settings: Settings,
    patient_ids: Iterable[str] | None = None,
    *,
    force: bool = False,
    offload: Offload | None = None,
) -> FollowUp:
    """Score the given patients (default: every patient with a possibly current stay), then open,
    re-prioritise and discharge cases, in the caller's transaction. Their stays' cases are followed
    even when discharged, so a corrected discharge time or disposition is taken.

    ``offload``: shares of the scoring go to other processes (``score_patients``).
    Raises MappingError / RuleSetError for broken files."""
    assert source.id is not None
    ctx = scoring_context(source, settings)
    ids = sorted(set(patient_ids)) if patient_ids is not None else patients_to_rescore(session, source.id)
    now = utcnow()
    source_id = source.id
    scores = score_patients(
        session,
        source,
        ids,
        ctx,
        now=now,
        force=force,
        screenings=lambda encounter_ids: completed_screenings(session, source_id, encounter_ids),
        offload=offload,
    )
    follow_stays(session, source.id, ids, ctx.mapping, now=now)
    stays = None
    if patient_ids is not None:  # every record of these people (Patient.link): their stays' admissions
        people = records_of(session, source.id, set(survivors(session, source.id, ids).values()))
        every = sorted({rid for group in people.values() for rid in group} | set(ids))
        query = select(EncounterSnapshot.fhir_id).where(
            EncounterSnapshot.source_id == source.id, col(EncounterSnapshot.patient_fhir_id).in_(every)
        )
        stays = list(session.exec(query))
    cases = sync_cases(
        session,
        source.id,
        rules_version=ctx.rules.version,
        encounter_fhir_ids=stays,
        mappings_dir=settings.mappings_dir,
    )
    return FollowUp(scores, cases)


def assess_and_follow(
    engine: Engine,
    source_name: str,
    settings: Settings,
    *,
    patient_ids: Iterable[str] | None = None,
    force: bool = False,
) -> FollowUp:
    """``follow_patients`` in its own transaction."""
    with session_scope(engine) as session:
        return follow_patients(session, get_source(session, source_name), settings, patient_ids, force=force)
